"""What the admin pages (users, groups, API access, contracts, error log) share: the group tree of the
session's subtree for pickers, the profiles a session may grant, a page of a list and form values."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from yarl import URL

from console.api_calls import Api
from console.context import session_of
from oss.profiles import PROFILES, Profile, perms_of

PAGE_SIZE = 25


@dataclass(frozen=True)
class GroupChoice:
    """A group of the subtree for a picker: its depth below the session's group gives the indent."""

    id: str
    name: str
    depth: int
    parent_id: str | None

    @property
    def label(self) -> str:
        return "\u2003" * self.depth + self.name


def tree_order(groups: list[dict[str, Any]], root: str) -> list[GroupChoice]:
    """The groups as a depth-first tree from `root` (children by name); groups not under `root` are left out."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for g in groups:
        children.setdefault(g.get("parentId"), []).append(g)
    out: list[GroupChoice] = []

    def walk(group: dict[str, Any], depth: int) -> None:
        out.append(GroupChoice(group["id"], group["name"], depth, group.get("parentId")))
        for child in sorted(children.get(group["id"], []), key=lambda c: (c["name"].lower(), c["id"])):
            walk(child, depth + 1)

    top = next((g for g in groups if g["id"] == root), None)
    if top is not None:
        walk(top, 0)
    return out


async def group_choices(request: web.Request, api: Api) -> list[GroupChoice]:
    """Every group of the session's subtree, as a tree (the API's list, every page)."""
    return tree_order(await api.pages("/v2/groups/", sort="name"), session_of(request).caller.group_id)


def grantable_profiles(request: web.Request) -> list[Profile]:
    """The profiles the session may grant (all their rights held): the API refuses any other."""
    held = session_of(request).caller.perms
    return [p for p in PROFILES.values() if perms_of([p.id]) <= held]


def all_profiles() -> list[Profile]:
    return list(PROFILES.values())


def offset_of(request: web.Request) -> int:
    """The `offset` query parameter of a console list (0 when absent or not a number)."""
    raw = request.query.get("offset", "0")
    return int(raw) if raw.isdigit() and len(raw) < 10 else 0


def page_links(request: web.Request, offset: int, has_next: bool) -> dict[str, str | None]:
    """The console URLs of the previous and next pages of an offset-paged list (None at an end)."""
    def at(value: int) -> str:
        query = {k: v for k, v in request.query.items() if k != "offset"}
        if value:
            query["offset"] = str(value)
        return str(URL(request.path).with_query(query))
    return {"previous": at(max(0, offset - PAGE_SIZE)) if offset else None,
            "next": at(offset + PAGE_SIZE) if has_next else None}


def text(form: MultiDictProxy[Any], name: str) -> str:
    """A form field as stripped text ("" when absent)."""
    return str(form.get(name, "")).strip()

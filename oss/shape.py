"""Response shapes shared by every resource: absent values left out, linked objects expanded."""
from __future__ import annotations

from typing import Any, Iterable

import asyncpg

from oss.fields import Fields
from oss.storage import contracts, device_types, groups

# The kinds of linked objects a `fields=` expansion can show, and where their minimal views come from.
SUMMARIES = {"group": groups.summaries, "deviceType": device_types.summaries, "contract": contracts.summaries}


def compact(body: dict[str, Any]) -> dict[str, Any]:
    """Leave out properties without a value, as API v2 does."""
    return {k: v for k, v in body.items() if v is not None}


def decimal_string(value: float | int | None) -> str | None:
    """A number as the live service writes radio values: a decimal string with two decimals ("-126.00")."""
    if value is None or isinstance(value, bool):
        return None
    return f"{round(float(value), 2) + 0.0:.2f}"  # + 0.0: never "-0.00"


def pick(full: dict[str, Any], wanted: Fields) -> dict[str, Any]:
    """`{id}` plus the attributes a `fields=` expansion asked for."""
    return compact({"id": full["id"], **{k: full.get(k) for k in wanted}})


async def linked(conn: asyncpg.Connection, kind: str, ids: Iterable[str | None]) -> dict[str, dict[str, Any]]:
    """Minimal views of linked groups, device types or contracts, by id, in one query."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    return await SUMMARIES[kind](conn, wanted)


async def expand_links(conn: asyncpg.Connection, items: list[dict[str, Any]], expand: Fields,
                       links: dict[str, str]) -> None:
    """Replace `{id}` references in `items` with the attributes `expand` asks for.

    `links` maps a property name (e.g. `group`) to its kind (`group`).
    """
    for prop, kind in links.items():
        if prop not in expand or not expand[prop]:
            continue
        found = await linked(conn, kind, (item.get(prop, {}).get("id") for item in items))
        for item in items:
            ref = item.get(prop)
            if ref and ref["id"] in found:
                item[prop] = pick(found[ref["id"]], expand[prop])

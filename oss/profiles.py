"""Predefined profiles and their roles, with read and write variants.

A profile is held on a group (an API user's own group, or a user role's
group) and reaches that group's sub-groups. Permissions are
`<resource>:read` and `<resource>:write`; write implies nothing by itself, so
every write profile also lists the reads it needs.
"""
from __future__ import annotations

from dataclasses import dataclass

from oss.errors import BadRequest, FieldError, Forbidden

RESOURCES = ("groups", "users", "api-users", "contracts", "device-types", "devices", "callbacks", "messages",
             "base-stations")
PERM_CODES = {f"{r}:{a}": 10 * i + (1 if a == "read" else 2)
              for i, r in enumerate(RESOURCES, start=1) for a in ("read", "write")}


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    perms: frozenset[str]


@dataclass(frozen=True)
class Profile:
    id: str
    name: str
    roles: tuple[Role, ...]

    @property
    def perms(self) -> frozenset[str]:
        return frozenset().union(*(r.perms for r in self.roles))


def _perms(*resources: str, write: bool) -> frozenset[str]:  # pragma: no mutate block (run at import: ROLES tested)
    return frozenset(f"{r}:{a}" for r in resources for a in (("read", "write") if write else ("read",)))


_DEVICE = ("device-types", "devices", "callbacks", "messages")
_USER = ("users", "api-users")
_BASE = frozenset({"groups:read", "contracts:read"})

ROLES = {
    role.id: role for role in (
        Role("5b0000000000000000000001", "GROUP VIEWER", _BASE),
        Role("5b0000000000000000000002", "DEVICE MANAGER [R]", _perms(*_DEVICE, write=False)),
        Role("5b0000000000000000000003", "DEVICE MANAGER [W]", _perms(*_DEVICE, write=True)),
        Role("5b0000000000000000000004", "USER MANAGER [R]", _perms(*_USER, write=False)),
        Role("5b0000000000000000000005", "USER MANAGER [W]", _perms(*_USER, write=True) | {"groups:write"}),
        Role("5b0000000000000000000006", "CONTRACT MANAGER [W]", _perms("contracts", write=True)),
        # Base stations are the operator's: these rights take effect only in an operator group (type 0,
        # oss/api/base_stations.py); a customer holding them is refused all the same.
        Role("5b0000000000000000000007", "BASE STATION MANAGER [R]", _perms("base-stations", write=False)),
        Role("5b0000000000000000000008", "BASE STATION MANAGER [W]", _perms("base-stations", write=True)),
    )
}


def _roles(*names: str) -> tuple[Role, ...]:  # pragma: no mutate block (run at import: PROFILES tested)
    by_name = {r.name: r for r in ROLES.values()}
    return tuple(by_name[n] for n in ("GROUP VIEWER", *names))


PROFILES = {
    p.id: p for p in (
        Profile("5a0000000000000000000001", "DEVICE MANAGER [R]", _roles("DEVICE MANAGER [R]")),
        Profile("5a0000000000000000000002", "DEVICE MANAGER [W]", _roles("DEVICE MANAGER [W]")),
        Profile("5a0000000000000000000003", "USER MANAGER [R]", _roles("USER MANAGER [R]")),
        Profile("5a0000000000000000000004", "USER MANAGER [W]", _roles("USER MANAGER [W]")),
        Profile("5a0000000000000000000005", "CUSTOMER [R]", _roles("DEVICE MANAGER [R]", "USER MANAGER [R]")),
        Profile("5a0000000000000000000006", "CUSTOMER [W]", _roles("DEVICE MANAGER [W]", "USER MANAGER [W]")),
        Profile("5a0000000000000000000007", "ADMIN [W]",
                _roles("DEVICE MANAGER [W]", "USER MANAGER [W]", "CONTRACT MANAGER [W]", "BASE STATION MANAGER [W]")),
        Profile("5a0000000000000000000008", "BASE STATION MANAGER [R]", _roles("BASE STATION MANAGER [R]")),
        Profile("5a0000000000000000000009", "BASE STATION MANAGER [W]", _roles("BASE STATION MANAGER [W]")),
    )
}
ADMIN = "5a0000000000000000000007"


def perms_of(profile_ids: list[str] | tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*(PROFILES[p].perms for p in profile_ids if p in PROFILES))


def grantable(held: frozenset[str], profile_ids: list[str], field: str) -> list[str]:
    """Known profiles whose rights are all `held` by the caller (no escalation), each once."""
    for i, pid in enumerate(profile_ids):
        if pid not in PROFILES:
            raise BadRequest(FieldError(f"{field}[{i}]", f"profile {pid} does not exist"))
    if not perms_of(profile_ids) <= held:
        raise Forbidden("You cannot grant rights you do not hold.")
    return list(dict.fromkeys(profile_ids))


def require_manageable(held: frozenset[str], profile_ids: list[str] | tuple[str, ...]) -> None:
    """Refuse to act on an API user holding rights the caller does not hold (no escalation): renewing
    its credential would hand them over, and editing or deleting it would take them from their holder."""
    if not perms_of(profile_ids) <= held:
        raise Forbidden("You cannot manage an API user holding rights you do not hold.")


def profile_body(profile: Profile, group: dict | None, expand: dict) -> dict:
    """The v2 `profile` shape; `roles` names and paths come with `fields=roles(...)`."""
    out: dict = {"id": profile.id, "name": profile.name}
    if group is not None:
        out["group"] = group
    roles = []
    for role in profile.roles:
        item: dict = {"id": role.id}
        if "roles" in expand:
            item["name"] = role.name
            item["perms"] = [{"code": PERM_CODES[p], "name": p} for p in sorted(role.perms)]
        roles.append(item)
    out["roles"] = roles
    return out

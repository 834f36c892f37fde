"""The menu: one entry per page family the session's rights open."""
from __future__ import annotations

from dataclasses import dataclass

from console.sessions import Session


@dataclass(frozen=True)
class Entry:
    label: str
    href: str
    needs: str | None  # the permission it needs (read), None: everyone
    current: bool = False


ENTRIES = (
    Entry("Home", "/console/", None),
    Entry("Devices", "/console/devices", "devices"),
    Entry("Device types", "/console/device-types", "device-types"),
    Entry("Error log", "/console/error-log", "callbacks"),
    Entry("Users", "/console/users", "users"),
    Entry("Groups", "/console/groups", "groups"),
    Entry("API access", "/console/api-users", "api-users"),
    Entry("Contracts", "/console/contracts", "contracts"),
    Entry("Service map", "/console/coverage", None),
)


def navigation(session: Session, path: str) -> list[Entry]:
    """The entries this session may open; the one `path` is under is marked current."""
    who = session.caller
    shown = [e for e in ENTRIES if e.needs is None or who.can(e.needs)]
    best = max((e for e in shown if path == e.href or path.startswith(e.href.rstrip("/") + "/")),
               key=lambda e: len(e.href), default=None)
    return [Entry(e.label, e.href, e.needs, e is best) for e in shown]

"""What a series page sends to the API's bulk endpoints: the operation of each series, its options as the
endpoint's query parameters, the device list's filter, and the dry run's report as rows to show.

Pure (no I/O): the page handlers (console/pages/series.py) do the calls.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from oss.bulk_jobs import EDIT_FLAGS

# Query parameters of the device list that choose how it is shown, not which devices it holds.
DISPLAY_ONLY = frozenset({"limit", "offset", "fields", "columns", "page", "csrf"})
SHOWN_ACCEPTED = 200  # rows that would succeed listed on a dry run page (all are counted)
SHOWN_ERRORS = 1000  # per-row errors listed on a page (all are counted)
CHOICES = ("", "true", "false")  # an edit flag: keep, set, clear


@dataclass(frozen=True)
class Series:
    """One toolbar operation: its page title, the API endpoint, its CSV lines and what a good row does."""

    kind: str
    title: str
    method: str
    path: str
    lines: str
    from_filter: bool  # may take its rows from the device list's current filter
    outcome: str  # what happens to a good row, as "would be <outcome>" / "<outcome>"
    options: tuple[str, ...]  # form fields that become the endpoint's query parameters
    asynchronous: bool = True


SERIES = {s.kind: s for s in (
    Series("create", "New series", "POST", "/v2/devices/bulk", "id;pac[;name[;lat;lng]]", False, "created",
           ("deviceTypeId", "prefix", "prototype")),
    Series("edit", "Edit series", "PUT", "/v2/devices/bulk", "id[;name[;lat;lng]]", True, "edited", EDIT_FLAGS),
    Series("transfer", "Transfer series", "POST", "/v2/devices/bulk/transfer", "id", True, "transferred",
           ("deviceTypeId", "keepHistory", "activable")),
    Series("replace", "Replace series", "POST", "/v2/devices/bulk/replace", "oldId;newId", False,
           "given its token to the new device", (), asynchronous=False),
    Series("delete", "Delete series", "POST", "/v2/devices/bulk/delete", "id", True, "deleted", ()),
)}
CHECKBOXES = frozenset({"prototype", "keepHistory", "activable"})  # create and transfer: ticked or not


def options_of(series: Series, form: Mapping[str, Any]) -> dict[str, str]:
    """The series' options from a submitted form, as the strings the bulk endpoint takes in its query.
    Edit flags left on "keep" are not sent (the devices keep their value); checkboxes send true/false."""
    options: dict[str, str] = {}
    for name in series.options:
        raw = str(form.get(name, ""))
        value = raw if name == "prefix" else raw.strip()  # a prefix may end with a space: "meter 12AB"
        if series.kind == "edit":
            if value in ("true", "false"):
                options[name] = value
        elif name in CHECKBOXES:
            options[name] = "true" if value in ("on", "true") else "false"
        elif value:
            options[name] = value
    return options


def device_filter(query: Mapping[str, str]) -> dict[str, str]:
    """The device list's filter from its query string: GET /v2/devices/'s own parameters, without those
    that only page or arrange the list."""
    return {k: v for k, v in query.items() if k not in DISPLAY_ONLY and v != ""}


def filter_text(query: Mapping[str, str]) -> str:
    """The filter as a query string (carried by the forms and the links back to the list)."""
    return urlencode(sorted(device_filter(query).items()))


def parse_filter(text: str) -> dict[str, str]:
    return device_filter(dict(parse_qsl(text, keep_blank_values=False)))


def id_lines(ids: list[str]) -> bytes:
    """A CSV of one device id per line (a series taken from the current filter)."""
    return "".join(f"{i}\n" for i in ids).encode()


@dataclass(frozen=True)
class RowOutcome:
    row: int
    entity: str | None
    field: str | None
    message: str


@dataclass(frozen=True)
class Report:
    """A dry run's (or a synchronous run's) report, ready to show."""

    total: int
    success: int
    errors: list[RowOutcome]
    accepted: list[RowOutcome]
    error_count: int
    accepted_count: int


def report_of(body: Mapping[str, Any]) -> Report:
    """The rows of a bulk report (`{total, status: {success, errors}, accepted}`), errors by line."""
    status = body.get("status") or {}
    errors = sorted((RowOutcome(int(e.get("row") or 0), e.get("entity"), e.get("field"), str(e.get("message", "")))
                     for e in status.get("errors") or []), key=lambda o: o.row)
    accepted = [RowOutcome(int(a["row"]), a.get("entity"), None, "") for a in body.get("accepted") or []]
    return Report(int(body.get("total", 0)), int(status.get("success", 0)), errors[:SHOWN_ERRORS],
                  accepted[:SHOWN_ACCEPTED], len(errors), len(accepted))

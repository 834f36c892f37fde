"""The device list's filter: the query string of /console/devices holds GET /v2/devices/'s own parameter
names, so it can be given to the API as it is (the series pages take "the current filter" that way).

The form's two date fields (`lastSeenFrom`, `lastSeenTo`: datetime-local, read as UTC) are the one exception:
the list turns them into the API's `lastComSince` / `lastComBefore` (epoch ms) and redirects to that query.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from urllib.parse import urlencode

# GET /v2/devices/'s filter parameters (the same for /v2/devices/count).
FILTER_KEYS = ("id", "name", "state", "groupIds", "deep", "deviceTypeId", "lastComSince", "lastComBefore",
               "minId", "maxId")
# The list's own parameters besides the filter (the API's names too).
LIST_KEYS = ("sort", "limit", "offset")
DATE_FIELDS = {"lastSeenFrom": "lastComSince", "lastSeenTo": "lastComBefore"}
DATE_FORMAT = "%Y-%m-%dT%H:%M"


class BadDate(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def api_filter(query: Mapping[str, str]) -> dict[str, str]:
    """The filter parameters of a query that are set (`deep` only with `groupIds`, where it means something)."""
    kept = {k: query[k].strip() for k in FILTER_KEYS if query.get(k, "").strip()}
    if "groupIds" not in kept:
        kept.pop("deep", None)
    return kept


def has_dates(query: Mapping[str, str]) -> bool:
    """The query comes from the filter form (it holds the date fields to turn into the API's)."""
    return any(k in query for k in DATE_FIELDS)


def from_form(query: Mapping[str, str]) -> dict[str, str]:
    """The list's query (API names only) for a submitted filter form; BadDate names a date that is not one."""
    out = {k: query[k] for k in (*FILTER_KEYS, *LIST_KEYS) if query.get(k, "").strip() and k not in DATE_FIELDS.values()}
    out.pop("offset", None)  # a new filter starts at its first page
    for form_name, api_name in DATE_FIELDS.items():
        text = query.get(form_name, "").strip()
        if text:
            out[api_name] = str(ms_of(form_name, text))
    if "groupIds" not in out:
        out.pop("deep", None)
    return out


def ms_of(field: str, text: str) -> int:
    """Epoch ms of a datetime-local value (`YYYY-MM-DDTHH:MM[:SS]`, UTC)."""
    for fmt in (DATE_FORMAT, DATE_FORMAT + ":%S"):
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp() * 1000)
        except ValueError:
            continue
    raise BadDate(field, f"{text[:40]!r} is not a date and time (YYYY-MM-DDTHH:MM)")


def date_value(ms: str | None) -> str:
    """The datetime-local value (UTC) of an epoch-ms query value; empty when there is none or it is not one."""
    if not ms or not ms.isdigit():
        return ""
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).strftime(DATE_FORMAT)


def query_string(values: Mapping[str, str]) -> str:
    return urlencode({k: v for k, v in values.items() if v != ""})

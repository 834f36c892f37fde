"""The device list's columns: what each shows of a device (as GET /v2/devices/ answers it), which a user
chose (at most `MAX_COLUMNS`, remembered as the preference `deviceColumns`), and the CSV of a list."""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

MAX_COLUMNS = 8
PREFERENCE = "deviceColumns"
# The CSV separator: `;` as the reference's own CSV files (bulk uploads, exports) have it.
CSV_SEPARATOR = ";"
STATES = {0: "OK", 1: "DEAD", 2: "OFF_CONTRACT", 3: "DISABLED", 4: "WARN", 5: "DELETED", 6: "SUSPENDED",
          7: "NOT_ACTIVABLE"}
COM_STATES = {0: "NO", 1: "OK", 2: "WARN", 3: "KO", 4: "NA", 5: "NOT_SEEN"}
LQIS = {0: "LIMIT", 1: "AVERAGE", 2: "GOOD", 3: "EXCELLENT", 4: "NA"}
Device = Mapping[str, Any]


def when(ms: Any) -> str:
    """An epoch-ms time as `YYYY-MM-DD HH:MM:SS` UTC; empty for none (0 is "never" in the API's fields)."""
    if not isinstance(ms, int) or isinstance(ms, bool) or ms <= 0:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def named(link: Any) -> str:
    """A linked object (`{id, name}`, expanded with `fields=`): its name, else its id."""
    if not isinstance(link, Mapping):
        return ""
    return str(link.get("name") or link.get("id") or "")


def location(device: Device) -> str:
    place = device.get("location") or {}
    lat, lng = place.get("lat"), place.get("lng")
    if lat is None or lng is None or (lat == 0 and lng == 0):  # 0,0 is the API's "no fixed position"
        return ""
    return f"{lat:.5f}, {lng:.5f}"


def token(device: Device) -> str:
    held = device.get("token") or {}
    text = str(held.get("detailMessage", ""))
    return f"{text} until {when(held['end'])}" if held.get("end") else text


def state_text(names: Mapping[int, str], key: str) -> Callable[[Device], str]:
    def text(d: Device) -> str:
        value = d.get(key)
        return names.get(value, "" if value is None else str(value)) if isinstance(value, int) else ""
    return text


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    value: Callable[[Device], str]
    sort: str | None = None  # the API's `sort` value ordering by it, if any
    free_text: bool = False  # users write it (a name): never let a spreadsheet run it as a formula


def plain(key: str) -> Callable[[Device], str]:
    return lambda d: "" if d.get(key) is None else str(d[key])


COLUMNS: dict[str, Column] = {c.key: c for c in (
    Column("id", "Id", plain("id"), "id"),
    Column("name", "Name", plain("name"), "name", free_text=True),
    Column("deviceType", "Device type", lambda d: named(d.get("deviceType")), free_text=True),
    Column("group", "Group", lambda d: named(d.get("group")), free_text=True),
    Column("state", "State", state_text(STATES, "state")),
    Column("comState", "Com state", state_text(COM_STATES, "comState")),
    Column("lastCom", "Last seen", lambda d: when(d.get("lastCom")), "lastCom"),
    Column("lqi", "LQI", state_text(LQIS, "lqi")),
    Column("token", "Token", token),
    Column("contract", "Contract", lambda d: named(d.get("contract")), free_text=True),
    Column("sequenceNumber", "Sequence number", plain("sequenceNumber")),
    Column("activationTime", "Activation time", lambda d: when(d.get("activationTime"))),
    Column("creationTime", "Creation time", lambda d: when(d.get("creationTime")), "creationTime"),
    Column("location", "Location", location),
    Column("prototype", "Prototype", lambda d: "yes" if d.get("prototype") else "no"),
    Column("automaticRenewal", "Automatic renewal", lambda d: "yes" if d.get("automaticRenewal") else "no"),
    Column("unsubscriptionTime", "Unsubscription time", lambda d: when(d.get("unsubscriptionTime"))),
    Column("lastEditionTime", "Last edition", lambda d: when(d.get("lastEditionTime"))),
    Column("createdBy", "Created by", plain("createdBy"), free_text=True),
)}
DEFAULT_COLUMNS = ("id", "name", "deviceType", "group", "state", "comState", "lastCom", "lqi")
# What GET /v2/devices/ must expand for the columns that show a linked object's name.
EXPANDS = {"deviceType": "deviceType(name)", "group": "group(name)", "contract": "contract(name)"}


def column_problem(keys: list[str]) -> str | None:
    """Why a choice of columns is refused (None: it is fine)."""
    unknown = [k for k in keys if k not in COLUMNS]
    if unknown:
        return f"unknown column {unknown[0]!r}"
    if not keys:
        return "choose at least one column"
    if len(set(keys)) != len(keys):
        return "a column is chosen twice"
    if len(keys) > MAX_COLUMNS:
        return f"choose at most {MAX_COLUMNS} columns (you chose {len(keys)})"
    return None


def chosen(preferences: Mapping[str, Any]) -> list[Column]:
    """The user's remembered columns, or the default ones when none (or no longer valid ones) are kept."""
    keys = preferences.get(PREFERENCE)
    if not isinstance(keys, list) or column_problem([str(k) for k in keys]) is not None:
        keys = list(DEFAULT_COLUMNS)
    return [COLUMNS[str(k)] for k in keys]


def expand_for(columns: Iterable[Column]) -> str:
    """The `fields=` value the columns need ("" when none)."""
    return ",".join(EXPANDS[c.key] for c in columns if c.key in EXPANDS)


def safe_cell(text: str) -> str:
    """A cell of free text a spreadsheet will not run as a formula (OWASP CSV injection): a leading = + - @
    or control character gets a quote in front, unless the text is a number."""
    if text and text[0] in "=+-@\t\r":
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def csv_line(cells: Iterable[str]) -> str:
    """One CSV line (`CSV_SEPARATOR`, quoted where needed, CRLF)."""
    out = io.StringIO()
    csv.writer(out, delimiter=CSV_SEPARATOR, lineterminator="\r\n").writerow(list(cells))
    return out.getvalue()


def csv_header(columns: Iterable[Column]) -> str:
    return csv_line(c.label for c in columns)


def csv_rows(devices: Iterable[Device], columns: list[Column]) -> str:
    """The CSV lines of `devices` in `columns` (free text made safe for spreadsheets)."""
    return "".join(csv_line(safe_cell(c.value(d)) if c.free_text else c.value(d) for c in columns)
                   for d in devices)

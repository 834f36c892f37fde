"""The rows of a bulk operation, from a JSON body or a CSV upload, each checked on its own.

CSV uploads (Content-Type text/csv or text/plain, UTF-8): one device per line,
cells separated by `;`, empty lines ignored, an optional first header line
(starting with `id`, `deviceId` or `oldId`), an optional UTF-8 byte order mark.
Empty cells are left out. Operation-wide values come as query parameters. Formats:

    create       id;pac[;name[;lat;lng]]      ?deviceTypeId=&prefix=&prototype=
    edit         id;name[;lat;lng]            ?activable=&automaticRenewal=&prototype= (set on every row)
    transfer     id                           ?deviceTypeId=&keepHistory=&activable=
    replace      oldId;newId
    restart, suspend, resume, delete          id
    unsubscribe  id[;unsubscriptionTime]      (epoch ms; default now)

A bad line (not UTF-8, too many cells, a cell that is not a number, and,
after `checked_rows`, a bad hex id or PAC or a repeated id) does not stop the
others: it is reported with its line number, the field and the reason, and the
rest of the file goes on. More than MAX_ROWS lines refuse the whole upload,
naming the first line over the limit.
"""
from __future__ import annotations

from typing import Any, Callable

from oss.device_operations import Row, RowError
from oss.errors import BadRequest, FieldError
from oss.validate import field_errors, known, unset_nulls

MAX_ROWS = 100_000
ACTIONS = ("restart", "suspend", "resume", "delete")
CSV_COLUMNS: dict[str, tuple[tuple[str, Callable[[str], Any]], ...]] = {
    "create": (("id", str), ("pac", str), ("name", str), ("lat", float), ("lng", float)),
    "edit": (("id", str), ("name", str), ("lat", float), ("lng", float)),
    "transfer": (("id", str),),
    "replace": (("deviceId", str), ("targetDeviceId", str)),
    "unsubscribe": (("id", str), ("unsubscriptionTime", int)),
    **{action: (("id", str),) for action in ACTIONS},
}
ROW_SCHEMA = {"create": "bulkCreateRow", "edit": "deviceEditionBulk", "transfer": "bulkTransferRow",
              "replace": "bulkReplaceRow", "unsubscribe": "bulkUnsubscribeRow",
              **{action: "deviceActionRow" for action in ACTIONS}}
_HEADERS = ("id", "deviceid", "oldid")


def csv_rows(kind: str, data: bytes) -> tuple[list[Row], list[RowError]]:
    """The rows of a CSV upload (numbered by line from 1) and the lines that could not be read."""
    columns = CSV_COLUMNS[kind]
    rows: list[Row] = []
    errors: list[RowError] = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(RowError(number, None, None, f"not UTF-8 text (byte {exc.start + 1} of the line)"))
            _too_many(number, len(rows) + len(errors))
            continue
        cells = [c.strip() for c in line.split(";")]
        if not any(cells):
            continue
        if number == 1 and cells[0].lower() in _HEADERS:
            continue
        if len(cells) > len(columns):
            errors.append(RowError(number, cells[0] or None, None,
                                   f"{len(cells)} cells; this operation takes at most {len(columns)}: "
                                   f"{';'.join(name for name, _ in columns)}"))
        else:
            row, problem = _cells(number, columns, cells)
            if problem:
                errors.append(problem)
            else:
                rows.append((number, row))
        _too_many(number, len(rows) + len(errors))
    return rows, errors


def _cells(number: int, columns: tuple[tuple[str, Callable[[str], Any]], ...],
           cells: list[str]) -> tuple[dict[str, Any], RowError | None]:
    row: dict[str, Any] = {}
    for (name, convert), cell in zip(columns, cells, strict=False):
        if cell == "":
            continue
        try:
            row[name] = convert(cell)
        except ValueError:
            return row, RowError(number, cells[0] or None, name, f"{cell[:40]!r} is not a {convert.__name__}")
    return row, None


def json_rows(kind: str, items: list[Any]) -> list[Row]:
    """Rows of a JSON `data` array, numbered from 1; device id lists become `{id}` rows."""
    _too_many(None, len(items))
    return [(i, {"id": item} if kind in ACTIONS else item) for i, item in enumerate(items, start=1)]


def checked_rows(kind: str, rows: list[Row], errors: list[RowError]) -> tuple[list[Row], list[RowError]]:
    """Rows that fit the operation's row schema, ids upper-cased, repeated ids refused."""
    good: list[Row] = []
    first_seen: dict[str, int] = {}
    for number, row in rows:
        entity = row.get("id", row.get("deviceId")) if isinstance(row, dict) else None
        entity = entity if isinstance(entity, str) else None
        row = unset_nulls(row, ROW_SCHEMA[kind])
        problems = field_errors(row, ROW_SCHEMA[kind])
        if problems:
            errors.extend(RowError(number, entity, p.field, p.message) for p in problems)
            continue
        row = known(row, ROW_SCHEMA[kind])
        for key in ("id", "deviceId", "targetDeviceId"):
            if key in row:
                row[key] = row[key].upper()
        key = row.get("id") or row["deviceId"]
        if key in first_seen:
            errors.append(RowError(number, key, "id", f"repeats the device of row {first_seen[key]}"))
            continue
        first_seen[key] = number
        good.append((number, row))
    errors.sort(key=lambda e: e.row)
    return good, errors


def _too_many(line: int | None, count: int) -> None:
    if count > MAX_ROWS:
        where = f"line {line}: " if line is not None else ""
        raise BadRequest(FieldError("data", f"{where}more than {MAX_ROWS} rows; at most {MAX_ROWS} rows per operation"))

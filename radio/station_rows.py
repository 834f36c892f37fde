"""The base-station CSV file: its columns, each field's rule, and a parser that reports every problem.

Pure (no database): the registry import (`oss.station_file`) writes the rows it returns, and the
simulator (`simulator.network.registry_network`) places its stations with them, so both read the
same file the same way. The ranges here are also the API's (`oss.openapi`).
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from radio.path_loss import ENVIRONMENTS

HEADER: Final = ("id", "name", "lat", "lng", "antenna_height_m", "antenna_gain_dbi", "cable_loss_db",
                 "environment", "state")
STATES: Final = ("enabled", "disabled", "planned")
STATION_ID: Final = re.compile(r"[0-9A-Fa-f]{4}")
NAME_MAX: Final = 100
LAT_RANGE: Final = (-90, 90)
LNG_RANGE: Final = (-180, 180)
HEIGHT_RANGE: Final = (1, 300)  # metres above ground
GAIN_RANGE: Final = (-10, 30)   # dBi
CABLE_RANGE: Final = (0, 20)    # dB


@dataclass(frozen=True)
class StationRow:
    """One station as the file (and the registry) describes it; `id` upper-cased."""

    id: str
    name: str
    lat: float
    lng: float
    antenna_height_m: float
    antenna_gain_dbi: float
    cable_loss_db: float
    environment: str
    state: str


class StationFileError(ValueError):
    """A file with problems: `problems` lists every one, e.g. `line 3: lat: 123 is not a latitude (-90..90)`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _number(what: str, bounds: tuple[float, float]) -> Callable[[str], float]:
    lo, hi = bounds

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not lo <= value <= hi:  # NaN fails this too
            raise ValueError(f"{text} is not {what} ({lo:g}..{hi:g})")
        return value
    return parse


def _station_id(text: str) -> str:
    if not STATION_ID.fullmatch(text):
        raise ValueError(f"{text!r} is not a station id (4 hexadecimal digits)")
    return text.upper()


def _name(text: str) -> str:
    if not 1 <= len(text) <= NAME_MAX:
        raise ValueError(f"must be 1 to {NAME_MAX} characters")
    return text


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text
    return parse


PARSERS: Final[dict[str, Callable[[str], object]]] = {
    "id": _station_id, "name": _name,
    "lat": _number("a latitude", LAT_RANGE), "lng": _number("a longitude", LNG_RANGE),
    "antenna_height_m": _number("an antenna height in metres", HEIGHT_RANGE),
    "antenna_gain_dbi": _number("an antenna gain in dBi", GAIN_RANGE),
    "cable_loss_db": _number("a cable loss in dB", CABLE_RANGE),
    "environment": _one_of(ENVIRONMENTS), "state": _one_of(STATES),
}


def parse_row(fields: dict[str, str]) -> tuple[StationRow | None, list[str]]:
    """A row's station, or None and its problems (`field: reason`, each field's own)."""
    values: dict[str, object] = {}
    problems: list[str] = []
    for column in HEADER:
        try:
            values[column] = PARSERS[column]((fields.get(column) or "").strip())
        except ValueError as exc:
            problems.append(f"{column}: {exc}")
    if problems:
        return None, problems
    return StationRow(**values), []  # type: ignore[arg-type]  # every column parsed to its field's type


def parse_stations(text: str) -> list[StationRow]:
    """Every station of a CSV text (header `HEADER`, any column order); StationFileError listing every
    problem, with its line number, when there is any."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or ()]
    missing = [c for c in HEADER if c not in header]
    unknown = [c for c in header if c not in HEADER]
    if missing or unknown:
        raise StationFileError([f"line 1: header: {reason}" for reason in (
            *(f"column {c} is missing" for c in missing), *(f"column {c!r} is unknown" for c in unknown))]
            + [f"line 1: header: expected {','.join(HEADER)}"])
    reader.fieldnames = header
    rows: list[StationRow] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for fields in reader:
        line = reader.line_num
        if None in fields:
            problems.append(f"line {line}: {len(header) + len(fields[None])} values for {len(header)} columns")
            continue
        if not any((v or "").strip() for v in fields.values()):
            continue  # a blank line
        row, found = parse_row(fields)
        problems.extend(f"line {line}: {p}" for p in found)
        if row is None:
            continue
        if row.id in first_line:
            problems.append(f"line {line}: id: {row.id} is already on line {first_line[row.id]}")
            continue
        first_line[row.id] = line
        rows.append(row)
    if problems:
        raise StationFileError(problems)
    return rows


def read_stations(path: str) -> list[StationRow]:
    """The stations of a CSV file (UTF-8, an optional BOM); StationFileError as `parse_stations`."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        return parse_stations(f.read())

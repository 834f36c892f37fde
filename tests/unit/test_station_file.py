"""The base-station CSV parser (radio/station_rows.py): what it accepts, and every problem named by line."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radio.path_loss import ENVIRONMENTS
from radio.station_rows import HEADER, STATES, StationFileError, StationRow, parse_stations, read_stations
from simulator.network import registry_network

ROOT = Path(__file__).resolve().parents[2]
HEAD = ",".join(HEADER)
GOOD = "a00b,Capitole,43.6045,1.4442,35,6,2,dense-urban,enabled"


def problems_of(text: str) -> list[str]:
    with pytest.raises(StationFileError) as caught:
        parse_stations(text)
    return caught.value.problems


def csv_text(rows: list[dict[str, object]], header: tuple[str, ...] = HEADER) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


stations = st.fixed_dictionaries({
    "id": st.integers(0, 0xFFFF).map(lambda i: f"{i:04x}"),
    "name": st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=100).filter(
        lambda s: s.strip() == s and s),
    "lat": st.floats(-90, 90), "lng": st.floats(-180, 180),
    "antenna_height_m": st.floats(1, 300), "antenna_gain_dbi": st.floats(-10, 30), "cable_loss_db": st.floats(0, 20),
    "environment": st.sampled_from(ENVIRONMENTS), "state": st.sampled_from(STATES)})


@given(st.lists(stations, max_size=8, unique_by=lambda r: r["id"]), st.permutations(HEADER))
def test_valid_rows_come_back_as_written_in_any_column_order(rows, order):
    parsed = parse_stations(csv_text(rows, tuple(order)))
    assert parsed == [StationRow(**{**r, "id": r["id"].upper()}) for r in rows]  # type: ignore[arg-type]


@given(st.sampled_from(["lat", "lng", "antenna_height_m", "antenna_gain_dbi", "cable_loss_db"]),
       st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                 st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=5)))
def test_a_bad_number_is_named_with_its_line_and_field(column, value):
    bounds = {"lat": (-90, 90), "lng": (-180, 180), "antenna_height_m": (1, 300), "antenna_gain_dbi": (-10, 30),
              "cable_loss_db": (0, 20)}[column]
    try:
        number = float(str(value))
    except ValueError:
        number = math.nan
    row = dict(zip(HEADER, GOOD.split(","), strict=True), **{column: str(value)})
    text = csv_text([{"id": "0001", **{k: v for k, v in row.items() if k != "id"}}])
    if bounds[0] <= number <= bounds[1]:
        assert parse_stations(text)[0].id == "0001"
    else:
        problems = problems_of(text)
        assert len(problems) == 1 and problems[0].startswith(f"line 2: {column}: ")


def test_every_problem_of_a_file_is_reported_with_its_line():
    text = "\n".join([HEAD, GOOD, "zz,,123,1,0,31,-1,city,on", "A00B,again,1,1,30,6,2,urban,enabled",
                      "A00C,short,1,1", "A00D,long,1,1,30,6,2,urban,enabled,extra"]) + "\n"
    assert problems_of(text) == [
        "line 3: id: 'zz' is not a station id (4 hexadecimal digits)",
        "line 3: name: must be 1 to 100 characters",
        "line 3: lat: 123 is not a latitude (-90..90)",
        "line 3: antenna_height_m: 0 is not an antenna height in metres (1..300)",
        "line 3: antenna_gain_dbi: 31 is not an antenna gain in dBi (-10..30)",
        "line 3: cable_loss_db: -1 is not a cable loss in dB (0..20)",
        "line 3: environment: 'city' is not one of dense-urban, urban, suburban, rural",
        "line 3: state: 'on' is not one of enabled, disabled, planned",
        "line 4: id: A00B is already on line 2",
        "line 5: antenna_height_m: '' is not a number",
        "line 5: antenna_gain_dbi: '' is not a number",
        "line 5: cable_loss_db: '' is not a number",
        "line 5: environment: '' is not one of dense-urban, urban, suburban, rural",
        "line 5: state: '' is not one of enabled, disabled, planned",
        "line 6: 10 values for 9 columns",
    ]


def test_a_wrong_header_is_refused_before_any_row():
    problems = problems_of("id,name,lat,lon,antenna_height_m,antenna_gain_dbi,cable_loss_db,environment,state\n"
                           + GOOD + "\n")
    assert problems[:2] == ["line 1: header: column lng is missing", "line 1: header: column 'lon' is unknown"]
    assert problems[-1] == f"line 1: header: expected {HEAD}"
    assert problems_of("")[0] == "line 1: header: column id is missing"


def test_blank_lines_are_skipped_and_line_numbers_count_them():
    problems = problems_of(f"{HEAD}\n\n{GOOD}\n\nA00E,x,1,1,30,6,2,urban,sleeping\n")
    assert problems == ["line 5: state: 'sleeping' is not one of enabled, disabled, planned"]


def test_the_example_file_is_valid_and_the_simulator_uses_its_enabled_stations():
    rows = read_stations(str(ROOT / "deploy" / "stations.example.csv"))
    assert len(rows) >= 12 and {"planned"} <= {r.state for r in rows}
    network = registry_network(rows, 40, seed=3)
    assert [s.id for s in network.stations] == [r.id for r in rows if r.state == "enabled"]
    lats, lngs = [s.lat for s in network.stations], [s.lng for s in network.stations]
    for d in network.devices:  # scattered over the area the stations span
        assert min(lats) <= d.lat <= max(lats) and min(lngs) <= d.lng <= max(lngs)
        assert [s for _, s in d.nearest][0] in network.stations
    with pytest.raises(ValueError, match="no enabled station"):
        registry_network([r for r in rows if r.state != "enabled"], 1)

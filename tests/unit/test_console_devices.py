"""The device list's pure logic: column choice, CSV lines, the filter's query, the server-drawn SVG."""
from __future__ import annotations

import csv

import pytest

from console import charts
from console import device_columns as cols
from console import device_filter as filters


def test_a_column_choice_is_refused_with_the_reason():
    eight = list(cols.COLUMNS)[:8]
    assert cols.column_problem(eight) is None
    assert cols.column_problem([*eight, "contract"]) == "choose at most 8 columns (you chose 9)"
    assert cols.column_problem([]) == "choose at least one column"
    assert cols.column_problem(["id", "id"]) == "a column is chosen twice"
    assert cols.column_problem(["id", "password"]) == "unknown column 'password'"


def test_remembered_columns_fall_back_to_the_default_when_missing_or_no_longer_valid():
    default = [c.key for c in cols.chosen({})]
    assert default == list(cols.DEFAULT_COLUMNS)
    assert [c.key for c in cols.chosen({cols.PREFERENCE: ["lqi", "id"]})] == ["lqi", "id"]
    assert [c.key for c in cols.chosen({cols.PREFERENCE: ["gone"]})] == default
    assert [c.key for c in cols.chosen({cols.PREFERENCE: "id"})] == default


def test_every_column_shows_a_text_for_a_device_missing_its_optional_fields():
    bare = {"id": "1A", "name": "1A", "deviceType": {"id": "t"}, "group": {"id": "g"}, "state": 0, "comState": 5,
            "lqi": 4, "lastCom": 0}
    shown = {k: c.value(bare) for k, c in cols.COLUMNS.items()}
    assert shown["state"] == "OK" and shown["comState"] == "NOT_SEEN" and shown["lqi"] == "NA"
    assert shown["lastCom"] == "" and shown["location"] == "" and shown["contract"] == ""
    assert cols.COLUMNS["location"].value({"location": {"lat": 43.6, "lng": -1.25}}) == "43.60000, -1.25000"
    assert cols.COLUMNS["lastCom"].value({"lastCom": 1_700_000_000_000}) == "2023-11-14 22:13:20"
    assert cols.expand_for(cols.chosen({})) == "deviceType(name),group(name)"


def test_csv_lines_are_semicolon_separated_quoted_and_never_formulas():
    chosen = [cols.COLUMNS["id"], cols.COLUMNS["name"], cols.COLUMNS["location"]]
    text = cols.csv_header(chosen) + cols.csv_rows(
        [{"id": "A1", "name": 'a; "quoted" name', "location": {"lat": -3.5, "lng": 2.0}},
         {"id": "A2", "name": "=HYPERLINK(1)", "location": {"lat": 0, "lng": 0}},
         {"id": "A3", "name": "-12", "location": {"lat": 1, "lng": 1}}], chosen)
    assert text.endswith("\r\n")
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    assert rows == [["Id", "Name", "Location"], ["A1", 'a; "quoted" name', "-3.50000, 2.00000"],
                    ["A2", "'=HYPERLINK(1)", ""], ["A3", "-12", "1.00000, 1.00000"]]


def test_the_filter_keeps_the_api_names_and_turns_the_form_dates_into_epoch_ms():
    query = {"id": "", "name": " pump ", "deep": "true", "limit": "20", "offset": "40", "sort": "-lastCom",
             "lastSeenFrom": "2026-12-03T10:00", "lastSeenTo": "", "other": "x"}
    assert filters.has_dates(query)
    assert filters.from_form(query) == {"name": " pump ", "limit": "20", "sort": "-lastCom",
                                        "lastComSince": "1796292000000"}
    assert filters.api_filter({"name": " pump ", "deep": "true", "state": "0"}) == {"name": "pump", "state": "0"}
    assert filters.api_filter({"groupIds": "a" * 24, "deep": "true"}) == {"groupIds": "a" * 24, "deep": "true"}
    assert filters.date_value("1796292000000") == "2026-12-03T10:00"
    assert filters.date_value("soon") == ""
    with pytest.raises(filters.BadDate) as bad:
        filters.from_form({"lastSeenTo": "yesterday"})
    assert bad.value.field == "lastSeenTo" and "not a date and time" in str(bad.value)


def test_the_radio_chart_draws_one_point_per_message_in_each_series_it_has():
    messages = [{"time": 1000 * i, "lqi": i % 5, "rinfos": [{"rssi": f"{-120 + i}.00", "snr": "7.50"},
                                                            {"rssi": "-130.00"}]} for i in range(6)]
    messages.append({"time": 9000, "lqi": 4, "rinfos": [{}]})
    svg = str(charts.radio_chart([charts.sample_of(m) for m in messages]))
    assert svg.count('class="point rssi"') == 6 and svg.count('class="point snr"') == 6
    assert svg.count('class="point lqi"') == 5, "LQI 4 (not known: i = 4 and the last) is not charted"
    assert charts.sample_of(messages[4]) == charts.Sample(4000, -116.0, 7.5, None)
    assert "No message" in str(charts.radio_chart([]))
    assert "<script" not in svg and "style=" not in svg

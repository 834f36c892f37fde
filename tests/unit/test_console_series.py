"""The console's series pages, their pure parts (console/series_plan.py): options as the bulk endpoints'
query parameters, the device list's filter, reports to show."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from console.series_plan import (
    SERIES,
    SHOWN_ACCEPTED,
    device_filter,
    filter_text,
    id_lines,
    options_of,
    parse_filter,
    report_of,
)
from oss.bulk_rows import csv_rows


def test_options_become_the_endpoint_query():
    assert options_of(SERIES["create"], {"deviceTypeId": " 64a0 ", "prefix": "meter ", "prototype": "on"}) == \
        {"deviceTypeId": "64a0", "prefix": "meter ", "prototype": "true"}
    assert options_of(SERIES["transfer"], {"deviceTypeId": "t1", "activable": "on"}) == \
        {"deviceTypeId": "t1", "keepHistory": "false", "activable": "true"}
    # Edit: "keep" sends nothing, so each device keeps its value.
    assert options_of(SERIES["edit"], {"activable": "", "automaticRenewal": "false", "prototype": "true",
                                       "name": "ignored"}) == {"automaticRenewal": "false", "prototype": "true"}
    assert options_of(SERIES["delete"], {"deviceTypeId": "t1"}) == {}


def test_the_filter_keeps_what_chooses_devices_not_how_they_are_shown():
    query = {"deviceTypeId": "t1", "groupIds": "g1,g2", "deep": "true", "limit": "50", "offset": "100",
             "fields": "name", "columns": "id,name", "name": ""}
    assert device_filter(query) == {"deviceTypeId": "t1", "groupIds": "g1,g2", "deep": "true"}
    assert parse_filter(filter_text(query)) == device_filter(query)


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=6))
def test_a_filter_survives_its_trip_through_a_form(query):
    assert parse_filter(filter_text(query)) == device_filter(query)


@given(st.lists(st.integers(0, 0xFFFFFFFF).map(lambda v: f"{v:X}"), unique=True, max_size=50))
def test_the_ids_of_a_filter_are_read_back_by_the_bulk_csv_reader(ids):
    rows, errors = csv_rows("delete", id_lines(ids))
    assert errors == [] and [r["id"] for _, r in rows] == ids


def test_a_report_lists_errors_by_line_and_counts_beyond_what_it_shows():
    body = {"total": 500, "dryRun": True, "accepted": [{"row": n, "entity": f"{n:X}"} for n in range(1, 499)],
            "status": {"success": 498, "errors": [{"row": 500, "entity": "X", "message": "device not found"},
                                                  {"row": 499, "field": "pac", "message": "bad"}]}}
    report = report_of(body)
    assert [(e.row, e.entity, e.field) for e in report.errors] == [(499, None, "pac"), (500, "X", None)]
    assert (report.total, report.success, report.error_count, report.accepted_count) == (500, 498, 2, 498)
    assert len(report.accepted) == SHOWN_ACCEPTED and report.accepted[0].entity == "1"

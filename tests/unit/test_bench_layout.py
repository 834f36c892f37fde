"""`backhaul bench --workers`: presets and layouts, with several instances of a stage."""
from __future__ import annotations

import pytest

from bench.pipeline import parse_layout, process_names


def test_presets():
    assert parse_layout("4") == ["ingest", "router", "delivery", "store,relay"]
    assert parse_layout("6") == ["ingest", "ingest", "router", "delivery", "delivery", "store,relay"]


def test_a_stage_named_in_two_processes_runs_twice():
    assert parse_layout(" ingest ; ingest;router, delivery;store ,relay") == [
        "ingest", "ingest", "router,delivery", "store,relay"]


@pytest.mark.parametrize("spec", [
    "ingest;router;delivery",                          # store and relay missing
    "ingest;router;delivery;store,relay;relay",        # the relay is not a consumer-group stage
    "ingest,ingest;router;delivery;store,relay",       # twice in one process
    "ingest;router;delivery;store,relay;nothing",      # not a role
])
def test_a_layout_that_is_not_one_is_refused_saying_what_is_allowed(spec):
    with pytest.raises(ValueError, match="may be named in more than one process"):
        parse_layout(spec)


def test_process_names_are_unique_with_a_number_for_each_further_instance():
    assert process_names(parse_layout("6")) == ["ingest", "ingest#2", "router", "delivery", "delivery#2",
                                                "store,relay"]

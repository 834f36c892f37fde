"""`backhaul up --scale` / `backhaul scale`: several instances of a stream stage in the supervisor's plan."""
from __future__ import annotations

import pytest

from program.cli import DEMO_PROCESSES, build_parser
from program.roles import role_metrics_port
from program.scaling import base_plan, instance_counts, parse_scale, scaled
from program.supervisor import Planned


def _plan() -> list[Planned]:
    return [Planned(name, argv) for name, argv in DEMO_PROCESSES]


def test_parse_scale_reads_each_process_and_count():
    assert parse_scale("ingest=2, delivery=3") == {"ingest": 2, "delivery": 3}
    assert parse_scale("") == {}


@pytest.mark.parametrize("text, reason", [
    ("ingest", "write PROCESS=COUNT"),
    ("api=2", "'api' is not a process that scales"),
    ("downlink=2", "'downlink' is not a process that scales"),
    ("ingest=0", "from 1 to 9"),
    ("ingest=10", "from 1 to 9"),
    ("ingest=two", "from 1 to 9"),
])
def test_a_bad_scale_is_refused_naming_the_part(text, reason):
    with pytest.raises(ValueError, match=reason) as raised:
        parse_scale(text)
    assert repr(text.split(",")[0]) in str(raised.value)


def test_extra_instances_follow_their_process_with_ports_ten_apart():
    plan = scaled(_plan(), {"ingest": 3, "delivery": 2})
    names = [p.name for p in plan]
    assert names[:4] == ["ingest", "ingest-2", "ingest-3", "router"]
    assert names[names.index("delivery") + 1] == "delivery-2"
    by_name = {p.name: p for p in plan}
    assert by_name["ingest"].argv == ["worker", "--roles", "ingest"]  # the first keeps its role's port
    assert by_name["ingest-2"].argv == ["worker", "--roles", "ingest", "--metrics-port",
                                        str(role_metrics_port("ingest") + 10)]
    assert by_name["ingest-3"].argv[-1] == str(role_metrics_port("ingest") + 20)
    assert by_name["delivery-2"].argv[-1] == str(role_metrics_port("delivery") + 10)
    ports = [int(p.argv[-1]) for p in plan if "--metrics-port" in p.argv]
    assert len(set(ports)) == len(ports)
    assert not set(ports) & {role_metrics_port(r) for r in ("ingest", "router", "delivery", "store", "relay",
                                                          "stations", "acks", "dispatch", "simulate")}


def test_counts_are_read_back_and_the_base_plan_recovered():
    plan = scaled(_plan(), {"ingest": 3, "store": 2})
    assert instance_counts(plan) == {"ingest": 3, "router": 1, "delivery": 1, "store": 2}
    assert [p.name for p in base_plan(plan)] == [p.name for p in _plan()]
    # Scaling down is scaling the base plan again.
    assert [p.name for p in scaled(base_plan(plan), {"ingest": 1})] == [p.name for p in _plan()]


def test_the_cli_takes_scale_on_up_and_on_its_own():
    parser = build_parser()
    assert parser.parse_args(["up", "--scale", "ingest=2"]).scale == {"ingest": 2}
    assert parser.parse_args(["up"]).scale == {}
    assert parser.parse_args(["scale", "delivery=2,router=2"]).counts == {"delivery": 2, "router": 2}
    with pytest.raises(SystemExit):
        parser.parse_args(["scale", "api=2"])

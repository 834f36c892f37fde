"""A short `backhaul bench` run through the same code: every message is counted, a dropped one as lost."""
from __future__ import annotations

import pytest

from bench.load import build_networks
from bench.report import format_table
from bench.run import bench, build_parser, validate

pytestmark = pytest.mark.integration

ARGV = ["--stations", "3", "--devices", "30", "--unregistered", "1", "--rate", "60", "--duration", "4",
        "--window", "2", "--grace", "4", "--workers", "1", "--receiver", "in-process", "--quiet", "--no-plot"]


async def test_short_bench_accounts_for_every_message(stack, tmp_path):
    argv = [*ARGV, "--out", str(tmp_path)]
    args = build_parser().parse_args(argv)
    validate(args)
    result = await bench(args, argv)

    [step] = result["steps"]
    acc = step["accounting"]
    sent = acc["sent"]
    assert sent == step["sent"]["messages"] == step["sent"]["simulator"]["messages"] > 100
    # Every message sent is either delivered or lost, for each kind of callback.
    for kind in ("data", "advanced"):
        assert acc[kind]["delivered"] + acc[kind]["lost"] == sent
        assert acc[kind]["duplicates"] == 0
    assert acc["unmatched"] == 0

    # The unregistered device's messages are rejected by ingest: exactly those are reported lost.
    ghost = build_networks(3, 30, unregistered=1).unregistered
    dropped = step["sent"]["unregisteredMessages"]
    assert dropped >= 1
    assert acc["lostMessages"] == acc["data"]["lost"] == acc["advanced"]["lost"] == dropped
    assert {device for device, _ in acc["data"]["lostSample"]} == ghost
    assert step["latencyMs"]["count"] == acc["data"]["delivered"] == sent - dropped
    assert step["advancedLatenessMs"]["count"] == acc["advanced"]["delivered"]

    # The CPU of Kafka and of PostgreSQL (its postmaster and backends, found where deploy/local put the
    # cluster) is measured beside the workers'.
    cpu = step["cpu"]["load"]["cpuSeconds"]
    assert cpu["kafka (shared)"] > 0 and cpu["postgresql (shared)"] > 0

    # The same run measured its ceilings and renders a report.
    assert result["ceilings"]["kafka"]["framesPerS"] > 0 and result["ceilings"]["http"]["requestsPerS"] > 0
    assert result["summary"]["lostMessages"] == dropped
    table = format_table(result)
    assert "raw aiokafka ceiling" in table and f"{dropped} lost messages" in table

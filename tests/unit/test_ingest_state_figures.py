"""bench/ingest_state.py's figures from a /proc status text and a worker's log, without the stack."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson

from bench.ingest_state import log_figures, parse_memory, per_device

STATUS = "Name:\tpython\nVmPeak:\t  900000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t3\n"


def test_memory_is_read_in_bytes():
    assert parse_memory(STATUS) == {"rssBytes": 100 * 1024 * 1024, "peakBytes": 200 * 1024 * 1024}
    assert per_device({"rssBytes": 3_000_000}, {"rssBytes": 1_000_000}, 1000) == 2000


def _line(ts: str, msg: str, **extra: object) -> str:
    return orjson.dumps({"ts": ts, "level": "info", "logger": "x", "msg": msg, **extra}).decode()


def test_log_figures_time_the_view_and_the_restore_from_the_start():
    started = datetime(2026, 12, 5, 1, 0, 0, tzinfo=timezone.utc).timestamp()
    log = "\n".join([
        _line("2026-12-05T01:00:00.500Z", "worker starting"),
        "Traceback (most recent call last): not JSON",
        _line("2026-12-05T01:00:02.250Z", "config view loaded", records=10, devices=8),
        _line("2026-12-05T01:00:03.125Z", "ingest state restored", partitions=[0, 1], devices=8, seconds=0.7),
    ])
    assert log_figures(log, started) == {"configLoadedS": 2.25, "restoredS": 3.125, "restoreSeconds": 0.7,
                                         "restoredDevices": 8}
    assert log_figures(_line("2026-12-05T01:00:01.000Z", "stage started"), started) == {}

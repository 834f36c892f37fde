"""The Kafka client's repeated lines are thinned out; Backhaul's own lines never are."""
from __future__ import annotations

import io
import logging

import orjson

from backhaul.logs import JsonFormatter, RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def logger_with(flt: RepeatFilter, name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(flt)
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, stream


def lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_a_client_line_passes_once_per_period_then_says_how_many_were_left_out():
    clock = Clock()
    flt = RepeatFilter(every_s=10.0, clock=clock)
    log, stream = logger_with(flt, "aiokafka.test")
    for i in range(500):                             # a reconnection loop, every 10 ms
        clock.now = i * 0.01
        log.error("Unable connect to %r: %s", "127.0.0.1:1", f"[Errno 111] attempt {i}")
    log.warning("Unable to update metadata from %s", [1])   # another template passes at once
    clock.now = 10.5
    log.error("Unable connect to %r: %s", "127.0.0.1:1", "[Errno 111] again")
    got = lines(stream)
    assert [(g["msg"], g.get("repeated")) for g in got] == [
        ("Unable connect to '127.0.0.1:1': [Errno 111] attempt 0", None),
        ("Unable to update metadata from [1]", None),
        ("Unable connect to '127.0.0.1:1': [Errno 111] again", 499),
    ]


def test_backhauls_own_lines_are_never_held_back():
    flt = RepeatFilter(every_s=10.0, clock=Clock())
    log, stream = logger_with(flt, "backhaul.test")
    for _ in range(50):
        log.warning("Kafka or PostgreSQL unavailable: trying again")
    assert len(lines(stream)) == 50

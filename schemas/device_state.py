"""The `ingest.state` record: one device's ingest state, the changelog ingest restores from.

Ingest writes the state of every device a batch changed, keyed by device id,
into the partition of `ingest.state` that matches the device's partition of
`frames` (the two topics are co-partitioned); the topic is compacted, so the
latest state of each device is what a worker reads back when it is assigned
the partition. Keys are short because the record is written for every touched
device of every batch:

    {"d": "00AB12CD", "rg": <registration id> | null,
     "ls": <last seqNumber> | null, "lt": <its time, ms> | null, "ts": <last trashed seqNumber> | null,
     "w": [<window>, ...], "ow": [<out-of-band window>, ...],
     "c": [[<seqNumber, +4096 out of band>, <closed at, epoch s>], ...],
     "ds": <the disengage (devices.disengaged_at) already applied>,
     "seen": <last frame's append time, epoch s> | null, "ka": <keep-alive deadline, epoch s> | null,
     "br": <breached at, epoch s> | null, "day": <UTC day number>, "dc": <messages that day>,
     "snr": [<SNR of the last messages>, ...]}

A window is a list: `[message id, seqNumber, time (ms), opened at (epoch s),
deadline (epoch s), data, ack, oob, {station: [best rssi, best snr,
repetitions bitmask, freq]}, registration id]` (`ingest.engine.Window`).
States written before registrations have no `rg`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NotRequired, TypedDict, cast

import orjson

from schemas.fields import Fields, NoneType, checked

WindowRecord = list[Any]


class DeviceStateRecord(TypedDict):
    d: str
    ls: int | None
    lt: int | None
    ts: int | None
    w: list[WindowRecord]
    ow: list[WindowRecord]
    c: list[list[float]]
    ds: int
    seen: float | None
    ka: float | None
    br: float | None
    day: int
    dc: int
    snr: list[float]
    rg: NotRequired[int | None]


_OR_NULL = (int, float, NoneType)
REQUIRED: Fields = (("d", (str,)), ("ls", (int, NoneType)), ("lt", (int, NoneType)), ("ts", (int, NoneType)),
                    ("w", (list,)), ("ow", (list,)), ("c", (list,)), ("ds", (int,)), ("seen", _OR_NULL),
                    ("ka", _OR_NULL), ("br", _OR_NULL), ("day", (int,)), ("dc", (int,)), ("snr", (list,)))
OPTIONAL: Fields = (("rg", (int, NoneType)),)


# The record as JSON; orjson's own function, so that the hot path adds no Python call.
encode_device_state: Callable[[DeviceStateRecord], bytes] = orjson.dumps


def decode_device_state(raw: bytes) -> DeviceStateRecord:
    """A device's state in a changelog record's value; raises naming the field it cannot use."""
    return cast(DeviceStateRecord, checked(orjson.loads(raw), "device state", REQUIRED, OPTIONAL))

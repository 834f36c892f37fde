"""Hostile frames on the real stack: nothing a gateway sends stops ingest or reaches a customer.

Ingest runs in a process of its own; router, delivery, store and relay in
another, with a receiver as the customer's server. Between valid frames of
registered devices we publish a 1 MB binary frame, 400 KB of bytes JSON would
escape, a 1 MB JSON frame holding a huge string, deeply nested JSON, invalid
UTF-8, control characters, NaN, duplicate keys, a 1 MB key, and 10,000
seeded fuzz frames (random bytes, mutated valid frames, wrong types, frames
of unregistered devices). Every bad frame must end as exactly one small
`frames.rejected` record with the reason our own decoder gives it, every valid
frame must reach the receiver, and the ingest process must never restart.
"""
from __future__ import annotations

import asyncio
import collections
import random
import re
import time

import orjson
import pytest

from backhaul.topics import topic
from schemas.frames import FrameError, decode_frame
from schemas.topics import DEAD_LETTERS, FRAMES, FRAMES_REJECTED
from tests.conftest import frame, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SEED = 20261203
FUZZ_FRAMES = 10_000
MAX_FRAME_BYTES = 4096
# `<field>.<what>`, or one of the engine's documented reasons for a well-formed frame.
REASON = re.compile(r"[A-Za-z]+\.[a-z-]+|unknown-device|device-suspended|off-contract")


def hostile_frames(rng: random.Random, valid: dict) -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(what, key, value, the reason it must get) of the named hostile frames."""
    body = orjson.dumps(valid)
    escape_heavy = (bytes(range(32)) + b'"\\') * (400_000 // 34)
    return [
        ("1 MB of binary", b"00AB12CD", rng.randbytes(1_000_000), "frame.size"),
        ("400 KB of escape-heavy bytes", b"00AB12CD", escape_heavy, "frame.size"),
        ("1 MB JSON frame with a huge string", b"00AB12CD", orjson.dumps({**valid, "pad": "x" * 990_000}),
         "frame.size"),
        ("deeply nested JSON, 1 MB", b"00AB12CD", b"[" * 500_000 + b"]" * 500_000, "frame.size"),
        ("deeply nested JSON, under the size limit", b"00AB12CD", b"[" * 2000 + b"]" * 2000, "frame.depth"),
        ("nested objects", b"00AB12CD", b'{"a":' * 600 + b"1" + b"}" * 600, "station.missing"),
        ("invalid UTF-8", b"00AB12CD", body[:-1] + b',"x":"\xff\xfe\xc3\x28"}', "frame.encoding"),
        ("a lone surrogate", b"00AB12CD", body[:-1] + b',"x":"\\udc00"}', "frame.encoding"),
        ("raw control characters", b"00AB12CD", body[:-1] + b',"x":"\x00\x07\x1b"}', "frame.control"),
        ("NaN", b"00AB12CD", body.replace(b'"rssi":-100.0', b'"rssi":NaN'), "frame.number"),
        ("a number beyond a double", b"00AB12CD", body.replace(b'"rssi":-100.0', b'"rssi":-1e999'), "frame.number"),
        ("duplicate keys", b"00AB12CD", body[:-1] + b',"device":"100000"}', "frame.duplicate"),
        ("a JSON array", b"00AB12CD", orjson.dumps([valid]), "frame.type"),
        ("a JSON string", b"00AB12CD", orjson.dumps(body.decode()), "frame.type"),
        ("an empty value", b"00AB12CD", b"", "frame.missing"),
        ("a tombstone", b"00AB12CD", None, "frame.missing"),
        ("a 1 MB key", rng.randbytes(1_000_000), body, "frame.size"),
    ]


JUNK_VALUES = [None, "", "1A2B" * 300, [], {}, [1, [2, [3]]], {"a": {"b": {}}}, True, False, 1.5, -1, 0,
               2 ** 63 - 1, -(2 ** 63), 1e308, -1e-308, "\u202e\u0000\ufeff", "{device}", "%s%n", "ffff",
               "ZZZZZZZZ", 4096, 4095, -201, 6_000_000_001]
MUTATIONS = ("flip", "insert", "delete", "repeat", "truncate")


def fuzz_frames(rng: random.Random, n: int) -> list[tuple[str, bytes | None, bytes | None, None]]:
    """Seeded fuzz: random bytes, mutated valid frames, wrong types, random JSON, unregistered devices.

    Every frame names a device outside the registered range (registered ids are 6 hex characters
    from 100000; fuzz ids are 8 from F0000000) and a station that is not registered (A000-A0FF), so
    even a mutation that happens to be valid is refused (`station.unknown`, or `unknown-device`
    when a mutation lands on a registered station) and never becomes a message.
    """
    out = []
    for _ in range(n):
        device = f"F{rng.randrange(16 ** 7):07X}"
        base = frame(device, rng.randrange(4096), station=f"{rng.randrange(0xA000, 0xA100):04X}",
                     data=rng.randbytes(rng.randrange(13)).hex(), rssi=-float(rng.randrange(60, 150)))
        kind = rng.choice(("random-bytes", "mutated", "wrong-type", "random-json", "unregistered"))
        if kind == "random-bytes":
            value = rng.randbytes(rng.choice((0, 1, 2, 8, 64, 250, 600, 5000)))
        elif kind == "mutated":
            raw = bytearray(orjson.dumps(base))
            for _ in range(rng.randrange(1, 5)):
                at = rng.randrange(len(raw))
                op = rng.choice(MUTATIONS)
                if op == "flip":
                    raw[at] = rng.randrange(256)
                elif op == "insert":
                    raw[at:at] = bytes([rng.choice((0, 0x22, 0x5C, 0x7B, 0x5B, 0x3A, 0x2C, rng.randrange(256)))])
                elif op == "delete":
                    del raw[at]
                elif op == "repeat":
                    raw[at:at] = raw[at:at + rng.randrange(1, 40)] * rng.randrange(1, 4)
                elif len(raw) > 2:
                    del raw[rng.randrange(1, len(raw)):]
            value = bytes(raw)
        elif kind == "wrong-type":
            field = rng.choice(list(base))
            value = orjson.dumps({**base, field: rng.choice(JUNK_VALUES)})
        elif kind == "random-json":
            value = orjson.dumps(rng.choice(JUNK_VALUES + [base, [base], {"frame": base}]))
        else:
            value = orjson.dumps(base)
        key = rng.choice((device.encode(), device.encode(), None, rng.randbytes(rng.randrange(1, 64)),
                          b"k" * rng.choice((100, 5000))))
        out.append((f"fuzz {kind}", key, value, None))
    return out


def expected_reason(key: bytes | None, value: bytes | None, stations: frozenset[str] = frozenset()) -> str:
    """What ingest must answer: our decoder's reason, else `station.unknown` for a well-formed frame from a
    station that is not registered, else `unknown-device`."""
    try:
        decoded = decode_frame(value, MAX_FRAME_BYTES, key)
    except FrameError as exc:
        return exc.code
    assert not decoded.device.startswith("1000"), "a fuzz frame must not name a registered device"
    return "unknown-device" if decoded.station in stations else "station.unknown"


async def publish(gateway, records: list[tuple[bytes | None, bytes | None]]) -> list[tuple[int, int]]:
    """Publish (key, value) records to `frames` in order, as a gateway; their (partition, offset)."""
    producer = gateway.producer()
    await producer.start()
    try:
        futures = [await producer.send(topic(FRAMES), value, key=key) for key, value in records]
        return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


def data_callback(receiver_url: str) -> dict:
    return {"callback_subtype": 0, "url": f"{receiver_url}/data?device={{device}}&seq={{seqNumber}}",
            "http_method": "GET"}


async def test_hostile_frames_are_rejected_with_a_reason_and_ingest_goes_on(pipeline, receiver, gateway, capsys):
    """Hostile frames come in the way a compromised gateway would send them: through the gateway listener."""
    started = time.monotonic()
    p = await pipeline([data_callback(receiver.url)], roles=("relay,router,delivery,store", "ingest"),
                       stations=2, devices=20)
    ingest = p.workers[1]
    pid = ingest.proc.pid
    rng = random.Random(SEED)

    # 100 messages of registered devices, one frame each, in sequence per device.
    valid: list[dict] = []
    for round_ in range(5):
        for device in p.network.devices:
            valid.append(frame(device.id, (device.seq + round_) % 4096, station=p.stations[round_ % 2]))
    named = hostile_frames(rng, valid[0])
    for what, key, value, reason in named:
        assert expected_reason(key, value, frozenset(p.stations)) == reason, what
    bad = named + fuzz_frames(rng, FUZZ_FRAMES)
    # Interleave: the valid frames keep their order, the bad ones fall between them.
    slots = sorted(rng.sample(range(len(bad) + len(valid)), len(valid)))
    stream: list[tuple[str, bytes | None, bytes | None, str | None]] = list(bad)
    for slot, f in zip(slots, valid, strict=False):
        stream.insert(slot, ("valid", f["device"].encode(), orjson.dumps(f), None))
    expected = {i: expected_reason(key, value, frozenset(p.stations)) for i, (what, key, value, _) in enumerate(stream)
                if what != "valid"}

    positions = await publish(gateway, [(key, value) for _, key, value, _ in stream])
    published_at = time.monotonic()

    rejected = await read_topic(topic(FRAMES_REJECTED), expect=len(bad), timeout=90)
    got = await receiver.wait_for(len(valid), timeout=60, path_prefix="/data")

    # Ingest never stopped and is still ready.
    assert ingest.proc.poll() is None and ingest.proc.pid == pid, ingest.log_tail()
    await ingest.wait_ready(timeout=5)

    # Exactly one small rejection per bad frame, with the reason our decoder gives it.
    by_position = collections.defaultdict(list)
    for rec in rejected:
        assert len(rec.value) < 4096, f"a rejection of {len(rec.value)} bytes"
        value = orjson.loads(rec.value)
        by_position[(value["partition"], value["offset"])].append(value["reason"])
    reasons = collections.Counter()
    for i, reason in expected.items():
        got_reasons = by_position.pop(positions[i], [])
        assert got_reasons == [reason], f"{stream[i][0]} at {positions[i]}: expected [{reason}], got {got_reasons}"
        assert REASON.fullmatch(reason), reason
        reasons[reason] += 1
    assert not by_position, f"rejections of frames that were not bad: {dict(by_position)}"

    # Every valid frame's callback arrived, once.
    assert sorted((r.query["device"], int(r.query["seq"])) for r in got) == \
        sorted((f["device"], f["seqNumber"]) for f in valid)
    dead = await read_topic(topic(DEAD_LETTERS), timeout=2)
    assert dead == [], "a bad frame must be rejected, never dead-lettered"
    metrics = await ingest.metrics()
    assert f"backhaul_frames_in_total {float(len(stream))}" in metrics

    with capsys.disabled():
        print(f"\n[hostile input] {len(stream)} frames ({len(valid)} valid, {len(bad)} bad: "
              f"{len(named)} named, {FUZZ_FRAMES} fuzz, seed {SEED}); all processed "
              f"{time.monotonic() - published_at:.1f} s after publishing, test {time.monotonic() - started:.0f} s; "
              f"largest rejection {max(len(r.value) for r in rejected)} bytes; ingest pid {pid} unchanged")
        for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {reason:20} {count}")

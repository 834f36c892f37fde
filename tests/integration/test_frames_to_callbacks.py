"""End to end on the real stack: simulated frames -> exactly one DATA callback per message."""
from __future__ import annotations

import asyncio
import urllib.parse

import orjson
import pytest

from backhaul import db
from backhaul.topics import topic
from program.demo.seed import seed_network
from schemas.topics import FRAMES_REJECTED
from simulator.network import build_network, simulate
from tests.conftest import read_topic, seeded_records, wait_views

pytestmark = pytest.mark.integration

VARIABLES = ("device", "time", "data", "seqNumber", "station", "rssi", "snr", "duplicate")
EXPECTED_REJECTIONS = {"station.format", "data.length", "seqNumber.range", "device.missing", "frame.format"}


def data_callback(receiver_url: str) -> dict:
    query = "&".join(f"{v}={{{v}}}" for v in VARIABLES)
    body = "{" + ",".join(f'"{v}":"{{{v}}}"' for v in VARIABLES) + "}"
    return {"callback_subtype": 0, "url": f"{receiver_url}/data?{query}", "http_method": "POST",
            "content_type": "application/json", "body_template": body}


async def test_every_message_becomes_exactly_one_callback(isolated, workers, receiver, gateway):
    """The simulated stations publish as a gateway: its own credentials, on the gateway listener."""
    network = build_network(3, 200, seed=7)
    conn = await db.connect()
    try:
        await seed_network(conn, network, name="e2e", callbacks=[data_callback(receiver.url)])
    finally:
        await conn.close()
    worker = workers("relay,ingest,router,delivery,store", isolated, BACKHAUL_ADVANCED_WINDOW_S="3")
    await worker.wait_ready()
    await wait_views([worker], seeded_records(network, 1))  # the relay carried the seeded rows to its view

    sent_frames: list[dict] = []
    producer = gateway.producer(linger_ms=5)
    await producer.start()
    sent = await simulate(network, messages_per_device=5, rate=0, duration=None, max_stations=3,
                          malformed=5, progress=False, record=sent_frames, producer=producer)
    assert sent["messages"] == 1000 and sent["malformed"] == 5

    # The first frame of each (device, seqNumber) in publishing order is the one the callback describes.
    first: dict[tuple[str, int], dict] = {}
    for f in sent_frames:
        first.setdefault((f["device"], f["seqNumber"]), f)
    assert len(first) == 1000
    assert {len({f["station"] for f in sent_frames if (f["device"], f["seqNumber"]) == k}) for k in first} <= {1, 2, 3}

    got = await receiver.wait_for(1000, timeout=90, path_prefix="/data")
    await asyncio.sleep(3.0)  # anything extra would arrive now
    got = [r for r in receiver.requests if r.path == "/data"]
    assert len(got) == 1000, f"expected 1000 callbacks, got {len(got)}\n{worker.log_tail()}"

    seen = set()
    for r in got:
        body = orjson.loads(r.body)
        key = (body["device"], int(body["seqNumber"]))
        assert key not in seen, f"duplicate callback for {key}"
        seen.add(key)
        f = first[key]
        expected = {"device": f["device"], "time": str(f["time"] // 1000), "data": f["data"],
                    "seqNumber": str(f["seqNumber"]), "station": f["station"], "rssi": str(f["rssi"]),
                    "snr": str(f["snr"]), "duplicate": "false"}
        assert body == expected
        assert {k: urllib.parse.unquote(v) for k, v in r.query.items()} == expected
    assert seen == set(first)

    rejected = await read_topic(topic(FRAMES_REJECTED), expect=5, timeout=15)
    reasons = [orjson.loads(rec.value)["reason"] for rec in rejected]
    assert set(reasons) == EXPECTED_REJECTIONS and len(reasons) == 5
    for rec in rejected:
        value = orjson.loads(rec.value)
        assert value["message"] and value["raw"]["length"] > 0 and len(value["raw"]["sha256"]) == 64

    metrics = await worker.metrics()
    assert 'backhaul_frames_rejected_total{reason="frame.format"} 1.0' in metrics
    assert "backhaul_messages_total{kind=\"data\"} 1000.0" in metrics

    # The pipeline keeps running after the malformed frames.
    more: list[dict] = []
    await simulate(network, messages_per_device=1, rate=0, duration=None, max_stations=2,
                   progress=False, record=more, producer=producer)
    await producer.stop()
    got = await receiver.wait_for(1200, timeout=60, path_prefix="/data")
    assert len(got) == 1200

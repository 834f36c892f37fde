"""MQTT deliveries per second to a local Mosquitto, beside a raw aiomqtt client on the same broker.

    python -m bench.mqtt_rate [--messages N] [--concurrency C]

In a private prefix and database (`bench.sandbox`), a `relay,ingest,router` worker turns simulated
frames into N rendered MQTT deliveries (MQTT 5, QoS 1, TLS off, a password, topic
`bench/{device}/{seqNumber}`, a JSON body) waiting on the `deliveries` topic; then a `delivery`
worker is started alone and timed from the moment it is ready to the last message a subscriber (in
this process) receives. The raw client publishes the same number of messages of the same size, QoS 1
with the same user property, over one connection with C publishes in flight (the endpoint's
concurrency cap), and is timed to the last PUBACK. The broker is Debian's Mosquitto
(scripts/install-mosquitto), started here on 127.0.0.1 (tests/mosquitto.py).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from backhaul import db
from bench.delivery_rate import rendering, wait_for, worker_rate
from bench.report import print_rates
from bench.sandbox import sandbox
from program.demo.seed import seed_network
from simulator.network import build_network, simulate
from tests.mosquitto import PASSWORD, USER, Mosquitto, Subscriber

BODY = '{"device": "{device}", "seq": {seqNumber}, "data": "{data}"}'
DEVICES = 500


async def timed_delivery(env: dict[str, str], log: Path, subscriber: Subscriber, expected: int,
                         timeout: float) -> float:
    """MQTT messages per second of a delivery worker, by the subscriber's stamps of their arrival."""
    since = len(subscriber.messages)

    async def arrived() -> int:
        return len(subscriber.messages) - since

    async def last_arrival() -> float:
        return max(m.at for m in subscriber.messages[since:])
    return await worker_rate(env, log, arrived, expected, timeout, "MQTT messages", last_arrival)


def mqtt5_message(i: int) -> tuple[str, Properties | None]:
    """(topic, properties) of the raw client's message i: the MQTT channel's shape."""
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("message-id", f"raw/{i}")]
    return f"raw/{i % DEVICES}/{i}", props


async def raw_ceiling(broker: Mosquitto, messages: int, concurrency: int, size: int,
                      message: Callable[[int], tuple[str, Properties | None]] = mqtt5_message,
                      protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V5) -> float:
    """Messages/s of a raw aiomqtt client: QoS 1, `concurrency` publishes in flight over one connection."""
    payload = b"x" * size
    async with aiomqtt.Client("127.0.0.1", broker.port, username=USER, password=PASSWORD, protocol=protocol,
                              max_inflight_messages=concurrency, timeout=30) as client:
        client.pending_calls_threshold = messages
        remaining = iter(range(messages))

        async def publisher() -> None:
            for i in remaining:
                topic_name, props = message(i)
                await client.publish(topic_name, payload, qos=1, properties=props)
        started = time.monotonic()
        await asyncio.gather(*(publisher() for _ in range(concurrency)))
        return messages / (time.monotonic() - started)


async def channel_rate(subscriber: Subscriber, callback: dict, messages: int, concurrency: int, logs: Path,
                       name: str) -> float:
    """Messages/s of a delivery worker on `messages` deliveries of `callback` (a callbacks row), rendered
    first by a `relay,ingest,router` worker in a sandbox of their own."""
    limits = {"BACKHAUL_ENDPOINT_CONCURRENCY": str(concurrency), "BACKHAUL_ENDPOINT_RATE_PER_S": "1000000",
              "BACKHAUL_ENDPOINT_BURST": "1000000", "BACKHAUL_ENDPOINT_QUEUE": "1000000",
              "BACKHAUL_LOG_LEVEL": "WARNING", "BACKHAUL_CALLBACK_ALLOW_NETWORKS": "127.0.0.1/32"}
    async with sandbox(limits) as box:
        env = {**os.environ, **box.env}
        network = build_network(2, DEVICES, seed=5)
        conn = await db.connect()
        try:
            await seed_network(conn, network, name=name, callbacks=[callback])
        finally:
            await conn.close()
        async with rendering(box.env, logs, 3 + 2 + DEVICES) as queued:
            await simulate(network, messages_per_device=messages // DEVICES, rate=0, duration=None,
                           max_stations=1, progress=False)
            await wait_for(queued, messages, 120, f"{name} deliveries rendered")
            return await timed_delivery(env, logs / f"delivery-{name}.log", subscriber, messages, 300)


async def run(messages: int, concurrency: int) -> dict[str, float]:
    logs = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    broker = Mosquitto(logs / "mosquitto").start()
    subscriber = await Subscriber(broker).start()
    try:
        callback = {"channel": "MQTT", "body_template": BODY, "content_type": "application/json",
                    "channel_settings": {"host": "127.0.0.1", "port": broker.port, "username": USER,
                                         "password": PASSWORD, "topic": "bench/{device}/{seqNumber}", "qos": 1,
                                         "protocol": "5"}}
        figures = {"MQTT channel": await channel_rate(subscriber, callback, messages, concurrency, logs, "mqtt")}
        size = len(subscriber.messages[-1].body)
        figures["raw aiomqtt client"] = await raw_ceiling(broker, messages, concurrency, size)
        return figures
    finally:
        await subscriber.stop()
        broker.stop()


def cli(argv: list[str] | None, doc: str, run: Callable[[int, int], Coroutine[Any, Any, dict[str, float]]],
        protocol: str) -> int:
    """Parse --messages and --concurrency, run, print the figures (the MQTT-speaking channels' benches)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=10000, help="deliveries per channel run (a multiple of 500)")
    p.add_argument("--concurrency", type=int, default=64, help="publishes in flight")
    args = p.parse_args(argv)
    figures = asyncio.run(run(args.messages, args.concurrency))
    print_rates(figures, args.messages, f"local Mosquitto, MQTT {protocol}, QoS 1, {args.concurrency} publishes in flight")
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, run, "5")


if __name__ == "__main__":
    raise SystemExit(main())

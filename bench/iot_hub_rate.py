"""AZURE_IOT_HUB deliveries per second to a local Mosquitto with IoT Hub's topic layout, per identity
mode, beside a raw aiomqtt client on the same broker.

    python -m bench.iot_hub_rate [--messages N] [--concurrency C]

Each mode in a sandbox of its own (`bench.mqtt_rate.channel_rate`): N rendered deliveries of 500
devices (a JSON body) queued, then a lone `delivery` worker timed from ready to the last message the
subscriber receives. DEVICE_TYPE: every message as one IoT Hub device, over one connection; DEVICE:
each device as itself, 500 connections (one SAS token and one CONNECT each). MQTT 3.1.1, QoS 1, TLS
off, to an open-access Debian Mosquitto (no hub checks the tokens here: tests/iot_hub_front.py does
in the tests, and would be the bottleneck of a bench). The raw client publishes as many messages of
the same size to `devices/{id}/messages/events/$.mid=..`, MQTT 3.1.1, QoS 1, C in flight over one
connection, timed to the last PUBACK.
"""
from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import aiomqtt
from paho.mqtt.properties import Properties

from backhaul.iot_hub import events_topic
from bench.mqtt_rate import BODY, DEVICES, channel_rate, cli, raw_ceiling
from tests.mosquitto import Mosquitto, Subscriber

HUB = "bench-hub.azure-devices.net"
KEY = base64.b64encode(b"bench policy key").decode()
HUB_STRING = f"HostName={HUB};SharedAccessKeyName=device-connect;SharedAccessKey={KEY}"


def hub_message(i: int) -> tuple[str, Properties | None]:
    """(topic, properties) of the raw client's message i: the channel's shape."""
    return events_topic(f"{i % DEVICES:08X}", [("$.mid", f"raw/{i}"), ("$.ct", "application/json"),
                                                ("$.ce", "utf-8"), ("callback-type", "DATA_UPLINK")]), None


async def run(messages: int, concurrency: int) -> dict[str, float]:
    logs = Path(tempfile.mkdtemp(prefix="bench-iot-hub-"))
    broker = Mosquitto(logs / "mosquitto", open_access=True).start()
    subscriber = await Subscriber(broker).start()
    try:
        figures = {}
        for identity, extra in (("DEVICE_TYPE", {"deviceId": "bench-gateway"}), ("DEVICE", {})):
            callback = {"channel": "AZURE_IOT_HUB", "body_template": BODY, "content_type": "application/json",
                        "channel_settings": {"connectionString": HUB_STRING, "identity": identity, "host": "127.0.0.1",
                                             "port": broker.port, "tls": False, **extra}}
            figures[f"channel, {identity}"] = await channel_rate(subscriber, callback, messages, concurrency, logs,
                                                                 f"iot-hub-{identity.lower()}")
        size = len(subscriber.messages[-1].body)
        figures["raw aiomqtt client"] = await raw_ceiling(broker, messages, concurrency, size, hub_message,
                                                          aiomqtt.ProtocolVersion.V311)
        return figures
    finally:
        await subscriber.stop()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, run, "3.1.1")


if __name__ == "__main__":
    raise SystemExit(main())

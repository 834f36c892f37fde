"""The one rule of Kafka destinations, used by the API's check and by the channels."""
from __future__ import annotations

import pytest

from backhaul.kafka_rules import TOPIC_NAME, is_server


@pytest.mark.parametrize("server", ["kafka1.example.com:9093", "10.0.0.1:9092", "[::1]:9092", "a:1", "a:65535"])
def test_servers(server):
    assert is_server(server)


@pytest.mark.parametrize("server", ["kafka:0", "kafka:65536", "kafka", ":9092", "sasl://kafka:9092",
                                    "user@kafka:9092", "kafka:9092/path", "ka fka:9092", None, 9092])
def test_not_servers(server):
    assert not is_server(server)


def test_topic_names_follow_kafkas_rule():
    assert TOPIC_NAME.fullmatch("sigfox.uplinks_v-2")
    assert not TOPIC_NAME.fullmatch("a/b") and not TOPIC_NAME.fullmatch("x" * 250) and not TOPIC_NAME.fullmatch("")

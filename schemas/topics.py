"""Every Kafka topic name, in one place.

Names can be prefixed so that tests and benchmarks run side by side on one
broker without seeing each other's records: `topic_name(name, prefix)`. The
runtime applies the configured prefix (BACKHAUL_TOPIC_PREFIX) with
`backhaul.topics.topic`.
"""
from __future__ import annotations

from dataclasses import dataclass

FRAMES = "frames"
FRAMES_REJECTED = "frames.rejected"
MESSAGES = "messages"
MESSAGES_ADVANCED = "messages.advanced"
DEVICE_EVENTS = "device-events"
DELIVERIES = "deliveries"
DELIVERY_RESULTS = "delivery-results"
DOWNLINKS = "downlinks"
DOWNLINK_TRANSMISSIONS = "downlink-transmissions"
DOWNLINK_REPORTS = "downlink-reports"
CONFIG = "config"
INGEST_STATE = "ingest.state"
# Records a stage could not handle, with their error (schemas.dead_letters).
DEAD_LETTERS = "dead-letters"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool = False
    # Frames carry the broker's append time: the ingest engine's clock (see ingest.engine).
    log_append_time: bool = False


ALL_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(FRAMES, log_append_time=True),
    TopicSpec(FRAMES_REJECTED),
    TopicSpec(MESSAGES),
    TopicSpec(MESSAGES_ADVANCED),
    TopicSpec(DEVICE_EVENTS),
    TopicSpec(DELIVERIES),
    TopicSpec(DELIVERY_RESULTS),
    TopicSpec(DOWNLINKS),
    TopicSpec(DOWNLINK_TRANSMISSIONS),
    TopicSpec(DOWNLINK_REPORTS),
    TopicSpec(CONFIG, compacted=True),
    TopicSpec(INGEST_STATE, compacted=True),
    TopicSpec(DEAD_LETTERS),
)


def topic_name(name: str, prefix: str) -> str:
    """The full name of topic `name` under `prefix`."""
    return f"{prefix}{name}"

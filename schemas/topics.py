"""Every Kafka topic name, in one place.

Names can be prefixed (BACKHAUL_TOPIC_PREFIX) so that tests and benchmarks
run side by side on one broker without seeing each other's records.
"""
from __future__ import annotations

from dataclasses import dataclass

from backhaul.settings import settings

FRAMES = "frames"
FRAMES_REJECTED = "frames.rejected"
MESSAGES = "messages"
MESSAGES_ADVANCED = "messages.advanced"
DEVICE_EVENTS = "device-events"
DELIVERIES = "deliveries"
DELIVERY_RESULTS = "delivery-results"
DOWNLINKS = "downlinks"
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
    TopicSpec(DOWNLINK_REPORTS),
    TopicSpec(CONFIG, compacted=True),
    TopicSpec(INGEST_STATE, compacted=True),
    TopicSpec(DEAD_LETTERS),
)


def topic(name: str, prefix: str | None = None) -> str:
    """The full topic name for `name`, with the configured prefix."""
    p = settings().topic_prefix if prefix is None else prefix
    return f"{p}{name}"

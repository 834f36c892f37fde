"""Topic names under the configured prefix (BACKHAUL_TOPIC_PREFIX): the runtime's side of `schemas.topics`."""
from __future__ import annotations

from backhaul.settings import settings
from schemas.topics import topic_name


def topic(name: str) -> str:
    """The full name of topic `name` (a `schemas.topics` constant) with the configured prefix."""
    return topic_name(name, settings().topic_prefix)

"""The delivery channels' registry: one channel for every channel a delivery may name, no other."""
from __future__ import annotations

import json

import pytest

from backhaul.settings import PROJECT_ROOT
from callback_language.templates import CHANNELS as CALLBACK_CHANNELS
from schemas.deliveries import CHANNELS as DELIVERY_CHANNELS
from workers.channels import CHANNELS, register
from workers.channels.direct import Direct


def saved_callback_channels() -> set[str]:
    """The channels a callback may be saved with, as the API's OpenAPI document states them."""
    document = json.loads((PROJECT_ROOT / "schemas" / "openapi.json").read_text())
    enums = {tuple(schema["properties"]["channel"]["enum"])
             for schema in document["components"]["schemas"].values()
             if "enum" in schema.get("properties", {}).get("channel", {})}
    assert len(enums) == 1, enums  # every callback shape allows the same channels
    return set(enums.pop())


def test_the_registry_has_exactly_the_channels_the_callbacks_table_allows():
    assert saved_callback_channels() == set(CALLBACK_CHANNELS)
    # The callbacks' channels call an endpoint; DIRECT, the device type's rendered downlink, is the router's.
    assert {name for name, channel in CHANNELS.items() if channel.calls} == set(CALLBACK_CHANNELS)
    assert {name for name, channel in CHANNELS.items() if not channel.calls} == {"DIRECT"}
    assert set(CHANNELS) == set(DELIVERY_CHANNELS)


def test_every_channel_is_registered_under_its_own_name():
    assert all(channel.name == name for name, channel in CHANNELS.items())
    assert [name for name, channel in CHANNELS.items() if channel.batched] == ["BATCH_URL"]


def test_a_channel_is_registered_once():
    with pytest.raises(ValueError, match="DIRECT: registered twice"):
        register(Direct())

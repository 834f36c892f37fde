"""The KAFKA and AZURE_EVENT_HUBS channels' settings mapping: the Event Hubs connection string parsed
into SASL PLAIN settings, errors naming the field and never repeating a secret."""
from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from backhaul.event_hubs import FIELD, KEYS, ConnectionStringError, parse_connection_string
from workers.channels.azure_event_hubs import AzureEventHubs, event_hubs_target
from workers.channels.kafka import SettingsError, Target, bootstrap_servers, error_class, kafka_target

KEY = "c2VjcmV0LWtleS0xMjM0NTY3ODkwYWJjZGVmZ2hpams="
GOOD = f"Endpoint=sb://acme-ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY};EntityPath=hub-1"


def test_a_portal_connection_string_maps_to_sasl_plain_over_tls() -> None:
    parsed = parse_connection_string(GOOD)
    assert (parsed.namespace, parsed.key_name, parsed.entity_path) == ("acme-ns.servicebus.windows.net", "send", "hub-1")
    target = event_hubs_target({"connectionString": GOOD})
    assert target == Target("acme-ns.servicebus.windows.net:9093", "$ConnectionString", GOOD, "PLAIN", True)
    assert target.key == "kafka://$ConnectionString@acme-ns.servicebus.windows.net:9093"
    assert KEY not in repr(parsed) and KEY not in repr(target)
    assert AzureEventHubs().default_topic({"connectionString": GOOD}) == "hub-1"


def test_keys_are_case_insensitive_order_free_and_a_trailing_semicolon_is_fine() -> None:
    text = f"sharedaccesskey={KEY}; ENDPOINT=sb://ns.servicebus.windows.net ;SharedAccessKeyName=k;"
    parsed = parse_connection_string(text)
    assert (parsed.namespace, parsed.entity_path) == ("ns.servicebus.windows.net", None)
    with pytest.raises(SettingsError, match=r"^channelSettings.topic: is required when"):
        AzureEventHubs().default_topic({"connectionString": text})


def test_the_bootstrap_override_and_tls_off_are_for_a_local_kafka() -> None:
    target = event_hubs_target({"connectionString": GOOD, "bootstrapServers": "127.0.0.1:29094", "tls": False})
    assert (target.bootstrap, target.tls, target.mechanism, target.password) == ("127.0.0.1:29094", False, "PLAIN", GOOD)
    with pytest.raises(SettingsError, match=r"^channelSettings.bootstrapServers: 'x' is not host:port"):
        event_hubs_target({"connectionString": GOOD, "bootstrapServers": "x"})


@pytest.mark.parametrize(("text", "message"), [
    ("", "is required"),
    ("Endpoint=sb://ns.servicebus.windows.net/", "SharedAccessKeyName is required"),
    (f"SharedAccessKeyName=a;SharedAccessKey={KEY}", "Endpoint is required"),
    (f"Endpoint=https://ns.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey={KEY}",
     "Endpoint must start with sb://"),
    (f"Endpoint=sb://localhost/;SharedAccessKeyName=a;SharedAccessKey={KEY}", "Endpoint must be sb://<namespace host>/"),
    ("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=a", "SharedAccessKey is required"),
    (f"Endpoint=sb://n.servicebus.windows.net/;Endpoint=sb://n.servicebus.windows.net/;SharedAccessKey={KEY}",
     "Endpoint is given twice"),
    (f"{GOOD};Password=x", "unknown key 'Password'"),
    (f"{GOOD};oops", "part 5 is not Key=Value"),
    (GOOD.replace("hub-1", "hub/1"), "EntityPath must be an event hub name"),
    (GOOD + "\n", "must be one line"),
])
def test_bad_connection_strings_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConnectionStringError) as caught:
        parse_connection_string(text)
    assert str(caught.value).startswith(f"{FIELD}: ")
    assert message in str(caught.value)
    assert KEY not in str(caught.value)


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_SECRET = st.text("0123456789abcdef", min_size=8, max_size=20).map(lambda h: f"KEY{h}=")


@given(st.lists(st.one_of(_TEXT, st.sampled_from(GOOD.split(";")),
                          st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS + ("X", "endpoint")), _TEXT),
                          st.builds(lambda k, v: f"{k}={v}", st.sampled_from(("SharedAccessKey", "sharedaccesskey",
                                                                              "SharedAccessSignature")), _SECRET)),
                max_size=7).map(";".join))
@example(f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=n;SharedAccessKey={KEY};EntityPath=a b")
@example("Endpoint=sb://;SharedAccessKey=KEY12345678=")
def test_any_string_parses_or_fails_naming_the_field_without_its_secret(text: str) -> None:
    try:
        parsed = parse_connection_string(text)
    except ConnectionStringError as exc:
        message = str(exc)
        assert message.startswith(f"{FIELD}: ") and len(message) > len(FIELD) + 2
        for secret in re.findall(r"KEY[0-9a-f]{8,}=", text):
            assert secret not in message, (secret, message)
        return
    assert parsed.text == text.strip()
    assert parsed.bootstrap.endswith(":9093")
    target = event_hubs_target({"connectionString": text})
    assert target.username == "$ConnectionString" and target.password == text.strip()


def test_kafka_settings_map_to_a_target() -> None:
    target = kafka_target({"bootstrapServers": ["b1:9092", "b2:9092"], "topic": "t", "tls": True,
                           "sasl": {"mechanism": "SCRAM-SHA-512", "username": "u", "password": "pw-secret"}})
    assert target == Target("b1:9092,b2:9092", "u", "pw-secret", "SCRAM-SHA-512", True)
    assert target.key == "kafka://u@b1:9092,b2:9092" and "pw-secret" not in repr(target)
    assert kafka_target({"bootstrapServers": "b:1"}) == Target("b:1")
    with pytest.raises(SettingsError, match="^channelSettings.sasl.password: is required"):
        kafka_target({"bootstrapServers": "b:1", "sasl": {"username": "u"}})
    with pytest.raises(SettingsError, match="^channelSettings.sasl.mechanism: must be one of"):
        kafka_target({"bootstrapServers": "b:1", "sasl": {"mechanism": "GSSAPI", "username": "u", "password": "p"}})
    for bad in ("", "host", "host:0", "http://h:1", "h:1,", "u@h:1"):
        with pytest.raises(SettingsError, match="^channelSettings.bootstrapServers: "):
            bootstrap_servers(bad)


def test_error_classes_count_an_unwell_cluster_not_a_refusal() -> None:
    from aiokafka.errors import (
        KafkaConnectionError,
        NotLeaderForPartitionError,
        TopicAuthorizationFailedError,
        UnknownTopicOrPartitionError,
    )

    assert error_class(KafkaConnectionError("Unable to bootstrap")) == "connect"
    assert error_class(TimeoutError()) == "timeout"
    assert error_class(UnknownTopicOrPartitionError()) == "other"
    assert error_class(NotLeaderForPartitionError()) == "connect"
    assert error_class(TopicAuthorizationFailedError()) == "other"


def test_the_event_hubs_validator_names_the_member() -> None:
    from oss.channel_settings import settings_errors

    def errors(settings):
        return [(e.field, e.message) for e in settings_errors("AZURE_EVENT_HUBS", settings)]

    assert errors({"connectionString": GOOD}) == []
    assert errors({"connectionString": "********", "topic": "hub-{deviceTypeId}"}) == [], "a kept secret"
    assert errors({}) == [("channelSettings.connectionString", "is required")]
    no_entity = GOOD.rsplit(";", 1)[0]
    assert errors({"connectionString": no_entity}) == [
        ("channelSettings.topic", "is required when the connection string has no EntityPath")]
    [(field, message)] = errors({"connectionString": GOOD.replace("sb://", "amqps://")})
    assert (field, message) == ("channelSettings.connectionString", "Endpoint must start with sb://")
    assert KEY not in message
    assert errors({"connectionString": GOOD, "bootstrapServers": ["h"], "tls": "no", "extra": 1}) == [
        ("channelSettings.extra", "is not a member of these settings; expected one of connectionString, topic, "
                                  "bootstrapServers, tls"),
        ("channelSettings.bootstrapServers[0]", "must be host:port"),
        ("channelSettings.tls", "must be of type boolean")]
    assert errors({"connectionString": GOOD, "topic": "a/b"})[0][0] == "channelSettings.topic"


def test_the_connection_string_is_a_secret_member() -> None:
    from backhaul.callback_secrets import seal_callback, split_settings

    clear, secret = split_settings("AZURE_EVENT_HUBS", {"connectionString": GOOD, "topic": "t"})
    assert clear == {"topic": "t"} and secret == {"connectionString": GOOD}
    sealed = seal_callback({"id": "c", "channel": "AZURE_EVENT_HUBS", "url": None,
                            "channel_settings": {"connectionString": GOOD}})
    assert KEY not in str(sealed) and set(sealed["channel_secrets"]) == {"connectionString"}


@pytest.mark.parametrize("bullet", ["- **Channels: Kafka**", "- **Channels: Azure Event Hubs**"])
def test_the_readme_examples_are_valid_callbacks(bullet: str) -> None:
    import json

    from backhaul.destinations import DestinationPolicy
    from backhaul.settings import PROJECT_ROOT
    from oss.api.callbacks import callback_problems
    text = (PROJECT_ROOT / "README.md").read_text()
    start = text.index("```json", text.index(bullet)) + len("```json")
    example = json.loads(text[start:text.index("```", start)])
    assert callback_problems(example, DestinationPolicy.parse("")) == []


def test_bootstrap_hosts_are_checked_against_the_destination_rule_at_save() -> None:
    from backhaul.destinations import DestinationPolicy
    from oss.checks import destination_errors

    policy = DestinationPolicy.parse("")
    kafka = {"channel": "KAFKA", "channel_settings": {"bootstrapServers": ["kafka.example.com:9093", "10.0.0.5:9092"],
                                                      "topic": "t"}}
    assert [e.field for e in destination_errors(kafka, policy)] == ["channelSettings.bootstrapServers[1]"]
    hubs = {"channel": "AZURE_EVENT_HUBS", "channel_settings": {"connectionString": GOOD}}
    assert destination_errors(hubs, policy) == []
    local = {"channel": "AZURE_EVENT_HUBS", "channel_settings": {"connectionString": GOOD,
                                                                 "bootstrapServers": ["127.0.0.1:29094"]}}
    assert [e.field for e in destination_errors(local, policy)] == ["channelSettings.bootstrapServers[0]"]
    assert destination_errors(local, DestinationPolicy.parse("127.0.0.1/32")) == []


class _FakeProducer:
    def __init__(self) -> None:
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True


async def test_the_producer_pool_keeps_a_replacement_and_closes_the_least_recently_used(monkeypatch) -> None:
    from workers.channels.kafka import Producers

    monkeypatch.setattr(Target, "producer", lambda self, timeout_s: _FakeProducer())
    pool = Producers(size=2)
    a, b, c = Target("a:1"), Target("b:1"), Target("c:1")
    first = await pool.get(a, 1)
    assert await pool.get(a, 1) is first
    await pool.drop(a, first)
    assert first.stopped
    second = await pool.get(a, 1)
    await pool.drop(a, first)  # a late failure of the old one leaves the new one alone
    assert await pool.get(a, 1) is second and not second.stopped
    pb = await pool.get(b, 1)
    await pool.get(a, 1)  # a is now the most recently used
    await pool.get(c, 1)
    assert pb.stopped and not second.stopped
    await pool.close()
    assert second.stopped


async def test_a_test_send_renders_an_event_hubs_callback_without_a_topic() -> None:
    from backhaul.destinations import DestinationPolicy
    from oss.callback_test_send import send_test

    row = {"id": "c", "channel": "AZURE_EVENT_HUBS", "callback_subtype": 0, "body_template": "{device}",
           "content_type": None, "channel_settings": {}}
    outcome = await send_test(row, DestinationPolicy.parse(""), 1.0)
    assert not outcome.sent and "rendered, not sent" in (outcome.error or "") and "EntityPath" in outcome.request

"""The KAFKA channel: each delivery produced as one record to the customer's own Kafka cluster.

Settings (`channelSettings`, checked by `oss.channel_settings.kafka`): `bootstrapServers`
(["host:port", ...]), `topic` (a template with the callback's variables), `tls` (bool; the system's
CAs), `sasl` {mechanism PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512, username, password (secret)}. The
record: key = the device id; value = the body template, topic = the topic template, both rendered
by the router (the delivery's `publish`); headers `message-id` (the delivery's stable id: the same
on every retry, replay and crash re-send; receivers de-duplicate on it) and `callback-type` (the
callback kind: DATA_UPLINK, DATA_BIDIR, STATUS, ...). Acknowledged, the attempt is recorded as 200
with the record's place (`topic[partition]@offset`) as its answer.

One implementation for every Kafka-speaking destination: a channel maps its settings to a `Target`
(`target`), the rest is here (Azure Event Hubs: `workers.channels.azure_event_hubs`). Producers are
aiokafka's (no protocol written here), idempotent, acks=all, a small linger, pooled per target; the
endpoint (bulkhead) key is the bootstrap servers and the user. A producer whose send failed is
closed and the next attempt starts a new one: after a failure an idempotent producer may be out of
sequence for good. Bootstrap hosts pass the destination rule (`backhaul.destinations`) before any
connection; the brokers' advertised addresses are aiokafka's to reach and are not checked.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from aiokafka.helpers import create_ssl_context

from backhaul.destinations import literal_address
from backhaul.kafka_rules import SASL_MECHANISMS, TOPIC_NAME, is_server
from backhaul.outbound import policy_from_settings
from backhaul.secretbox import SealedSecretError
from callback_language.templates import TemplateError
from workers.attempt import Outcome, failed
from workers.channels.base import Context, Delivery, SettingsChannel

# Producers kept open at once (least recently used closed first).
POOL_SIZE = 256
OK_STATUS = 200  # a record the cluster acknowledged, recorded as HTTP 200 in cbStatus


class SettingsError(ValueError):
    """Settings a channel cannot use; the message names the member (`channelSettings.<member>: why`)."""


@dataclass(frozen=True)
class Target:
    """Where and how records go: what a producer is made from (and pooled by)."""

    bootstrap: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    mechanism: str | None = None
    tls: bool = False

    @property
    def key(self) -> str:
        """The bulkhead key: the cluster and the user (not the password)."""
        return f"kafka://{self.username + '@' if self.username else ''}{self.bootstrap}"

    def hosts(self) -> list[tuple[str, int]]:
        out = []
        for part in self.bootstrap.split(","):
            host, _, port = part.strip().rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out

    def producer(self, timeout_s: float) -> AIOKafkaProducer:
        options: dict[str, Any] = {}
        if self.mechanism:
            options.update(security_protocol="SASL_SSL" if self.tls else "SASL_PLAINTEXT",
                           sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password)
        elif self.tls:
            options["security_protocol"] = "SSL"
        if self.tls:
            options["ssl_context"] = create_ssl_context()
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap, client_id="backhaul-callbacks",
                                acks="all", enable_idempotence=True, linger_ms=5,
                                # Shorter than the attempt: a missing topic ends the metadata wait with its own error.
                                request_timeout_ms=max(1000, int(timeout_s * 800)), retry_backoff_ms=200,
                                **options)


def bootstrap_servers(value: Any, name: str = "channelSettings.bootstrapServers") -> str:
    """["host:port", ...] (or one "host:port,host:port" string) checked (SettingsError naming `name`),
    as aiokafka takes it: "host:port,host:port"."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{name}: is required ([\"host:port\", ...])")
    parts = [p.strip() for p in value.split(",")]
    for part in parts:
        if not is_server(part):
            raise SettingsError(f"{name}: {part!r} is not host:port")
    return ",".join(parts)


def kafka_target(settings: dict[str, Any]) -> Target:
    """The target of a KAFKA callback's settings (secrets already put back)."""
    bootstrap = bootstrap_servers(settings.get("bootstrapServers"))
    tls = settings.get("tls") is True
    sasl = settings.get("sasl") or None
    if sasl is None:
        return Target(bootstrap, tls=tls)
    mechanism = sasl.get("mechanism") or "PLAIN"
    if mechanism not in SASL_MECHANISMS:
        raise SettingsError(f"channelSettings.sasl.mechanism: must be one of {', '.join(SASL_MECHANISMS)}")
    username, password = sasl.get("username"), sasl.get("password")
    if not username:
        raise SettingsError("channelSettings.sasl.username: is required")
    if not password:
        raise SettingsError("channelSettings.sasl.password: is required")
    return Target(bootstrap, username, password, mechanism, tls)


# aiokafka logs why each bootstrap address failed (a refused connection, a SASL mechanism the broker
# does not offer, bad credentials) and raises only "Unable to bootstrap": the reasons are taken from
# its log, per task (a context variable), to become the attempt's error text.
_bootstrap_errors: ContextVar[list[BaseException] | None] = ContextVar("kafka_bootstrap_errors", default=None)


class _BootstrapErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        errors = _bootstrap_errors.get()
        if errors is not None and isinstance(record.args, tuple) and record.args \
                and isinstance(record.args[-1], BaseException):
            errors.append(record.args[-1])
        return True


logging.getLogger("aiokafka").addFilter(_BootstrapErrors())


class Refused(KafkaError):  # type: ignore[misc]  # aiokafka ships no types: its base is Any
    """The cluster refused the client (SASL mechanism, credentials, TLS): not a sign it is unwell."""


async def start(producer: AIOKafkaProducer, target: Target, timeout_s: float) -> None:
    """Start a producer; when it cannot bootstrap, raise what stopped it: the broker's refusal (SASL,
    authentication) if any, else the connection error, naming the addresses."""
    token = _bootstrap_errors.set([])
    try:
        await asyncio.wait_for(producer.start(), timeout_s)
    except KafkaConnectionError as exc:
        errors = _bootstrap_errors.get() or []
        refusals = [e for e in errors if isinstance(e, KafkaError) and not isinstance(e, KafkaConnectionError)]
        if refusals:
            how = f"SASL {target.mechanism} as {target.username}" if target.mechanism else "no SASL"
            raise Refused(f"{refusals[-1]}; {how}, {'TLS' if target.tls else 'no TLS'}") from exc
        if errors:
            kind = ssl.SSLError if isinstance(errors[-1], ssl.SSLError) else KafkaConnectionError
            raise kind(f"Unable to bootstrap from {target.bootstrap}: {errors[-1]}") from exc
        raise
    finally:
        _bootstrap_errors.reset(token)


class Producers:
    """Started producers by target, least recently used closed first (at most `size`)."""

    def __init__(self, size: int = POOL_SIZE) -> None:
        self.size = size
        self._producers: OrderedDict[Target, AIOKafkaProducer] = OrderedDict()
        self._locks: dict[Target, asyncio.Lock] = {}

    async def get(self, target: Target, timeout_s: float) -> AIOKafkaProducer:
        producer = self._producers.get(target)
        if producer is not None:
            self._producers.move_to_end(target)
            return producer
        lock = self._locks.setdefault(target, asyncio.Lock())
        async with lock:
            producer = self._producers.get(target)
            if producer is not None:
                return producer
            producer = target.producer(timeout_s)
            try:
                await start(producer, target, timeout_s)
            except BaseException:
                await _stop(producer)
                raise
            if target in self._producers:  # made meanwhile under a newer lock (a drop forgot the old one)
                await _stop(producer)
                return self._producers[target]
            self._producers[target] = producer
            while len(self._producers) > self.size:
                await self.drop(next(iter(self._producers)))
            return producer

    async def drop(self, target: Target, failed: AIOKafkaProducer | None = None) -> None:
        """Close the target's producer; with `failed`, only if it is still that one (a concurrent send
        may have replaced it already: the new one stays)."""
        producer = self._producers.get(target)
        if producer is None or (failed is not None and producer is not failed):
            if failed is not None:
                await _stop(failed)
            return
        del self._producers[target]
        self._locks.pop(target, None)
        await _stop(producer)

    async def close(self) -> None:
        for target in list(self._producers):
            await self.drop(target)


async def _stop(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), 5.0)


async def destination_refusal(target: Target) -> str | None:
    """Why the destination rule refuses one of the target's bootstrap hosts (resolved), or None."""
    policy = policy_from_settings()
    loop = asyncio.get_running_loop()
    for host, port in target.hosts():
        reason = policy.check_host(host)
        if reason is not None:
            return reason
        if literal_address(host) is not None:
            continue
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            continue  # the client's own error says it better
        for info in infos:
            ip = literal_address(str(info[4][0]))
            if ip is not None and (why := policy.check_address(ip, f"{host} resolves to {ip},")) is not None:
                return why
    return None


def error_text(exc: BaseException) -> str:
    """The client's own words for a failure."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "Kafka did not acknowledge the record in time"
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def error_class(exc: BaseException) -> str:
    """The delivery loop's error class: what says the cluster is unwell (unreachable, too slow, a
    retriable broker error) counts against its circuit; a refusal (authentication, authorization, a
    record too large) does not."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, UnknownTopicOrPartitionError):
        return "other"  # a topic missing (or being created) is the settings', not the cluster's health
    if isinstance(exc, (KafkaConnectionError, OSError)) or getattr(exc, "retriable", False):
        return "connect"
    return "other"


class KafkaChannel(SettingsChannel):
    """A channel producing to a Kafka-speaking cluster; subclasses say how settings make a target."""

    name = "KAFKA"

    def __init__(self) -> None:
        self.producers = Producers()

    async def close(self) -> None:
        await self.producers.close()

    # What differs between Kafka-speaking channels ----------------------
    def target(self, settings: dict[str, Any]) -> Target:
        return kafka_target(settings)

    def default_topic(self, settings: dict[str, Any]) -> str:
        """The topic of a callback whose settings have no `topic` template."""
        raise SettingsError("channelSettings.topic: is required")

    # The channel -------------------------------------------------------
    def destination_key(self, settings: dict[str, Any]) -> str:
        return self.target(settings).key

    def record(self, delivery: Delivery, settings: dict[str, Any]) -> tuple[str, bytes]:
        """(topic, value) of one delivery: the topic and body the router rendered (`publish`)."""
        publish = delivery["publish"]
        topic = publish["topic"] or self.default_topic(settings)
        if not TOPIC_NAME.fullmatch(topic):
            raise TemplateError("channelSettings.topic", None, f"rendered topic {topic[:260]!r} is not a Kafka topic "
                                                               "name (1-249 of A-Z a-z 0-9 . _ -)")
        return topic, publish["body"].encode()

    async def send(self, delivery: Delivery, attempts: int, callback: dict[str, Any], context: Context) -> Outcome:
        if not callback:
            return failed("callback no longer exists")
        try:
            settings = self.settings_of(callback, context)
            target = self.target(settings)
            topic, value = self.record(delivery, settings)
        except SealedSecretError as exc:
            return failed(f"callback secrets: {exc}")
        except ValueError as exc:  # SettingsError, ConnectionStringError, TemplateError: they name the field
            return failed(str(exc), "render")
        refusal = await destination_refusal(target)
        if refusal is not None:
            return failed(f"destination refused: {refusal}", "destination")
        headers = [("message-id", (delivery.get("webhookId") or delivery["id"]).encode()),
                   ("callback-type", delivery["kind"].encode())]
        timeout_s = context.settings.callback_timeout_s
        started = time.monotonic()
        producer = None
        try:
            producer = await self.producers.get(target, timeout_s)
            left = max(0.1, timeout_s - (time.monotonic() - started))
            sent = await asyncio.wait_for(self._produce(producer, topic, value, delivery["device"], headers), left)
        except asyncio.CancelledError:
            raise
        except (KafkaError, OSError, asyncio.TimeoutError, TimeoutError) as exc:
            latency = (time.monotonic() - started) * 1000
            if isinstance(exc, UnknownTopicOrPartitionError):  # nothing was sent: the producer is fine
                return failed(f"UnknownTopicOrPartitionError: topic {topic!r} is not on the cluster", "other", latency)
            if producer is not None and not isinstance(exc, TopicAuthorizationFailedError):
                await self.producers.drop(target, producer)
            secrets = context.credentials.get(callback).opened
            return failed(secrets.scrub(error_text(exc)) or "", error_class(exc), latency)
        latency = (time.monotonic() - started) * 1000
        return Outcome(OK_STATUS, "ok", None, latency, f"{sent.topic}[{sent.partition}]@{sent.offset}")

    @staticmethod
    async def _produce(producer: AIOKafkaProducer, topic: str, value: bytes, device: str,
                       headers: list[tuple[str, bytes]]) -> Any:
        future = await producer.send(topic, value, key=device.encode(), headers=headers)
        return await future

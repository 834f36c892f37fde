"""The MQTT channel: one PUBLISH per delivery to the customer's broker (MQTT 3.1.1 or 5), with aiomqtt.

The router renders the topic and the body (`publish` of the delivery, from `channelSettings.topic`
and the body template); where to connect (host, port, TLS, user, password, protocol, QoS) is read
from the callback's `channelSettings` at send time, its password opened then (`workers.credentials`).
Retain is always off.

The stable message id (the delivery id, or a replay's `webhookId`: the same on every retry and
replay) travels as the MQTT 5 user property `message-id`, with the body's content type. MQTT
3.1.1 has no place for it outside the payload, which is the customer's template and left as it is:
receivers de-duplicate on what the body carries ({device} and {seqNumber} name an uplink).

Connections are pooled: one per destination (the bulkhead key `mqtt://host:port/username`), opened on
first use, shared by concurrent publishes, and dropped on any failure or change of its settings, so
that the next attempt reconnects; at most `pool_size` stay open (the least recently used is closed).
A failed attempt keeps the client's own error text for cbStatus. Success is status 200 (QoS 1: the
broker's PUBACK; QoS 0: written to the connection).

A subclass maps its settings to a `Destination` and a topic (`destination`, `message`): the
AZURE_IOT_HUB channel (`workers.channels.azure_iot_hub`) is this channel with IoT Hub's names.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import socket
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from backhaul.destinations import DestinationPolicy, DestinationRefused, shown
from backhaul.outbound import policy_from_settings
from backhaul.secretbox import SealedSecretError
from workers.attempt import Outcome, failed
from workers.channels.base import Channel, Context, Delivery, Request

log = logging.getLogger(__name__)

MESSAGE_ID = "message-id"  # the MQTT 5 user property carrying the stable message id
PUBLISHED = 200
DEFAULT_PORT = {False: 1883, True: 8883}
CONNECT_TIMEOUT_S = 10.0
REFUSED = "publish refused"
PENDING_WARNING = 10_000
POOL_SIZE = 1024  # connections kept open at once


@dataclass(frozen=True, repr=False)
class Destination:
    """Where and how to connect; the password is only in memory (repr hides it)."""

    host: str
    port: int
    tls: bool
    ca: str | None
    username: str | None
    password: str | None
    protocol: str
    client_id: str | None = None  # None: the client makes one up
    renew_at: float | None = None  # wall-clock time after which `password` (a token) is to be renewed
    credential: str | None = None  # a fingerprint of what such a password is made from (not a secret)

    @classmethod
    def of(cls, settings: dict[str, Any]) -> "Destination":
        tls = bool(settings.get("tls"))
        return cls(settings["host"], int(settings.get("port") or DEFAULT_PORT[tls]), tls,
                   settings.get("caCertificate"), settings.get("username"), settings.get("password"),
                   str(settings.get("protocol") or "5"))

    @property
    def key(self) -> str:
        """The bulkhead key: host, port and user (not the password)."""
        return endpoint_key(self.host, self.port, self.username)

    def __repr__(self) -> str:
        return f"Destination({self.key}, tls={self.tls}, protocol={self.protocol})"


def endpoint_key(host: str, port: int, username: str | None) -> str:
    return f"mqtt://{host.lower()}:{port}/{username or ''}"


# aiomqtt awaits the PUBACK but drops its reason code, so a broker refusing a publish (MQTT 5:
# "Not authorized", "Topic Name invalid", ...) would read as delivered. The client below keeps the
# code of each refused PUBACK by packet id; the packet id of a publish is caught on its way through
# paho's publish, into the list a context variable of the publishing call holds.
_MIDS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("mqtt_mids", default=None)


class _Client(aiomqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused: dict[int, ReasonCode] = {}
        paho_publish = self._client.publish

        def publish(*a: Any, **kw: Any) -> Any:
            info = paho_publish(*a, **kw)
            mids = _MIDS.get()
            if mids is not None:
                mids.append(info.mid)
            return info

        self._client.publish = publish  # type: ignore[method-assign]

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: ReasonCode,
                    properties: Properties) -> None:
        if reason_code.is_failure:
            self.refused[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_checked(self, topic: str, payload: bytes, qos: int, properties: Properties | None,
                              timeout: float) -> None:
        """Publish; raises aiomqtt.MqttCodeError with the broker's reason when it refuses."""
        mids: list[int] = []
        _MIDS.set(mids)  # the task below runs in a copy of this context: it appends to this very list
        # aiomqtt waits for a PUBACK until the timeout even when the connection is gone: stop at the loss.
        sending = asyncio.ensure_future(self.publish(topic, payload, qos=qos, retain=False, properties=properties,
                                                     timeout=timeout))
        lost = self._disconnected
        try:
            await asyncio.wait({sending, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sending.done():
                sending.cancel()
        if not sending.done() or sending.cancelled():
            cause = lost.exception() if lost.done() and not lost.cancelled() else None
            raise aiomqtt.MqttError(f"connection lost before the broker's PUBACK: {cause or 'disconnected'}")
        sending.result()
        reason = self.refused.pop(mids[0], None) if mids else None
        if reason is not None:
            raise aiomqtt.MqttCodeError(reason, REFUSED)

    @property
    def is_connected(self) -> bool:
        return self._connected.done() and not self._connected.exception() and not self._disconnected.done()


class Connection:
    """One open client to one destination."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self.client: _Client | None = None
        self.lock = asyncio.Lock()

    async def open(self, policy: DestinationPolicy, timeout_s: float, inflight: int) -> _Client:
        async with self.lock:
            if self.client is not None and self.client.is_connected:
                return self.client
            await self.close()
            d = self.destination
            await _check_destination(policy, d.host, d.port)
            client = _Client(d.host, d.port, username=d.username, password=d.password,
                             protocol=aiomqtt.ProtocolVersion.V5 if d.protocol == "5" else aiomqtt.ProtocolVersion.V311,
                             tls_context=_tls_context(d.ca) if d.tls else None, timeout=timeout_s,
                             identifier=d.client_id, clean_session=True if d.protocol != "5" else None,
                             max_inflight_messages=inflight, logger=log)
            client.pending_calls_threshold = PENDING_WARNING  # the bulkhead bounds them; aiomqtt warns past 10
            try:
                await client.__aenter__()  # bounded by the client's timeout
            except BaseException:
                with contextlib.suppress(Exception):
                    client._client.disconnect()  # a CONNECT left unanswered: let its socket go
                raise
            self.client = client
            return client

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.__aexit__(None, None, None), 2.0)
            except Exception as exc:  # a connection already broken: nothing to close politely
                log.debug("mqtt close", extra={"endpoint": self.destination.key, "error": str(exc)})


def _tls_context(ca: str | None) -> ssl.SSLContext:
    """Verifying TLS: the given CA (PEM) or the system's."""
    return ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()


async def _check_destination(policy: DestinationPolicy, host: str, port: int) -> None:
    """The destination rule, as for HTTP callbacks: the host, then every address it resolves to."""
    refusal = policy.check_host(host)
    if refusal is not None:
        raise DestinationRefused(refusal)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        refusal = policy.check_address(ip, f"{host} resolves to {shown(ip)},")
        if refusal is not None:
            raise DestinationRefused(refusal)


def _reason(exc: BaseException) -> tuple[str, str]:
    """(error class, the client's error text) of a failed attempt."""
    if isinstance(exc, DestinationRefused):
        return "destination", f"destination refused: {exc.reason}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout", "timed out"
    if isinstance(exc, ssl.SSLError):
        return "tls", f"{type(exc).__name__}: {exc}"
    if isinstance(exc, socket.gaierror):
        return "dns", f"{type(exc).__name__}: {exc}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MqttConnectError) and isinstance(exc.rc, int) and exc.args:
        text = f"[code:{exc.rc}] {exc.args[0]}"  # aiomqtt's str() reads an MQTT 3.1.1 CONNACK code as a paho error
    if isinstance(exc, (MqttConnectError, aiomqtt.MqttCodeError)) and (isinstance(exc, MqttConnectError) or _refused(exc)):
        return "other", f"MQTT {text}"  # the broker answered: a refusal (credentials, ACL), not a breakdown
    if "timed out" in text:
        return "timeout", f"MQTT {text}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return "tls", text
    return "connect", text


def _refused(exc: BaseException) -> bool:
    """A publish the broker answered with a failing PUBACK (the connection itself is fine)."""
    return isinstance(exc, aiomqtt.MqttCodeError) and exc.args[:1] == (REFUSED,)


class Mqtt(Channel):
    name = "MQTT"
    pool_size = POOL_SIZE

    def __init__(self) -> None:
        self._pool: OrderedDict[str, Connection] = OrderedDict()
        self._policy: DestinationPolicy | None = None

    # What differs between MQTT-speaking channels ----------------------
    def destination(self, delivery: Delivery, settings: dict[str, Any]) -> Destination:
        """Where and as whom the delivery is published (settings with their secrets opened); a
        ValueError naming the member when the settings cannot be used."""
        return Destination.of(settings)

    def message(self, delivery: Delivery, message_id: str, destination: Destination) -> tuple[str, Properties | None]:
        """(topic, MQTT 5 properties) of the delivery: the rendered topic; with MQTT 5 the stable id."""
        publish = delivery["publish"]
        if destination.protocol != "5":
            return publish["topic"], None
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = [(MESSAGE_ID, message_id)]
        properties.ContentType = publish["contentType"]
        properties.PayloadFormatIndicator = 1  # UTF-8 text
        return publish["topic"], properties

    def pooled(self, key: str) -> Destination | None:
        """The destination of the open connection pooled under `key`, if any."""
        current = self._pool.get(key)
        return current.destination if current is not None else None

    # The channel -------------------------------------------------------

    def endpoint(self, delivery: Delivery, request: Request | None, context: Context) -> str | None:
        cb = context.view.callbacks.get(delivery["callbackId"] or "") or {}
        settings = cb.get("channel_settings") or {}
        if not settings.get("host"):
            return None
        port = settings.get("port") or DEFAULT_PORT[bool(settings.get("tls"))]
        return endpoint_key(settings["host"], int(port), settings.get("username"))

    async def send(self, delivery: Delivery, attempts: int, callback: dict[str, Any], context: Context) -> Outcome:
        if not callback or not callback.get("channel_settings"):
            return failed("callback no longer exists")
        try:
            secrets = context.credentials.get(callback)
        except SealedSecretError as exc:
            return failed(f"callback secrets: {exc}")
        settings = secrets.opened.settings_with(callback["channel_settings"])
        message_id = delivery.get("webhookId") or delivery["id"]
        try:
            destination = self.destination(delivery, settings)
            topic, properties = self.message(delivery, message_id, destination)
        except ValueError as exc:  # settings the channel cannot use: the message names the member
            return failed(secrets.scrub(str(exc)) or str(exc), "render")
        body = delivery["publish"]["body"].encode()
        timeout_s = context.settings.callback_timeout_s
        connection = await self._connection(destination)
        started = time.monotonic()
        try:
            # As many QoS 1 publishes in flight as the endpoint's bulkhead lets through (paho's default: 20).
            inflight = max(context.settings.endpoint_concurrency, callback.get("concurrency") or 0)
            client = await connection.open(self._destinations(), min(timeout_s, CONNECT_TIMEOUT_S), inflight)
            qos = int(settings.get("qos", 1))
            await client.publish_checked(topic, body, qos, properties, timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not _refused(exc):
                await self._drop(connection)
            error_class, text = _reason(exc)
            return failed(secrets.scrub(text) or text, error_class, (time.monotonic() - started) * 1000)
        latency = (time.monotonic() - started) * 1000
        return Outcome(PUBLISHED, "ok", None, latency, "PUBACK" if qos else "sent (QoS 0)")

    def _destinations(self) -> DestinationPolicy:
        if self._policy is None:
            self._policy = policy_from_settings()
        return self._policy

    async def _connection(self, destination: Destination) -> Connection:
        """The pooled connection to `destination`; one whose settings changed is replaced."""
        current = self._pool.get(destination.key)
        if current is not None and current.destination == destination:
            self._pool.move_to_end(destination.key)
            return current
        self._pool[destination.key] = connection = Connection(destination)
        self._pool.move_to_end(destination.key)
        if current is not None:
            await current.close()
        while len(self._pool) > self.pool_size:
            _, oldest = self._pool.popitem(last=False)
            await oldest.close()  # its publishes in flight, if any, fail and are retried
        return connection

    async def _drop(self, connection: Connection) -> None:
        """Forget a connection that failed: the next attempt reconnects."""
        if self._pool.get(connection.destination.key) is connection:
            del self._pool[connection.destination.key]
        await connection.close()

    async def close(self) -> None:
        pool, self._pool = self._pool, OrderedDict()
        await asyncio.gather(*(c.close() for c in pool.values()), return_exceptions=True)

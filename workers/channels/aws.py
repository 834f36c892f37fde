"""What the AWS channels (AWS_IOT, KINESIS, SQS) share: the account settings, pooled aiobotocore clients, the
destination rule on the endpoint, and the service's error in cbStatus.

Settings common to the three (`channelSettings`, checked by `oss.channel_settings.aws`): `region` (required),
`accessKeyId` and `secretAccessKey` (required; the secret write-only, sealed, masked), `sessionToken`
(optional, secret), `endpointUrl` (optional; https, plain http only to an address the operator allows:
`backhaul.aws_rules.url_refusal`). Without `endpointUrl` botocore resolves the service's regional endpoint.

Clients are aiobotocore's (request signing, the service models: nothing of the protocol written here), one per
(service, account: region, endpoint, keys), kept open and shared by concurrent sends, least recently used
closed first, all closed by the channel's `close`. Their connect and read timeouts are the callback timeout;
botocore's own retries are off: the delivery loop's retry schedule decides. Every connection passes the
destination rule: the endpoint URL before each request, and each address its host resolves to (the HTTP
callbacks' resolver, `backhaul.outbound.guarded_resolver`).

A failed attempt's cbStatus text is the service's error code and message (`AWS AccessDeniedException: ...`,
`AWS QueueDoesNotExist: ...`) or botocore's words for a connection failure; the secrets are scrubbed out of it.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)

from backhaul.aws_rules import ACCESS_KEY_ID, REGION, url_refusal
from backhaul.destinations import DestinationPolicy, refusal_of
from backhaul.outbound import guarded_resolver, policy_from_settings
from backhaul.secretbox import SealedSecretError
from workers.attempt import Outcome, failed
from workers.channels.base import Context, Delivery, SettingsChannel
from workers.channels.linger import Limits, Linger, TooLarge
from workers.retry import classify

POOL_SIZE = 256  # clients kept open at once
OK_STATUS = 200  # the service accepted the message, recorded as HTTP 200 in cbStatus
# Codes of a service asking to slow down (HTTP 400 or 503 on the wire): recorded as http_429, which opens the circuit.
THROTTLED = frozenset({"ThrottlingException", "Throttling", "ProvisionedThroughputExceededException",
                       "RequestThrottled", "TooManyRequestsException", "KMSThrottlingException",
                       "RequestThrottledException", "LimitExceededException"})
SERVER_FAULTS = frozenset({"InternalFailure", "InternalError", "InternalServerError", "ServiceUnavailable",
                           "InternalFailureException", "ServiceUnavailableException", "KMSInternalException"})


# A front end (or a stand-in such as moto's IAM check) may answer a JSON API's request with an XML error
# document, which botocore leaves whole in the message with the HTTP status as the code.
_XML_ERROR = re.compile(r"<Code>(?P<code>[^<]{1,200})</Code>\s*<Message>(?P<message>[^<]{0,2000})</Message>")


class Refused(ValueError):
    """The destination rule refuses the endpoint."""


class SettingsError(ValueError):
    """Settings a channel cannot use; the message names the member (`channelSettings.<member>: why`)."""


@dataclass(frozen=True)
class Account:
    """Who calls AWS and where: what a client is made from (and pooled by); secrets hidden from repr."""

    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    endpoint_url: str | None = None

    @classmethod
    def of(cls, settings: dict[str, Any]) -> "Account":
        """The account of a callback's settings (secrets put back); SettingsError names a bad member."""
        region = settings.get("region")
        if not isinstance(region, str) or not REGION.fullmatch(region):
            raise SettingsError("channelSettings.region: is required (an AWS region such as eu-west-1)")
        key_id, secret = settings.get("accessKeyId"), settings.get("secretAccessKey")
        if not isinstance(key_id, str) or not ACCESS_KEY_ID.fullmatch(key_id):
            raise SettingsError("channelSettings.accessKeyId: is required (16 to 128 of A-Z 0-9)")
        if not isinstance(secret, str) or not secret:
            raise SettingsError("channelSettings.secretAccessKey: is required")
        return cls(region, key_id, secret, settings.get("sessionToken") or None, settings.get("endpointUrl") or None)

    def key(self, service: str) -> str:
        """The bulkhead key: the service's endpoint (or region) and the access key id (not the secret)."""
        return f"aws-{service}://{self.access_key_id}@{self.endpoint_url or self.region}"


def aws_error(exc: BaseException) -> tuple[str, str]:
    """(error class, cbStatus text) of a failed call: the service's code and message, or botocore's words."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error") or {}
        code, message = str(error.get("Code") or "Unknown"), str(error.get("Message") or "")
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        if (xml := _XML_ERROR.search(message)) is not None:  # an XML error where botocore expected JSON
            code, message = xml["code"], xml["message"]
        return entry_class(code, status), f"AWS {code}: {message}".rstrip(": ")
    refused = refusal_of(exc)
    if refused is not None:
        return "destination", f"destination refused: {refused.reason}"
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return "timeout", f"AWS did not answer in time ({exc})" if str(exc) else "AWS did not answer in time"
    if isinstance(exc, SSLError):
        return "tls", str(exc)
    if isinstance(exc, (EndpointConnectionError, OSError)):
        return "connect", str(exc)
    if isinstance(exc, BotoCoreError):
        return "other", str(exc)
    return "other", f"{type(exc).__name__}: {exc}"


def entry_class(code: str, status: int = 0) -> str:
    """The delivery loop's error class of an AWS error code (a whole request's, with its HTTP status, or one
    entry's of a batch): throttling and the service's own faults count against the circuit, refusals do not."""
    if code in THROTTLED:
        return "http_429"
    if code in SERVER_FAULTS:
        return "http_5xx"
    return classify(status, None) if status else "other"


def entry_failure(code: str, message: str | None, latency_ms: float) -> Outcome:
    """The Outcome of one entry a batch call refused (Kinesis' ErrorCode, SQS's Failed list)."""
    return failed(f"AWS {code}: {message}" if message else f"AWS {code}", entry_class(code), latency_ms)


class Clients:
    """Open aiobotocore clients by (service, account), least recently used closed first (at most `size`)."""

    def __init__(self, size: int = POOL_SIZE) -> None:
        self.size = size
        self._clients: OrderedDict[tuple[str, Account], tuple[Any, contextlib.AsyncExitStack]] = OrderedDict()
        self._lock = asyncio.Lock()
        self._policy: DestinationPolicy | None = None

    @property
    def policy(self) -> DestinationPolicy:
        if self._policy is None:
            self._policy = policy_from_settings()
        return self._policy

    async def get(self, service: str, account: Account, timeout_s: float) -> Any:
        """The open client of `service` for `account` (made on first use)."""
        key = (service, account)
        async with self._lock:
            if key in self._clients:
                self._clients.move_to_end(key)
                return self._clients[key][0]
            config = AioConfig(connect_timeout=timeout_s, read_timeout=timeout_s,
                               retries={"total_max_attempts": 1}, max_pool_connections=64,
                               connector_args={"resolver": guarded_resolver(self.policy)})
            stack = contextlib.AsyncExitStack()
            client = await stack.enter_async_context(get_session().create_client(
                service, region_name=account.region, endpoint_url=account.endpoint_url,
                aws_access_key_id=account.access_key_id, aws_secret_access_key=account.secret_access_key,
                aws_session_token=account.session_token, config=config))
            self._clients[key] = (client, stack)
            while len(self._clients) > self.size:
                _, (_, old) = self._clients.popitem(last=False)
                await _close(old)
            return client

    def refusal(self, client: Any) -> str | None:
        """Why the destination rule refuses the client's endpoint URL (literal addresses, which no resolver
        sees; names are checked again on what they resolve to), or None."""
        return url_refusal(client.meta.endpoint_url, self.policy)

    async def close(self) -> None:
        clients, self._clients = self._clients, OrderedDict()
        for _, stack in clients.values():
            await _close(stack)


async def _close(stack: contextlib.AsyncExitStack) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(stack.aclose(), 5.0)


class AwsChannel(SettingsChannel):
    """A channel calling one AWS service; a subclass makes the call (`call`), the rest is here."""

    service: str  # botocore's name of the service: "sqs", "kinesis", "iot-data"

    def __init__(self) -> None:
        self.clients = Clients()
        self.timeout_s = 10.0

    async def close(self) -> None:
        await self.clients.close()

    def destination_key(self, settings: dict[str, Any]) -> str:
        return Account.of(settings).key(self.service)

    async def client(self, account: Account) -> Any:
        """The account's client of the channel's service; `Refused` when the rule refuses its endpoint."""
        client = await self.clients.get(self.service, account, self.timeout_s)
        refusal = self.clients.refusal(client)
        if refusal is not None:
            raise Refused(refusal)
        return client

    async def send(self, delivery: Delivery, attempts: int, callback: dict[str, Any], context: Context) -> Outcome:
        if not callback:
            return failed("callback no longer exists")
        try:
            settings = self.settings_of(callback, context)
            account = Account.of(settings)
            call = self.call(delivery, settings, account)
        except SealedSecretError as exc:
            return failed(f"callback secrets: {exc}")
        except ValueError as exc:  # SettingsError, TemplateError, TooLarge: they name the field
            return failed(str(exc), "render")
        self.timeout_s = context.settings.callback_timeout_s
        started = time.monotonic()
        try:
            # The linger and the request; the client's own timeouts end it first.
            outcome = await asyncio.wait_for(call(), self.timeout_s * 2 + 1)
            outcome.latency_ms = outcome.latency_ms or (time.monotonic() - started) * 1000
            return outcome
        except asyncio.CancelledError:
            raise
        except Refused as exc:
            return failed(f"destination refused: {exc}", "destination")
        except TooLarge as exc:
            return failed(str(exc), "other")
        except Exception as exc:
            error_class, text = aws_error(exc)
            secrets = context.credentials.get(callback).opened
            return failed(secrets.scrub(text) or text, error_class, (time.monotonic() - started) * 1000)

    def call(self, delivery: Delivery, settings: dict[str, Any], account: Account) -> Callable[[], Awaitable[Outcome]]:
        """The attempt of one delivery, checked and ready to run (ValueError naming a field when it cannot be)."""
        raise NotImplementedError




LINGER_S = 0.005  # how long a batch stays open for more entries after its first (a Kafka producer's linger.ms)
Target = tuple[Account, str]  # an account and a queue URL or stream: the batch an entry goes in


class AwsBatchChannel(AwsChannel):
    """An AWS channel whose calls carry a batch of entries, each answered on its own (`workers.channels.linger`)."""

    limits: Limits
    what: str = "message"

    def __init__(self) -> None:
        super().__init__()
        self.batches: Linger[Target, dict[str, Any], Outcome] = Linger(self.limits, LINGER_S, self._timed, self.what)

    async def close(self) -> None:
        await self.batches.close()
        await super().close()

    async def _timed(self, target: Target, entries: list[dict[str, Any]]) -> list[Outcome]:
        client = await self.client(target[0])
        started = time.monotonic()
        answers = await self.flush(client, target[1], entries)
        latency = (time.monotonic() - started) * 1000
        for outcome in answers:
            outcome.latency_ms = latency
        return answers

    async def flush(self, client: Any, where: str, entries: list[dict[str, Any]]) -> list[Outcome]:
        """One batch request of `entries` to `where`; one Outcome per entry, in order (latency set by the caller)."""
        raise NotImplementedError

"""The interface every delivery channel implements, and what the delivery loop lends it.

httpx's `BaseTransport` is the model: a channel knows how to make one attempt
on its medium (`send` -> `Outcome`); the delivery loop (`workers/delivery.py`)
does everything around it: consuming, the endpoint's bulkhead (`endpoint`
names it), announcing each send, retries, settling and recording. Two kinds
of channel need a little more from the loop:

- a *batched* channel (`batched = True`, BATCH_URL) has its deliveries
  gathered per callback for `batch_window_s`, then `batch` makes the one
  request they go in;
- a channel that *calls nothing* (`calls = False`, DIRECT) has no endpoint,
  attempt or retry: its deliveries become the records `publish` returns.

After an attempt the loop asks the channel what the answer gives besides the
attempt's record (`answered`: the BIDIR downlink answer of HTTP channels, and
what the attempt's `info` says of the downlink).
A new channel is one module with a `Channel` subclass, registered in
`workers/channels/__init__.py`.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp

from backhaul.configview import ConfigView
from backhaul.kafka import Out
from backhaul.secretbox import SealedSecretError
from backhaul.settings import Settings
from callback_language.compiled import CompiledCallbacks
from callback_language.downlink import InfoCode
from schemas.deliveries import Delivery, Request
from workers.attempt import Outcome
from workers.credentials import CallbackCredentials


@dataclass(frozen=True)
class Answered:
    """What an answer gives besides its attempt's record: records to publish, and, when it says more
    than the attempt's own `info`, what the attempt's `info` is to say (a downlink callback's: what
    became of the downlink, shown in the message's cbStatus)."""

    records: list[Out] = field(default_factory=list)
    info: str | None = None


@dataclass(frozen=True)
class Context:
    """What the delivery loop lends its channels."""

    settings: Settings
    view: ConfigView
    session: aiohttp.ClientSession
    credentials: CallbackCredentials
    compiled: CompiledCallbacks
    # The grant of a downlink (its data; None: a DIRECT delivery's template) once the contract, the receive
    # windows and the quota let it through, or the ACKNOWLEDGE saying why not; with the words for cbStatus.
    grant: Callable[[Delivery, str | None], Awaitable[Answered]]
    # The ACKNOWLEDGE event of the delivery's uplink, with its infoCode and, optionally, why.
    ack: Callable[[Delivery, InfoCode, str | None], Out]


@dataclass(frozen=True)
class BatchRequest:
    """The one request a batch of deliveries goes in, or why it cannot be made (`failure`, which every
    member's attempt then records)."""

    id: str  # its webhook-id, derived from the members: the same on every retry of the batch
    failure: Outcome | None = None
    request: Request | None = None  # what is kept with a member given up
    endpoint: str | None = None  # the bulkhead key
    send: Callable[[], Awaitable[Outcome]] | None = None


class Channel:
    """One way of delivering a callback; the delivery loop calls it through `CHANNELS`."""

    name: ClassVar[str]
    batched: ClassVar[bool] = False
    calls: ClassVar[bool] = True

    def endpoint(self, delivery: Delivery, request: Request | None, context: Context) -> str | None:
        """The bulkhead key of where the delivery goes (`request`: the batch request it went in, if any);
        None when it is not known."""
        return None

    async def send(self, delivery: Delivery, attempts: int, callback: dict[str, Any], context: Context) -> Outcome:
        """Make attempt `attempts + 1`; never raises for a failure of the attempt itself. `callback` is
        the callbacks row as the loop read it when the delivery entered its endpoint's bulkhead."""
        raise NotImplementedError(f"{self.name} makes no single request")

    async def answered(self, delivery: Delivery, attempts: int, outcome: Outcome, answered_ms: int,
                       context: Context) -> Answered:
        """What the answer of attempt number `attempts` gives besides the attempt's own record."""
        return Answered()

    def batch(self, callback_id: str, members: list[tuple[Delivery, int]], context: Context) -> BatchRequest:
        """(Batched channels) The request the members, each with its attempts so far, go in."""
        raise NotImplementedError(f"{self.name} is not batched")

    async def publish(self, delivery: Delivery, context: Context) -> list[Out]:
        """(Channels that call nothing) The records the delivery becomes."""
        raise NotImplementedError(f"{self.name} calls an endpoint")

    async def close(self) -> None:
        """Close what the channel keeps open (pooled connections of its own); the loop calls it on stop."""


class SettingsChannel(Channel):
    """A channel whose destination is in the callback's `channelSettings` (KAFKA, the AWS channels): its
    bulkhead key is made from the settings, their secrets opened (`destination_key`)."""

    def settings_of(self, cb: dict[str, Any], context: Context) -> dict[str, Any]:
        """The callback's settings with their secret members opened (SealedSecretError if none opens)."""
        return context.credentials.get(cb).opened.settings_with(cb.get("channel_settings"))

    def destination_key(self, settings: dict[str, Any]) -> str:
        """The bulkhead key of these settings (ValueError when they cannot be used)."""
        raise NotImplementedError

    def endpoint(self, delivery: Delivery, request: Request | None, context: Context) -> str | None:
        cb = context.view.callbacks.get(delivery["callbackId"] or "")
        if not cb:
            return f"{self.name.lower()}:gone"
        try:
            return self.destination_key(self.settings_of(cb, context))
        except (SealedSecretError, ValueError):
            return f"{self.name.lower()}:{cb['id']}"  # fails at send time, alone in its bulkhead

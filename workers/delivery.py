"""The delivery worker: rendered deliveries -> customers' servers, with every attempt recorded.

Each delivery runs in its own task behind its endpoint's bulkhead
(concurrency cap, token bucket, circuit breaker), so a slow or dead
endpoint only ever slows itself. When an endpoint already holds its share of
waiting deliveries and they would take `QUICK_DRAIN_S` or more to drain at its
measured pace, or its circuit is open, further deliveries are parked in
the retry store instead of waiting in memory: nothing is dropped and the
consumer keeps reading for the others. An endpoint that drains quickly keeps
what it is given past its share, up to the worker's in-flight cap, which then
stops the reading: parking costs more than sending, so parking for an endpoint
only as slow as the worker itself made an overloaded worker collapse. An endpoint's share is
`endpoint_queue`; once half of `max_in_flight` is taken, a slow endpoint's
(requests averaging `SLOW_S` or more) is only its concurrency, so that slow
endpoints together cannot fill the worker while busy fast ones keep theirs.
A Kafka offset is committed only once every delivery before it is settled:
its outcome published and its retry (if any) durably parked. A delivery read
again from Kafka (a rebalance, a copy published twice upstream) is not sent
again while this worker remembers it (`workers.taken`). The worker is a
member of its consumer group as every stage is (`backhaul.kafka.GroupConsumer`:
the same rebalance hooks and the `backhaul_consumer_lag` gauge); a revoked
partition is let go once its deliveries in flight are settled and committed.

Every send is on the record, announced before it goes. Just before a request
is sent (after the bulkhead let it through) the worker publishes a
`delivery-results` record `state: sending` with a fresh `sendId`
(`schemas.delivery_results`) and waits for the broker; after the answer it
publishes the completed record (status, latency, error class, up to 1 KiB of
the answer) with the same `sendId`. The store writes both into one
`callback_attempts` row per send (one row write when both reach it in the
same batch, an insert and an update otherwise), numbering the rows of a
delivery in the order they were announced.
A crash between the two leaves the row open ("sending: no answer yet" in
`cbStatus`); the delivery comes back (its offset or its retry claim was not
released), is sent again with the same `webhook-id`, and that new send is
recorded as the next attempt while the open one is closed as `interrupted`
(status 600). So every request a receiver saw is listed, at the price of
one more small Kafka record per request and no PostgreSQL round trip on the
hot path; a crash between the announcement and the request itself lists one
request the receiver never got. This was chosen over reconciling on
restart, which cannot know about a request whose answer was never recorded.

A failed attempt is retried on the callback's schedule (the Sigfox preset
+1, +2, +4 min by default, with jitter; a longer Retry-After wins), and the
schedule is also a deadline (`workers.retry.give_up_at`: 7 min 40 s after
the delivery was routed with the preset): no try starts after it. A delivery
whose tries are used up, or that fails or is held by an open circuit past
that deadline, is given up then: its last result is marked dead and carries
the delivery, for the undelivered list and replay.

Held deliveries say why. A delivery the endpoint cannot take now is parked
in the retry store with a reason and a sentence (`workers.waiting`) that
`cbStatus` shows while it waits: circuit open (with since when the endpoint
fails and when it will be given up), rate limited (the endpoint's queue is
full: paced, never given up for that), behind the backlog. One given up
while held is recorded as a send that did not happen (`not_sent`, status
600, "not sent, retry schedule over: circuit open ..."). An endpoint's
first failure of a streak and its circuit opening are logged at once
(WARNING, with the endpoint's scheme://host:port only).

Recovery keeps the order of messages. When the circuit of an endpoint this
worker held deliveries for lets a probe through, the probe is the oldest
delivery waiting for it (`_probe`); when the probe succeeds and the circuit
closes, the worker sends the endpoint's backlog (`_drain_backlog`): every
delivery waiting for it, held or waiting for a retry (a retry goes early:
the endpoint is back), oldest message first, one request at a time per
device, within the endpoint's rate limit and concurrency; deliveries that
arrive meanwhile are parked behind it. A round never sends a device's
message past an older one of that device claimed elsewhere at that moment
(parked back by the due-time loop, or a request still out on an endpoint
that hung): it waits for a later round (`workers.backlog`). With several
delivery workers each has its own breakers: order per device holds for the
backlog one worker drains, and deliveries held before a restart come back
by due time.

`dead` and the alert: a callback is marked dead (by the store) when one of
its deliveries is given up and no delivery of that callback has succeeded
since that delivery's schedule started: every delivery has been failing for
at least the length of a schedule. One success clears it. The device type's
alertEmail is told when a given-up delivery makes its callback dead by that
rule (as far as this worker and the store know), at most once per
`alert_every_s` per device type and callback.

Channels. How a delivery goes out is its channel's business
(`workers/channels/`, one module each behind `Channel`, found in `CHANNELS`
by the delivery's `channel`): URL and BATCH_URL call HTTP endpoints, opening
the callback's sealed secrets at send time (deliveries carry none), with
`webhook-id` on every request and signatures (`workers/channels/http.py`);
BATCH_URL deliveries are gathered per callback (`workers.batches`) for
`batch_window_s` from the first, or until `batch_max_lines` of them, and go as the one request the channel makes of them, members that fail
together retried together (one jittered delay per batch); EMAIL goes to the
SMTP relay; DIRECT calls nothing and publishes the rendered downlink through
`DownlinkGate` (contract and daily quota); the first answer of a BIDIR
downlink callback gives a downlink or an ACKNOWLEDGE
(`workers/channels/bidir.py`). The loop does the rest, the same for all.

A destination the rule of `backhaul.destinations` refuses (every HTTP
request goes through `backhaul.outbound.callback_session`) fails the attempt
with error class `destination` before any connection is opened. It is
recorded and retried like any failure (the name may be pointed back, the
operator may allow the network) and ends in the undelivered list, but it does
not count against the endpoint's circuit breaker: the endpoint did not fail,
our rule stopped the request.

A `deliveries` record that is not a valid delivery (`schemas.deliveries`), and
a delivery or batch whose handling keeps failing (`dead_letter_attempts`
times) for any reason but Kafka or PostgreSQL being unreachable, is moved to
`dead-letters` and its offset (or its retry row) released; while the
infrastructure is away the delivery is simply tried again later. Once a
request has been answered, its outcome is recorded (result published, retry
parked, downlink granted) by waiting out Kafka or PostgreSQL for as long as it
takes, never by sending the request again; every such wait is counted in
`backhaul_infrastructure_errors_total{stage="delivery"}`, and after a Kafka
failure the worker sends on a new producer.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from backhaul import metrics
from backhaul.configview import ConfigView
from backhaul.dead_letters import announce, dead_letter
from backhaul.failures import dependency_of, is_infrastructure
from backhaul.kafka import GroupConsumer, Out, make_producer, send_all
from backhaul.outbound import callback_session
from backhaul.outbox import Outbox
from backhaul.settings import settings
from backhaul.tasks import TaskSet
from backhaul.topics import topic
from callback_language import downlink as dl
from callback_language.compiled import CompiledCallbacks
from callback_language.status import NON_HTTP_STATUS
from schemas import delivery_results as results
from schemas.deliveries import (
    Delivery,
    InvalidDelivery,
    Request,
    decode_delivery,
    delivery_key,
    encode_delivery,
    schedule_start_ms,
)
from schemas.delivery_results import encode_delivery_result
from schemas.device_events import encode_device_event
from schemas.downlinks import encode_downlink, granted, uplink_time_ms
from schemas.topics import DELIVERIES, DELIVERY_RESULTS, DEVICE_EVENTS, DOWNLINKS
from workers import waiting
from workers.attempt import Outcome
from workers.backlog import behind_older_claims
from workers.batches import Batches
from workers.bulkhead import CLOSED, HALF_OPEN, OPEN, Endpoint, EndpointRegistry
from workers.channels import CHANNELS, Answered, Context
from workers.credentials import CallbackCredentials
from workers.downlink_gate import DownlinkGate
from workers.mail import AlertLimiter, EmailDeliveryError, send_email
from workers.offsets import OffsetTracker
from workers.pace import Pace
from workers.retry import NOT_SENT, RetryPolicy, give_up_at, next_try_at
from workers.retry_store import RetryStore
from workers.taken import TakenDeliveries

log = logging.getLogger(__name__)

# Failures that say the endpoint is unwell (a 4xx says the request was wrong). A refused
# destination ("destination") is our rule, not the endpoint failing: it does not open the circuit.
BREAKER_FAILURES = frozenset({"timeout", "connect", "tls", "dns", "http_5xx", "http_429"})
GROUP = "backhaul-delivery"
# An endpoint whose requests take this long (moving average) is slow: under load its share shrinks.
SLOW_S = 1.0
QUICK_DRAIN_S = 5.0  # past its share, an endpoint whose queue drains within this keeps it in memory
# Waiting for Kafka or PostgreSQL: the first pause, doubling up to the last.
WAIT_FIRST_S = 0.5
WAIT_MAX_S = 30.0
# How long a producer being replaced may take to stop, and the longest pause between commits.
PRODUCER_STOP_S = 5.0
COMMIT_PAUSE_MAX_S = 5.0
# How long a drain waits at most, before its first round, for the deliveries the due-time loop took to come back.
CLAIMS_SETTLE_S = 2.0
# Deliveries an endpoint's backlog is claimed by at a time, when it recovers.
DRAIN_BATCH = 500
# A drain round that could send nothing (every delivery behind an older one claimed elsewhere) waits this long.
DRAIN_WAIT_S = 0.1
# Endpoints whose failing streak is remembered (for "endpoint failing since" in cbStatus).
MAX_FAILING = 10_000
Origin = tuple[TopicPartition, int] | None
Member = tuple[Delivery, int, Origin]


class Send:
    """One request: its id, and when it was announced (ms)."""

    __slots__ = ("id", "at_ms")

    def __init__(self) -> None:
        self.id = results.new_send_id()
        self.at_ms = 0


class DeliveryWorker:  # pragma: no mutate block (the Kafka loop: README "Testing", mutation)
    """Consumes `deliveries`, sends them, records every attempt."""

    def __init__(self, view: ConfigView, store: RetryStore, *, max_in_flight: int | None = None) -> None:
        s = settings()
        self.settings = s
        self.view = view
        self.store = store
        self.timing = dl.downlink_timing(s)
        self.gate = DownlinkGate(store.pool, view, self.timing, s.daily_downlink_quota)
        self.compiled = CompiledCallbacks(view)
        self.credentials = CallbackCredentials()
        self.registry = EndpointRegistry(s.endpoint_concurrency, s.endpoint_rate_per_s, s.endpoint_burst,
                                         s.breaker_failures, s.breaker_open_s)
        self.tracker = OffsetTracker()
        self._taken = TakenDeliveries()
        self.max_in_flight = max_in_flight = max_in_flight or s.delivery_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._held = 0
        self._queued: dict[str, int] = {}
        self._pace: dict[str, Pace] = {}  # endpoint -> its measured pace (workers.pace)
        self._active: set[str] = set()
        self._batches: Batches[Member] = Batches(s.batch_window_s, s.batch_max_lines)
        self._holding: set[str] = set()     # endpoints an open circuit made this worker park deliveries for
        self._probing: set[str] = set()     # endpoints whose oldest held delivery is being sent as the probe
        self._draining: set[str] = set()    # endpoints whose backlog is being sent in order
        self._parking: dict[str, int] = {}  # endpoint -> deliveries being parked for it right now
        self._failing_since: dict[str, float] = {}  # endpoint -> first failure of its current streak
        self._last_success: dict[str, float] = {}   # callback -> last success seen here (epoch s)
        self._tasks = TaskSet()
        self._alerts = AlertLimiter(per_hours=s.alert_every_s / 3600)
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self.outbox = Outbox(lambda: self.producer)  # the attempts' records, gathered per turn of the loop
        self.consumer: AIOKafkaConsumer | None = None
        self.context: Context | None = None  # what the channels are lent, once the session is open
        self._t_results = topic(DELIVERY_RESULTS)
        # The worker's stable identity in its consumer group (program.instances); None = a dynamic member.
        self.instance_id: str | None = None

    def stop(self) -> None:
        self._stop.set()

    # Loop ----------------------------------------------------------------
    async def run(self) -> None:
        self.session = callback_session()
        self.context = Context(self.settings, self.view, self.session, self.credentials, self.compiled,
                               self._grant, self._ack)
        self.producer = make_producer()
        await self.producer.start()
        member = GroupConsumer(topic(GROUP), [topic(DELIVERIES)], instance_id=self.instance_id,
                               revoked=self.on_revoked, max_poll_records=2000)
        self.consumer = await member.start()
        helpers = [asyncio.create_task(self._poll_retries()), asyncio.create_task(self._flush_batches()),
                   asyncio.create_task(self._commit_loop())]
        log.info("delivery worker started")
        try:
            while not self._stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=100, max_records=1000)
                if not self.ready.is_set() and self.consumer.assignment():
                    self.ready.set()
                for tp, records in batch.items():
                    for rec in records:
                        await self._slots.acquire()
                        self._held += 1
                        self.tracker.add(tp, rec.offset)
                        delivery, problem = read_delivery(rec.value)
                        if problem is not None:
                            self._spawn(self._set_aside(rec.key, rec.value, problem, 1, (tp, rec.offset)))
                            continue
                        assert delivery is not None  # read_delivery gives the delivery or the problem
                        first = self._taken.take(delivery["id"])
                        if first is not None:  # read again: released once its first copy is settled
                            self._spawn(self._release_copy(first, (tp, rec.offset)))
                            continue
                        self._spawn(self._deliver(delivery, 0, (tp, rec.offset)))
        finally:
            for t in helpers:
                t.cancel()
            await self._drain(10.0)
            await self._commit()
            await member.stop()
            await self.producer.stop()
            await self.session.close()
            for channel in CHANNELS.values():
                await channel.close()
            log.info("delivery worker stopped")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.start(coro)

    async def _release_copy(self, first: asyncio.Event, origin: Origin) -> None:
        await first.wait()
        metrics.DELIVERY_COPIES.inc()
        self._release(None, origin)

    def _release(self, delivery: Delivery | None, origin: Origin) -> None:
        """The delivery is settled (or given up for a later replay): free what it held."""
        if origin is not None:
            if delivery is not None:
                self._taken.settled(delivery["id"])
            self.tracker.done(*origin)
            self._held -= 1
            self._slots.release()
        elif delivery is not None:
            self._active.discard(delivery["id"])

    async def _drain(self, timeout: float) -> None:
        await self._tasks.wait(timeout)

    async def _commit(self) -> None:
        offsets = self.tracker.committable()
        if not offsets:
            return
        assert self.consumer is not None  # offsets are of records it read: set in run()
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
        if offsets:
            await self.consumer.commit(offsets)
            self.tracker.mark_committed(offsets)

    async def _commit_loop(self) -> None:
        pause = 0.2
        while True:
            await asyncio.sleep(pause)
            metrics.DELIVERIES_IN_FLIGHT.set(self.tracker.in_flight())
            for state, count in self.registry.states().items():
                metrics.CIRCUITS.labels(state).set(count)
            try:
                await self._commit()
                pause = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("commit offsets", exc, pause)
                pause = min(COMMIT_PAUSE_MAX_S, pause * 2)

    async def _poll_retries(self) -> None:
        pause = WAIT_FIRST_S
        while True:
            try:
                due = [(d, a) for d, a in await self.store.claim_due(skip_endpoints=list(self._draining))
                       if d["id"] not in self._active]
                for delivery, attempts in due:
                    self._active.add(delivery["id"])
                    self._spawn(self._deliver(delivery, attempts, None))
                if not due:
                    await asyncio.sleep(0.25)
                metrics.RETRIES_WAITING.set(await self.store.waiting())
                pause = WAIT_FIRST_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("read due retries", exc, pause)
                await asyncio.sleep(pause)
                pause = min(WAIT_MAX_S, pause * 2)

    def _failed(self, what: str, exc: BaseException, retry_in_s: float) -> None:
        """Count and log a step that failed and will be tried again (Kafka or PostgreSQL away:
        one line without traceback; anything else: with it)."""
        if is_infrastructure(exc):
            metrics.INFRA_ERRORS.labels("delivery", dependency_of(exc)).inc()
            log.warning("Kafka or PostgreSQL unavailable: trying again", extra={
                "stage": "delivery", "step": what, "dependency": dependency_of(exc),
                "errorType": type(exc).__name__, "error": str(exc)[:300], "retryInS": retry_in_s})
        else:
            log.warning(f"could not {what}: trying again", exc_info=exc, extra={"retryInS": retry_in_s})

    async def _until_reachable(self, what: str, step: Callable[[], Awaitable[Any]]) -> None:
        """Run `step`, waiting for as long as Kafka or PostgreSQL is unreachable (on a new producer
        after a Kafka failure); any other failure is raised."""
        pause = WAIT_FIRST_S
        while True:
            producer = self.producer
            try:
                await step()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_infrastructure(exc):
                    raise
                self._failed(what, exc, pause)
                await asyncio.sleep(pause)
                pause = min(WAIT_MAX_S, pause * 2)
                if dependency_of(exc) == "kafka":
                    with contextlib.suppress(Exception):  # still away: the next try fails and waits again
                        await self._replace_producer(producer)

    async def _replace_producer(self, failed: AIOKafkaProducer) -> None:
        """Send on a new producer from now on, unless another task has replaced `failed` already.
        A producer that failed may be out of sequence for good, and aiokafka's asks for metadata
        without a pause while the broker is away. Raises (to wait again) if Kafka is still away."""
        async with self._producer_lock:
            if self.producer is not failed:
                return
            producer = make_producer()
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.stop(), PRODUCER_STOP_S)
                raise
            self.producer = producer
        assert failed is not None  # it was self.producer, set in run() before anything is sent
        with contextlib.suppress(Exception):
            await asyncio.wait_for(failed.stop(), PRODUCER_STOP_S)

    # One delivery --------------------------------------------------------
    async def _deliver(self, delivery: Delivery, attempts: int, origin: Origin, failures: int = 0, *,
                       drained: bool = False) -> None:
        """Send one delivery (attempt `attempts + 1`), or park it; always settles it.

        `drained`: it comes from its endpoint's backlog, in order (see _drain_backlog)."""
        holder: Delivery | None = delivery
        try:
            context = self.context
            assert context is not None  # set in run(), before any delivery is read
            channel = CHANNELS[delivery["channel"]]
            if channel.batched:
                self._add_to_batch(delivery, attempts, origin)
                holder, origin = None, None  # the batch settles it
                return
            if not channel.calls:
                records = await channel.publish(delivery, context)
                await self._until_reachable("publish a downlink", lambda: send_all(self.producer, records))
                return
            callback_id = delivery["callbackId"]
            assert callback_id is not None  # only DIRECT has none (schemas.deliveries), and it calls nothing
            cb = self.view.callbacks.get(callback_id) or {}
            # The URL channel's key is None only for a request URL of "" (never rendered so: a hand-made record)
            endpoint = self.registry.get(channel.endpoint(delivery, None, context),  # type: ignore[arg-type]
                                         concurrency=cb.get("concurrency"), rate=cb.get("rate_per_s"))
            sent = Send()
            outcome = await self._call(endpoint, lambda: channel.send(delivery, attempts, cb, context),
                                       lambda: self._announce([(delivery, attempts, sent)]), drained=drained)
            if isinstance(outcome, str):
                await self._hold(delivery, attempts, endpoint, outcome, from_store=origin is None)
                return
            await self._settle(delivery, attempts + 1, outcome, sent, from_store=origin is None, early=drained)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not settled. PostgreSQL or Kafka unreachable (while parking, publishing): keep holding
            # the offset (or the store claim) and try the whole delivery again later, for as long as
            # it takes. Anything else is about this delivery: after `dead_letter_attempts` it is
            # set aside in dead-letters and its offset released.
            failures += 1
            if is_infrastructure(exc) or failures < self.settings.dead_letter_attempts:
                log.warning("delivery failed unexpectedly: trying again", exc_info=True,
                            extra={"delivery": delivery.get("id"), "failures": failures})
                self._spawn(self._deliver_later(delivery, attempts, origin, failures))
            else:
                self._spawn(self._set_aside(delivery_key(delivery), encode_delivery(delivery), exc, failures,
                                            origin, delivery=delivery))
            holder, origin = None, None
        finally:
            self._release(holder, origin)

    async def _deliver_later(self, delivery: Delivery, attempts: int, origin: Origin, failures: int) -> None:
        await asyncio.sleep(min(30.0, 0.5 * 2 ** failures))
        await self._deliver(delivery, attempts, origin, failures)

    async def _hold(self, delivery: Delivery, attempts: int, endpoint: Endpoint, reason: str, *, from_store: bool,
                    request: Request | None = None) -> None:
        """Park a delivery its endpoint cannot take now, saying why; or give it up, when an open
        circuit holds it past the end of its retry schedule."""
        now = time.time()
        key = endpoint.key
        if reason == waiting.CIRCUIT_OPEN:
            callback_id = delivery["callbackId"]
            assert callback_id is not None  # only DIRECT has none, and it is never held
            deadline = give_up_at(self._policy(callback_id), delivery)
            failing_since = self._failing_since.get(key)
            if now >= deadline:
                wait = waiting.circuit_open(failing_since, now, deadline)
                outcome = Outcome(NON_HTTP_STATUS, NOT_SENT, waiting.not_sent(wait.info), 0.0)
                await self._settle(delivery, attempts, outcome, None, from_store=from_store, request=request,
                                   give_up=True)
                return
            due = min(now + self._circuit_pause(endpoint), deadline)
            wait = waiting.circuit_open(failing_since, due, deadline)
            self._holding.add(key)
        elif reason == waiting.BACKLOG:
            due, wait = now, waiting.backlog()
        else:
            due = now + self._park_delay(endpoint)
            wait = waiting.at_limit(endpoint.concurrency, endpoint.bucket.rate, self._queued.get(key, 0))
        self._parking[key] = self._parking.get(key, 0) + 1
        try:
            await self._until_reachable("park a delivery", lambda: self.store.schedule(
                delivery, attempts, due, endpoint=key, wait=wait))
            metrics.DELIVERIES_PARKED.labels(wait.reason).inc()
        finally:
            left = self._parking.get(key, 1) - 1
            if left > 0:
                self._parking[key] = left
            else:
                self._parking.pop(key, None)

    async def _announce(self, sends: list[tuple[Delivery, int, Send]]) -> None:
        """Put the requests about to go on the record (`state: sending`), and wait for the broker:
        a request is never sent before its announcement is durable."""
        now_ms = int(time.time() * 1000)
        records = []
        for delivery, attempts, sent in sends:
            sent.at_ms = now_ms
            records.append(Out(self._t_results, delivery["device"].encode(),
                               encode_delivery_result(results.sending(delivery, sent.id, attempts + 1, now_ms))))
        await self._until_reachable("announce a send", lambda: self.outbox.send(records))

    # Backlogs ------------------------------------------------------------
    async def _parked(self, key: str, limit_s: float = 5.0) -> None:
        """Wait (a little) until no delivery is being parked for the endpoint: they belong to its backlog."""
        deadline = time.monotonic() + limit_s
        while self._parking.get(key) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def _probe(self, key: str) -> None:
        """The circuit lets one request through: make it the oldest delivery held for the endpoint, so
        that the probe does not overtake older messages of its device. No backlog: any delivery probes."""
        if key in self._probing:
            return
        self._probing.add(key)
        try:
            await self._parked(key)
            claimed = [(d, a) for d, a in await self.store.claim_backlog(key, 1) if d["id"] not in self._active]
            if not claimed:
                self._holding.discard(key)
                return
            delivery, attempts = claimed[0]
            self._active.add(delivery["id"])
            await self._deliver(delivery, attempts, None, drained=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("probing an endpoint failed: its deliveries come back when due", exc_info=True,
                        extra={"endpoint": key})
        finally:
            self._probing.discard(key)

    async def _drain_backlog(self, key: str) -> None:
        """The endpoint recovered: send every delivery waiting for it (held or waiting for a retry),
        oldest message first, one request at a time per device, within its limits. New deliveries
        for it are parked behind the backlog meanwhile, so none overtakes an older one."""
        if key in self._draining:
            return
        self._draining.add(key)
        drained = 0
        try:
            while True:
                endpoint = self.registry.peek(key)
                if endpoint is None or endpoint.breaker.state != CLOSED:
                    break  # failing again: what is left waits for the next recovery
                await self._parked(key)
                if not drained:
                    await self._claims_settled(key)
                claimed = [(d, a) for d, a in await self.store.claim_backlog(key, DRAIN_BATCH)
                           if d["id"] not in self._active]
                if not claimed:
                    if self._parking.get(key):
                        continue
                    self._holding.discard(key)
                    break
                elsewhere = await self.store.oldest_claimed_elsewhere(key, [d["id"] for d, _ in claimed])
                claimed, later = behind_older_claims(claimed, elsewhere)
                if later:  # back to the backlog, for a round after the older ones are back or sent
                    await self.store.release([d["id"] for d, _ in later])
                    if not claimed:
                        await asyncio.sleep(DRAIN_WAIT_S)
                        continue
                lanes: dict[str, list[tuple[Delivery, int]]] = {}
                for delivery, attempts in claimed:
                    self._active.add(delivery["id"])
                    lanes.setdefault(delivery["device"], []).append((delivery, attempts))
                await asyncio.gather(*(self._send_in_order(lane) for lane in lanes.values()))
                drained += len(claimed)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("draining an endpoint's backlog failed: the rest comes back when due", exc_info=True,
                        extra={"endpoint": key})
        finally:
            self._draining.discard(key)
        log.info("endpoint backlog sent", extra={"endpoint": key, "deliveries": drained})

    async def _claims_settled(self, key: str) -> None:
        """Wait while the endpoint's deliveries claimed elsewhere are coming back to its backlog: when
        the circuit half-opens, the due-time loop takes every held delivery that fell due, and parks
        each behind the drain again; a drain round that claimed past them would send a device's later
        messages first. Before the first round only, and only while their number falls (a request
        still out, on a hanging endpoint, is not waited for), `CLAIMS_SETTLE_S` at most."""
        deadline = time.monotonic() + CLAIMS_SETTLE_S
        last, still = await self.store.claimed(key), 0
        while last and still < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            now = await self.store.claimed(key)
            still = still + 1 if now >= last else 0
            last = now

    async def _send_in_order(self, lane: list[tuple[Delivery, int]]) -> None:
        for delivery, attempts in lane:
            await self._deliver(delivery, attempts, None, drained=True)

    async def _set_aside(self, key: bytes | None, value: bytes | None, error: Exception, attempts: int,
                         origin: Origin, *, delivery: Delivery | None = None) -> None:
        """Move a delivery this worker cannot handle to dead-letters, then release it: its offset
        (or its retry row, for one claimed from the store) is done with."""
        tp, offset = origin if origin is not None else (None, -1)
        letter = dead_letter("delivery", tp.topic if tp else topic(DELIVERIES), tp.partition if tp else -1,
                             offset, key, value, error, attempts)
        await self._until_done("publish a dead letter", lambda: send_all(self.producer, [letter.out]))
        announce(letter)
        if origin is None and delivery is not None:
            await self._until_done("forget a dead-lettered retry", lambda: self.store.finish(delivery["id"]))
        self._release(delivery, origin)

    async def _until_done(self, what: str, step: Callable[[], Awaitable[Any]]) -> None:
        """Run `step` until it succeeds, pausing longer after each failure (Kafka or PostgreSQL away)."""
        pause = WAIT_FIRST_S
        while True:
            producer = self.producer
            try:
                await step()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(what, exc, pause)
                await asyncio.sleep(pause)
                pause = min(WAIT_MAX_S, pause * 2)
                if is_infrastructure(exc) and dependency_of(exc) == "kafka":
                    with contextlib.suppress(Exception):
                        await self._replace_producer(producer)

    def _at_limit(self, endpoint: Endpoint) -> bool:
        """Whether a new delivery for the endpoint must be parked. Once half the worker is taken, a slow
        endpoint (requests averaging `SLOW_S` or more) gets only its concurrency, so that slow endpoints
        together never fill the worker. Otherwise, past its share (`endpoint_queue`), when its queue
        would take `QUICK_DRAIN_S` or more to drain at its measured pace (`workers.pace`; no answer yet:
        it would). An endpoint that drains quickly keeps its deliveries in memory (the in-flight cap
        bounds them): parking costs more than sending, and an overloaded worker that parked for a fast
        endpoint fell further behind."""
        key = endpoint.key
        queued = self._queued.get(key, 0)
        pace = self._pace.get(key)
        if self._held >= self.max_in_flight // 2 and pace is not None and pace.latency_s >= SLOW_S:
            return queued >= endpoint.concurrency
        if queued < max(self.settings.endpoint_queue, endpoint.concurrency):
            return False
        if pace is None:
            return True
        rate = endpoint.bucket.rate
        drain_s = max(pace.drain_s(queued, endpoint.concurrency, time.monotonic()),
                      queued / rate if rate > 0 else float("inf"))
        return drain_s >= QUICK_DRAIN_S

    def _park_delay(self, endpoint: Endpoint) -> float:
        """How long a delivery the endpoint's queue cannot take waits: about the time the queue ahead
        of it takes to drain (1 to 30 s)."""
        key = endpoint.key
        pace = self._pace.get(key)
        drain = self._queued.get(key, 0) / endpoint.concurrency * (pace.latency_s if pace else 0.0)
        return min(30.0, max(1.0, drain))

    @staticmethod
    def _circuit_pause(endpoint: Endpoint) -> float:
        """How long a delivery held by the circuit waits: until it lets a probe through, or, while a
        probe is out, for a whole pause (the probe's success sends the backlog at once)."""
        if endpoint.breaker.state == OPEN:
            return max(0.05, endpoint.retry_in())
        return endpoint.breaker.open_seconds

    async def _call(self, endpoint: Endpoint, send: Callable[[], Awaitable[Outcome]],
                    before_send: Callable[[], Awaitable[None]], *, drained: bool = False,
                    keeps_order: bool = True) -> Outcome | str:
        """Send through the endpoint's bulkhead, announcing the request just before it goes; or the
        reason it must wait (`waiting.CIRCUIT_OPEN`, `AT_LIMIT`, `BACKLOG`).

        `drained`: the delivery comes from the endpoint's backlog, in order (the probe, or the drain
        after recovery): it is not parked behind that backlog nor for the queue limit (the backlog
        brings its own bound), but it keeps to the rate limit and concurrency. `keeps_order=False`
        (a BATCH_URL request, whose lines are in order anyway) skips the order rules."""
        key = endpoint.key
        ordered = keeps_order and not drained
        if ordered and key in self._draining:
            return waiting.BACKLOG
        if endpoint.retry_in() > 0:
            return waiting.CIRCUIT_OPEN
        if ordered and key in self._holding and endpoint.breaker.state == HALF_OPEN:
            self._spawn(self._probe(key))
            return waiting.CIRCUIT_OPEN
        if not drained and self._at_limit(endpoint):
            return waiting.AT_LIMIT
        queued = self._queued.get(key, 0)
        pace = self._pace.get(key)
        if pace is None:
            pace = self._pace[key] = Pace()
        if not queued:
            pace.busy(time.monotonic())
        self._queued[key] = queued + 1
        try:
            async with endpoint.semaphore:
                if not endpoint.breaker.allow():
                    return waiting.CIRCUIT_OPEN
                await endpoint.bucket.acquire()
                await before_send()
                outcome = await send()
        finally:
            self._queued[key] -= 1
        pace.answered(time.monotonic(), outcome.latency_ms / 1000)
        self._note(endpoint, outcome)
        return outcome

    def _note(self, endpoint: Endpoint, outcome: Outcome) -> None:
        """Tell the breaker; log an endpoint's first failure, its circuit opening, its recovery (which
        sends its backlog)."""
        key, breaker = endpoint.key, endpoint.breaker
        before = breaker.state
        if outcome.ok:
            breaker.record_success()
            self._failing_since.pop(key, None)
            if before != CLOSED and breaker.state == CLOSED:
                log.info("callback endpoint recovered: sending its backlog", extra={"endpoint": key})
                self._spawn(self._drain_backlog(key))
            return
        if outcome.error_class not in BREAKER_FAILURES:
            return
        breaker.record_failure()
        if key not in self._failing_since:
            if len(self._failing_since) >= MAX_FAILING:
                self._failing_since.pop(next(iter(self._failing_since)))
            self._failing_since[key] = time.time()
            log.warning("callback endpoint failed", extra={"endpoint": key, "status": outcome.status,
                                                           "errorClass": outcome.error_class})
        if before != OPEN and breaker.state == OPEN:
            log.warning("callback endpoint failing: circuit open, its deliveries are held",
                        extra={"endpoint": key, "pauseS": breaker.open_seconds,
                               "failingSince": waiting.iso(self._failing_since[key])})

    # Batches -------------------------------------------------------------
    def _add_to_batch(self, delivery: Delivery, attempts: int, origin: Origin) -> None:
        key = delivery["callbackId"]
        assert key is not None  # only DIRECT has none, and it is not batched
        full = self._batches.add(key, (delivery, attempts, origin))
        if full is not None:
            self._spawn(self._send_batch(key, full))

    async def _flush_batches(self) -> None:
        """Send every batch whose window has passed (`workers.batches`)."""
        while True:
            await asyncio.sleep(min(0.05, self._batches.window_s / 4))
            for key, members in self._batches.due():
                self._spawn(self._send_batch(key, members))

    async def _send_batch(self, callback_id: str, members: list[Member], failures: int = 0) -> None:
        """Send the members gathered for a callback of a batched channel as the one request the channel
        makes of them; members that fail together are retried together (one rng per batch)."""
        try:
            assert self.context is not None  # set in run(), before any delivery is read
            channel = CHANNELS[members[0][0]["channel"]]
            sends = [(d, attempts, Send()) for d, attempts, _ in members]
            batch = channel.batch(callback_id, [(d, attempts) for d, attempts, _ in members], self.context)
            outcome = batch.failure
            if outcome is None:
                assert batch.endpoint is not None and batch.send is not None  # set unless there is a failure
                cb = self.view.callbacks.get(callback_id) or {}
                endpoint = self.registry.get(batch.endpoint, concurrency=cb.get("concurrency"),
                                             rate=cb.get("rate_per_s"))
                called = await self._call(endpoint, batch.send, lambda: self._announce(sends), keeps_order=False)
                if isinstance(called, str):
                    for d, attempts, origin in members:
                        await self._hold(d, attempts, endpoint, called, from_store=origin is None,
                                         request=batch.request)
                    return
                outcome = called
            await asyncio.gather(*(self._settle(d, attempts + 1, outcome, sent, from_store=origin is None,
                                                rng=random.Random(f"{batch.id}:{attempts}"), request=batch.request)
                                   for (d, attempts, origin), (_, _, sent) in zip(members, sends, strict=False)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # As for one delivery: wait for the infrastructure, set aside what keeps failing.
            failures += 1
            if is_infrastructure(exc) or failures < self.settings.dead_letter_attempts:
                log.warning("batch failed unexpectedly: trying again", exc_info=True,
                            extra={"callback": callback_id, "failures": failures})
                self._spawn(self._send_batch_later(callback_id, members, failures))
            else:
                for d, _, origin in members:
                    self._spawn(self._set_aside(delivery_key(d), encode_delivery(d), exc, failures, origin,
                                                delivery=d))
            members = []  # held until then
        finally:
            for d, _, origin in members:
                self._release(d, origin)

    async def _send_batch_later(self, callback_id: str, members: list[Member], failures: int) -> None:
        await asyncio.sleep(min(30.0, 0.5 * 2 ** failures))
        await self._send_batch(callback_id, members, failures)

    # Outcomes ------------------------------------------------------------
    def _policy(self, callback_id: str) -> RetryPolicy:
        cb = self.view.callbacks.get(callback_id) or {}
        schedule = cb.get("retry_schedule") or self.settings.retry_schedule_s
        return RetryPolicy(tuple(schedule), self.settings.retry_jitter, self.settings.callback_timeout_s)

    async def _settle(self, delivery: Delivery, attempts: int, outcome: Outcome, sent: Send | None, *,
                      from_store: bool, rng: random.Random | None = None, request: Request | None = None,
                      give_up: bool = False, early: bool = False) -> None:
        """Publish the attempt (and any downlink outcome), then finish, retry or give up.

        `sent` is the request announced for this attempt; None when none was sent (`give_up`: held by
        an open circuit past the end of its schedule). `request` is the batch request a BATCH_URL
        member went in, kept with a dead one. `early`: the try came from the endpoint's backlog (a probe
        or the drain), before its scheduled time.
        """
        channel = delivery["channel"]
        callback_id = delivery["callbackId"]
        assert callback_id is not None  # only DIRECT has none, and it calls nothing: no attempt to settle
        now = time.time()
        now_ms = int(now * 1000)
        metrics.DELIVERIES.labels(channel, outcome.error_class).inc()
        if sent is not None:
            metrics.DELIVERY_LATENCY.labels(channel).observe(outcome.latency_ms / 1000)
        due, wait = None, None
        dead = False
        if outcome.ok:
            self._last_success[callback_id] = now
            metrics.E2E_LATENCY.labels(delivery["kind"]).observe(max(0.0, now_ms - delivery["origin"]) / 1000)
        else:
            policy = self._policy(callback_id)
            if not give_up:
                deadline = give_up_at(policy, delivery)
                due = next_try_at(policy, attempts, outcome.retry_after, now, deadline, rng)
                if due is None and early and now < deadline and outcome.error_class in BREAKER_FAILURES:
                    # A probe or backlog try goes before its schedule's time: its failure does not end the
                    # schedule early. It waits for the next probe; it is given up at the deadline.
                    due = min(now + self.registry.open_seconds, deadline)
                    wait = waiting.circuit_open(self._failing_since.get(self._endpoint_of(delivery, request) or ""),
                                                due, deadline)
            if due is None:
                dead = True
                metrics.DELIVERY_DEAD.labels(channel).inc()
            else:
                metrics.DELIVERY_RETRIES.labels(channel).inc()
        result = results.done(
            delivery, send_id=sent.id if sent else results.not_sent_id(delivery["id"]), attempt=attempts,
            sent_at_ms=(sent and sent.at_ms) or now_ms, now_ms=now_ms, status=outcome.status,
            error_class=outcome.error_class, info=outcome.info, latency_ms=round(outcome.latency_ms, 3),
            answer=outcome.answer, next_attempt_at_ms=int(due * 1000) if due is not None else None,
            dead_delivery=(({**delivery, "request": request} if request else delivery) if dead else None))

        async def record() -> None:  # idempotent: tried again as a whole while Kafka or PostgreSQL is away
            recorded, extra = result, []
            if sent is not None:
                assert self.context is not None  # set in run(), before any delivery is read
                answered = await CHANNELS[channel].answered(delivery, attempts, outcome, now_ms, self.context)
                extra = answered.records
                if answered.info is not None:  # what the answer gave for the downlink, in cbStatus
                    recorded = {**result, "info": answered.info}
            records = [Out(self._t_results, delivery["device"].encode(), encode_delivery_result(recorded)), *extra]
            await self.outbox.send(records)
            if due is not None:
                await self.store.schedule(delivery, attempts, due, endpoint=self._endpoint_of(delivery, request),
                                          wait=wait or waiting.retry(attempts + 1, policy.max_attempts, due))
            elif from_store:
                await self.store.finish(delivery["id"])

        await self._until_reachable("record an attempt", record)
        if dead:
            self._spawn(self._alert(delivery, outcome))

    def _endpoint_of(self, delivery: Delivery, request: Request | None) -> str | None:
        """The bulkhead key of the endpoint a delivery goes to (None: DIRECT, or a batch not rendered)."""
        assert self.context is not None  # set in run(), before any delivery is read
        return CHANNELS[delivery["channel"]].endpoint(delivery, request, self.context)

    # Downlinks -----------------------------------------------------------
    def _ack(self, delivery: Delivery, code: dl.InfoCode, reason: str | None = None) -> Out:
        metrics.DOWNLINKS.labels(str(int(code))).inc()
        event = dl.ack_event(delivery["device"], delivery["recordId"], code, reason=reason,
                             device_type_id=delivery.get("deviceTypeId"), group_id=delivery.get("groupId"),
                             now_ms=int(time.time() * 1000), registration_id=delivery.get("registrationId"),
                             uplink_ms=uplink_time_ms(delivery))
        return Out(topic(DEVICE_EVENTS), delivery["device"].encode(), encode_device_event(event))

    async def _grant(self, delivery: Delivery, data_hex: str | None) -> Answered:
        """The grant of the downlink (for the dispatcher), or the ACKNOWLEDGE saying why not; with the
        words for the attempt in cbStatus. Its windows are counted from the uplink's own time."""
        uplink_ms = uplink_time_ms(delivery)
        refusal = await self.gate.admit(delivery["recordId"], delivery["device"], uplink_ms)
        if refusal is not None:
            message = dl.info_message(refusal)
            return Answered([self._ack(delivery, refusal)], f"downlink refused ({refusal.name}): {message}")
        record = granted(delivery, data_hex, created_ms=int(time.time() * 1000),
                         transmit_by_ms=self.timing.transmit_by(uplink_ms))
        return Answered([Out(topic(DOWNLINKS), delivery["device"].encode(), encode_downlink(record))],
                        "downlink granted")

    async def _alert(self, delivery: Delivery, outcome: Outcome) -> None:
        """Tell the device type's alertEmail that the callback is dead: this delivery was given up and
        no delivery of the callback has succeeded since it started (the store's rule for `dead`, from
        what this worker saw and what the store recorded). At most one per `alert_every_s` per device
        type and callback."""
        callback_id = delivery["callbackId"]
        assert callback_id is not None  # only DIRECT has none, and it is never given up
        dtype = self.view.device_types.get(delivery.get("deviceTypeId") or "") or {}
        to = dtype.get("alert_email")
        if not to:
            return
        try:
            recorded = await self.store.last_success_ms(callback_id)
        except Exception:
            log.warning("alert: the callback's last success could not be read", exc_info=True)
            recorded = None
        last_success_ms = max(self._last_success.get(callback_id, 0.0) * 1000, recorded or 0)
        if last_success_ms >= schedule_start_ms(delivery):
            return  # the callback worked meanwhile: a failed delivery, not a dead callback
        if not self._alerts.should_send((dtype.get("id"), callback_id)):
            return
        subject = f"Backhaul: callback {callback_id} could not be delivered"
        body = (f"Device type {dtype.get('name')} ({dtype.get('id')}), device {delivery['device']}:\n"
                f"the callback failed after all retries (last status {outcome.status}: {outcome.info}),\n"
                "and none of its deliveries has succeeded since this one was first tried.\n"
                "The failed deliveries are listed under callbacks-not-delivered and can be replayed.")
        try:
            await send_email(self.settings.smtp_host, self.settings.smtp_port, "backhaul@localhost", to,
                             subject, body, timeout=10)
        except EmailDeliveryError as exc:
            log.warning("alert e-mail failed", extra={"error": str(exc)})

    async def on_revoked(self, tps: set[TopicPartition]) -> None:
        deadline = time.monotonic() + 20.0
        while self.tracker.in_flight(tps) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self._commit()
        self.tracker.forget(tps)


def read_delivery(value: bytes | None) -> tuple[Delivery, None] | tuple[None, InvalidDelivery]:
    """The delivery in a record's value, or why there is none."""
    try:
        return decode_delivery(value), None
    except InvalidDelivery as exc:
        return None, exc

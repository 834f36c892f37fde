"""The delivery worker: rendered deliveries -> customers' servers, with every attempt recorded.

Each delivery runs in its own task behind its endpoint's bulkhead
(concurrency cap, token bucket, circuit breaker), so a slow or dead
endpoint only ever slows itself. When an endpoint already has its fill of
deliveries waiting, or its circuit is open, further deliveries are parked in
the retry store instead of waiting in memory: nothing is dropped and the
consumer keeps reading for the others. A Kafka offset is committed only once
every delivery before it is finished: answered, recorded, or durably parked.

Every attempt becomes a `delivery-results` record (status, latency, error
class, up to 1 KiB of the answer). A failed attempt is retried on the
callback's schedule (the Sigfox preset +1, +2, +4 min by default, with
jitter; a longer Retry-After wins); when the schedule is exhausted the last
result is marked dead and carries the request and its parameters, for the
undelivered list and replay.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import orjson
from aiokafka import ConsumerRebalanceListener, TopicPartition

from backhaul import metrics
from backhaul.configview import ConfigView
from backhaul.kafka import make_consumer, make_producer
from backhaul.settings import settings
from router.compiled import CompiledCallbacks
from router.templates import TemplateError, redact_url, render_batch
from schemas.topics import DELIVERIES, DELIVERY_RESULTS, DEVICE_EVENTS, DOWNLINKS, topic
from workers import downlink as dl
from workers.bulkhead import EndpointRegistry, endpoint_key
from workers.mail import AlertLimiter, EmailDeliveryError, send_email
from workers.offsets import OffsetTracker
from workers.retry import NON_HTTP_STATUS, RetryPolicy, classify, is_success, next_delay, parse_retry_after
from workers.retry_store import RetryStore
from workers.signing import signature_headers

log = logging.getLogger(__name__)

ANSWER_BYTES = 1024
# Failures that say the endpoint is unwell (a 4xx says the request was wrong).
BREAKER_FAILURES = frozenset({"timeout", "connect", "tls", "dns", "http_5xx", "http_429"})


class Outcome:
    __slots__ = ("status", "error_class", "info", "latency_ms", "answer", "retry_after", "content_type", "body")

    def __init__(self, status: int, error_class: str, info: str | None, latency_ms: float,
                 answer: str | None = None, retry_after: float | None = None,
                 content_type: str | None = None, body: bytes = b"") -> None:
        self.status = status
        self.error_class = error_class
        self.info = info
        self.latency_ms = latency_ms
        self.answer = answer
        self.retry_after = retry_after
        self.content_type = content_type
        self.body = body

    @property
    def ok(self) -> bool:
        return self.error_class == "ok"


class DeliveryWorker:
    """Consumes `deliveries`, sends them, records every attempt."""

    def __init__(self, view: ConfigView, store: RetryStore, *, max_in_flight: int = 5000,
                 endpoint_queue: int = 256) -> None:
        s = settings()
        self.settings = s
        self.view = view
        self.store = store
        self.compiled = CompiledCallbacks(view)
        self.registry = EndpointRegistry(s.endpoint_concurrency, s.endpoint_rate_per_s, s.endpoint_burst,
                                         s.breaker_failures, s.breaker_open_s)
        self.tracker = OffsetTracker()
        self.max_in_flight = max_in_flight
        self.endpoint_queue = endpoint_queue
        self._queued: dict[str, int] = {}
        self._slots = asyncio.Semaphore(max_in_flight)
        self._batches: dict[str, list[tuple[dict, int, Any]]] = {}
        self._batch_started: dict[str, float] = {}
        self._tasks: set[asyncio.Task] = set()
        self._alerts = AlertLimiter()
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.producer = None
        self.consumer = None
        self._t_results = topic(DELIVERY_RESULTS)

    def stop(self) -> None:
        self._stop.set()

    # Loop ----------------------------------------------------------------
    async def run(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60),
            auto_decompress=True, raise_for_status=False)
        self.producer = make_producer()
        await self.producer.start()
        self.consumer = make_consumer(group=topic("backhaul-delivery"), max_poll_records=2000)
        self.consumer.subscribe([topic(DELIVERIES)], listener=_Listener(self))
        await self.consumer.start()
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
                        self.tracker.add(tp, rec.offset)
                        try:
                            delivery = orjson.loads(rec.value)
                        except orjson.JSONDecodeError:
                            log.error("unreadable delivery", extra={"partition": tp.partition, "offset": rec.offset})
                            self._finished(tp, rec.offset)
                            continue
                        self._spawn(self._deliver(delivery, 0, (tp, rec.offset)))
        finally:
            for t in helpers:
                t.cancel()
            await self._drain(10.0)
            await self._commit()
            await self.consumer.stop()
            await self.producer.stop()
            await self.session.close()
            log.info("delivery worker stopped")

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finished(self, origin: tuple[TopicPartition, int] | None) -> None:
        if origin is not None:
            self.tracker.done(*origin)
            self._slots.release()

    async def _drain(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def _commit(self) -> None:
        offsets = self.tracker.committable()
        if not offsets:
            return
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
        if offsets:
            await self.consumer.commit(offsets)
            self.tracker.mark_committed(offsets)

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            try:
                await self._commit()
                metrics.DELIVERIES_IN_FLIGHT.set(self.tracker.in_flight())
                for state, count in self.registry.states().items():
                    metrics.CIRCUITS.labels(state).set(count)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("commit failed", exc_info=True)

    async def _poll_retries(self) -> None:
        while True:
            try:
                due = await self.store.claim_due()
                for delivery, attempts in due:
                    self._spawn(self._deliver(delivery, attempts, None))
                if not due:
                    await asyncio.sleep(0.25)
                metrics.RETRIES_WAITING.set(await self.store.waiting())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("retry poll failed", exc_info=True)
                await asyncio.sleep(1.0)

    # One delivery --------------------------------------------------------
    async def _deliver(self, delivery: dict, attempts: int, origin) -> None:
        """Send one delivery (attempt `attempts + 1`), or park it; always settles it."""
        try:
            if delivery["channel"] == "BATCH_URL":
                self._add_to_batch(delivery, attempts, origin)
                origin = None  # the batch settles it
                return
            cb = self.view.callbacks.get(delivery["callbackId"]) or {}
            if delivery["channel"] == "EMAIL":
                key = f"smtp://{self.settings.smtp_host}:{self.settings.smtp_port}"
            else:
                key = endpoint_key(delivery["request"]["url"])
            endpoint = self.registry.get(key, concurrency=cb.get("concurrency"), rate=cb.get("rate_per_s"))
            wait = endpoint.retry_in()
            if wait > 0 or self._queued.get(key, 0) >= self.endpoint_queue:
                await self._park(delivery, attempts, max(wait, 1.0))
                return
            self._queued[key] = self._queued.get(key, 0) + 1
            try:
                async with endpoint.semaphore:
                    if not endpoint.breaker.allow():
                        await self._park(delivery, attempts, max(endpoint.retry_in(), 1.0))
                        return
                    await endpoint.bucket.acquire()
                    if delivery["channel"] == "EMAIL":
                        outcome = await self._send_email(delivery)
                    else:
                        outcome = await self._send_http(delivery, cb)
            finally:
                self._queued[key] -= 1
            if outcome.ok:
                endpoint.breaker.record_success()
            elif outcome.error_class in BREAKER_FAILURES:
                endpoint.breaker.record_failure()
            await self._settle(delivery, attempts + 1, outcome, from_store=origin is None)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Not settled: the offset stays uncommitted (Kafka) or the claim expires (store).
            log.exception("delivery failed unexpectedly", extra={"delivery": delivery.get("id")})
            origin = None
        finally:
            self._finished(origin)

    async def _park(self, delivery: dict, attempts: int, delay: float) -> None:
        await self.store.schedule(delivery, attempts, delay)

    async def _send_http(self, delivery: dict, cb: dict) -> Outcome:
        req = delivery["request"]
        body = req["body"].encode() if req.get("body") is not None else None
        headers = dict(req.get("headers") or {})
        if body is not None and req.get("contentType"):
            headers.setdefault("Content-Type", req["contentType"])
        if cb.get("signing_secret"):
            headers.update(signature_headers(cb["signing_secret"], delivery.get("webhookId") or delivery["id"],
                                              body or b""))
        auth = aiohttp.BasicAuth(*req["auth"]) if req.get("auth") else None
        return await self._request(req["method"], req["url"], headers, body, auth,
                                   read_all=delivery.get("downlink", False))

    async def _request(self, method: str, url: str, headers: dict, body: bytes | None,
                       auth: aiohttp.BasicAuth | None, *, read_all: bool = False) -> Outcome:
        timeout = aiohttp.ClientTimeout(total=self.settings.callback_timeout_s)
        started = time.monotonic()
        try:
            async with self.session.request(method, url, data=body, headers=headers, auth=auth,
                                            timeout=timeout, allow_redirects=False) as resp:
                raw = await resp.content.read(64 * 1024 if read_all else ANSWER_BYTES)
                latency = (time.monotonic() - started) * 1000
                status = resp.status
                error_class = classify(status, None)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), time.time())
                return Outcome(status, error_class, None if is_success(status) else f"HTTP {status}", latency,
                               raw[:ANSWER_BYTES].decode("utf-8", "replace"), retry_after,
                               resp.headers.get("Content-Type"), raw)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            latency = (time.monotonic() - started) * 1000
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Outcome(NON_HTTP_STATUS, classify(None, exc), redact_url(reason), latency)

    async def _send_email(self, delivery: dict) -> Outcome:
        mail = delivery["email"]
        started = time.monotonic()
        try:
            await send_email(self.settings.smtp_host, self.settings.smtp_port, "backhaul@localhost",
                             mail["recipient"], mail["subject"], mail["body"],
                             timeout=self.settings.callback_timeout_s)
            return Outcome(250, "ok", None, (time.monotonic() - started) * 1000)
        except EmailDeliveryError as exc:
            return Outcome(NON_HTTP_STATUS, "other", str(exc), (time.monotonic() - started) * 1000)

    # Batches -------------------------------------------------------------
    def _add_to_batch(self, delivery: dict, attempts: int, origin) -> None:
        key = delivery["callbackId"]
        self._batches.setdefault(key, []).append((delivery, attempts, origin))
        self._batch_started.setdefault(key, time.monotonic())

    async def _flush_batches(self) -> None:
        window = self.settings.batch_window_s
        while True:
            await asyncio.sleep(min(0.05, window / 4))
            now = time.monotonic()
            for key in [k for k, t in self._batch_started.items() if now - t >= window]:
                members = self._batches.pop(key)
                del self._batch_started[key]
                self._spawn(self._send_batch(key, members))

    async def _send_batch(self, callback_id: str, members: list[tuple[dict, int, Any]]) -> None:
        try:
            cb = self.view.callbacks.get(callback_id)
            compiled = self.compiled.get(cb) if cb else None
            if compiled is None:
                outcome = Outcome(NON_HTTP_STATUS, "other", "callback no longer exists or does not compile", 0.0)
            else:
                try:
                    req = render_batch(compiled, [d["variables"] for d, _, _ in members])
                except TemplateError as exc:
                    outcome = Outcome(NON_HTTP_STATUS, "other", str(exc), 0.0)
                else:
                    endpoint = self.registry.get(endpoint_key(req.url), concurrency=cb.get("concurrency"),
                                                 rate=cb.get("rate_per_s"))
                    if endpoint.retry_in() > 0 or not endpoint.breaker.allow():
                        delay = max(endpoint.retry_in(), 1.0)
                        for d, attempts, _ in members:
                            await self._park(d, attempts, delay)
                        return
                    headers = dict(req.headers)
                    if req.body is not None and req.content_type:
                        headers.setdefault("Content-Type", req.content_type)
                    if cb.get("signing_secret"):
                        batch_id = f"batch:{members[0][0]['id']}:{len(members)}"
                        headers.update(signature_headers(cb["signing_secret"], batch_id, req.body or b""))
                    auth = aiohttp.BasicAuth(*req.basic_auth) if req.basic_auth else None
                    async with endpoint.semaphore:
                        await endpoint.bucket.acquire()
                        outcome = await self._request(req.method, req.url, headers, req.body, auth)
                    if outcome.ok:
                        endpoint.breaker.record_success()
                    elif outcome.error_class in BREAKER_FAILURES:
                        endpoint.breaker.record_failure()
            await asyncio.gather(*(self._settle(d, attempts + 1, outcome, from_store=origin is None)
                                   for d, attempts, origin in members))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("batch failed unexpectedly", extra={"callback": callback_id})
            members = [(d, a, None) for d, a, _ in members]  # leave them unsettled
        finally:
            for _, _, origin in members:
                self._finished(origin)

    # Outcomes ------------------------------------------------------------
    def _policy(self, callback_id: str) -> RetryPolicy:
        cb = self.view.callbacks.get(callback_id) or {}
        schedule = cb.get("retry_schedule") or self.settings.retry_schedule_s
        return RetryPolicy(tuple(schedule), self.settings.retry_jitter, self.settings.callback_timeout_s)

    async def _settle(self, delivery: dict, attempts: int, outcome: Outcome, *, from_store: bool) -> None:
        """Record the attempt, then schedule the retry or give up."""
        channel = delivery["channel"]
        now_ms = int(time.time() * 1000)
        result = {
            "deliveryId": delivery["id"], "attempt": attempts, "callbackId": delivery["callbackId"],
            "messageId": delivery.get("messageId"), "device": delivery["device"],
            "deviceTypeId": delivery.get("deviceTypeId"), "groupId": delivery.get("groupId"),
            "kind": delivery["kind"], "channel": channel, "time": now_ms, "status": outcome.status,
            "errorClass": outcome.error_class, "info": outcome.info, "latencyMs": round(outcome.latency_ms, 3),
            "answer": outcome.answer, "final": True, "dead": False,
        }
        metrics.DELIVERIES.labels(channel, outcome.error_class).inc()
        metrics.DELIVERY_LATENCY.labels(channel).observe(outcome.latency_ms / 1000)
        extra: list[tuple[str, bytes, bytes]] = []
        if outcome.ok:
            metrics.E2E_LATENCY.labels(delivery["kind"]).observe(max(0.0, now_ms - delivery["origin"]) / 1000)
            if delivery.get("downlink"):
                extra.extend(self._downlink(delivery, outcome))
            if from_store:
                await self.store.finish(delivery["id"])
        else:
            delay = next_delay(self._policy(delivery["callbackId"]), attempts, outcome.retry_after)
            if delay is None:
                result["dead"] = True
                result["delivery"] = delivery
                metrics.DELIVERY_DEAD.labels(channel).inc()
                if from_store:
                    await self.store.finish(delivery["id"])
                self._spawn(self._alert(delivery, outcome))
            else:
                result["final"] = False
                result["nextAttemptAt"] = now_ms + int(delay * 1000)
                metrics.DELIVERY_RETRIES.labels(channel).inc()
                await self.store.schedule(delivery, attempts, delay)
            if delivery.get("downlink") and attempts == 1:
                extra.append(self._ack_event(delivery, dl.InfoCode.NO_ANSWER))
        futures = [await self.producer.send(self._t_results, orjson.dumps(result), key=delivery["device"].encode())]
        for name, key, value in extra:
            futures.append(await self.producer.send(name, value, key=key))
        await asyncio.gather(*futures)
        if outcome.ok or result["dead"]:
            log.debug("delivery settled", extra={"delivery": delivery["id"], "status": outcome.status})

    def _downlink(self, delivery: dict, outcome: Outcome) -> list[tuple[str, bytes, bytes]]:
        answer = dl.parse_bidir_answer(delivery["device"], outcome.status, outcome.content_type, outcome.body)
        if answer.kind == "no_data":
            return []
        if answer.kind == "invalid":
            return [self._ack_event(delivery, dl.InfoCode.INVALID_PAYLOAD, answer.reason)]
        record = {"id": f"{delivery['recordId']}:downlink", "device": delivery["device"],
                  "messageId": delivery.get("messageId"), "data": answer.data_hex,
                  "station": delivery["variables"].get("station"), "createdAt": int(time.time() * 1000),
                  "deviceTypeId": delivery.get("deviceTypeId"), "groupId": delivery.get("groupId")}
        return [(topic(DOWNLINKS), delivery["device"].encode(), orjson.dumps(record))]

    def _ack_event(self, delivery: dict, code: dl.InfoCode, reason: str | None = None) -> tuple[str, bytes, bytes]:
        event = {"id": f"{delivery['device']}:ACKNOWLEDGE:{delivery['recordId']}", "type": "ACKNOWLEDGE",
                 "device": delivery["device"], "deviceTypeId": delivery.get("deviceTypeId"),
                 "groupId": delivery.get("groupId"), "time": int(time.time() * 1000), "infoCode": int(code),
                 "infoMessage": reason or dl.info_message(code), "downlinkAck": False, "downlinkOverusage": False}
        metrics.DOWNLINKS.labels(str(int(code))).inc()
        return topic(DEVICE_EVENTS), delivery["device"].encode(), orjson.dumps(event)

    async def _alert(self, delivery: dict, outcome: Outcome) -> None:
        dtype = self.view.device_types.get(delivery.get("deviceTypeId") or "") or {}
        to = dtype.get("alert_email")
        if not to or not self._alerts.should_send((dtype.get("id"), delivery["callbackId"]), time.time()):
            return
        subject = f"Backhaul: callback {delivery['callbackId']} could not be delivered"
        body = (f"Device type {dtype.get('name')} ({dtype.get('id')}), device {delivery['device']}:\n"
                f"the callback failed after all retries (last status {outcome.status}: {outcome.info}).\n"
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


class _Listener(ConsumerRebalanceListener):
    def __init__(self, worker: DeliveryWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked) -> None:
        await self.worker.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned) -> None:
        pass

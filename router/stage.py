"""The router stage: messages, aggregates and device events -> rendered deliveries.

For each record it finds the device's type in the local configuration view,
the enabled callbacks of that type whose subtype wants the record, renders
each request once (URL, headers, body; e-mail fields; batch lines are
rendered by the batching worker from the variables) and publishes one
delivery per callback with a stable id: `<record id>/<callback id>`.
A request that cannot be rendered becomes a failed attempt with its reason.
The router sees no secret: URL credentials, secret headers and signing
secrets stay sealed in the configuration (`backhaul.callback_secrets`) and
the delivery worker adds them at send time, so `deliveries` holds none.

An uplink that asks for a downlink (`ack`) is routed by its device type
(`callback_language.downlink.downlink_route`): in CALLBACK mode the downlink
callback's delivery is marked `downlink`; in DIRECT mode the downlinkDataString is
checked here (rendered for the first reception) and goes to the delivery worker
as a DIRECT delivery (to pass the contract and quota gate; it is rendered for
good once the transmitting station is chosen); otherwise an ACKNOWLEDGE event
says why not. An uplink that reaches the router after its BIDIR answer was due
(CALLBACK) or after its downlink had to leave (DIRECT), counted from its own
time, gets ACKNOWLEDGE NETWORK_ERROR instead (`late_uplink`), and its BIDIR
callback is called as a plain data callback.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from backhaul import metrics
from backhaul.configview import ConfigView
from backhaul.kafka import Out
from backhaul.settings import settings
from backhaul.stage import Batch, Stage
from backhaul.topics import topic
from callback_language import bindings
from callback_language import downlink as dl
from callback_language.compiled import CompiledCallbacks
from callback_language.status import NON_HTTP_STATUS
from callback_language.templates import (
    TEMPLATED_SETTINGS,
    TemplateError,
    render_email,
    render_publish,
    render_request,
)
from schemas import delivery_results as results
from schemas.advanced_messages import decode_advanced_message
from schemas.deliveries import Delivery, delivery_id, delivery_key, email, encode_delivery, http_request, new_delivery
from schemas.delivery_results import encode_delivery_result
from schemas.device_events import decode_device_event, encode_device_event
from schemas.messages import decode_message
from schemas.topics import DELIVERIES, DELIVERY_RESULTS, DEVICE_EVENTS, MESSAGES, MESSAGES_ADVANCED

log = logging.getLogger(__name__)


class RouterStage(Stage):
    name = "router"
    group = "backhaul-router"

    def __init__(self, view: ConfigView, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.view = view
        self.clock = clock  # epoch s: when a record is routed (a downlink's lateness is counted to it)
        self.compiled = CompiledCallbacks(view)
        self.timing = dl.downlink_timing(settings())
        self._t_messages = topic(MESSAGES)
        self._t_advanced = topic(MESSAGES_ADVANCED)
        self._t_events = topic(DEVICE_EVENTS)
        self._t_deliveries = topic(DELIVERIES)
        self._t_results = topic(DELIVERY_RESULTS)
        self.topics = (self._t_messages, self._t_advanced, self._t_events)

    def process(self, batch: Batch) -> list[Out]:
        # A record that cannot be read or lacks what routing needs is dead-lettered by each_record.
        return self.each_record(batch, self._route_record)

    def _route_record(self, tp: TopicPartition, rec: ConsumerRecord, outputs: list[Out]) -> None:
        if tp.topic == self._t_messages:
            message = decode_message(rec.value)
            if message.get("duplicate"):
                return
            self._route(message, "DATA", message["time"], outputs)
        elif tp.topic == self._t_advanced:
            advanced = decode_advanced_message(rec.value)
            self._route(advanced, "DATA_ADVANCED", advanced["deadline"], outputs)
        else:
            event = decode_device_event(rec.value)
            self._route(event, event["type"], event["time"], outputs)

    def _route(self, record: Mapping[str, Any], kind: str, origin_ms: int, outputs: list[Out]) -> None:
        subtypes = bindings.TARGETS.get(kind)
        if not subtypes:
            return
        device_type_id = record.get("deviceTypeId")
        if device_type_id is None:
            device = self.view.devices.get(record["device"])
            device_type_id = device and device.get("device_type_id")
        if not device_type_id:
            return
        all_callbacks = self.view.callbacks_for(device_type_id)
        callbacks = [cb for cb in all_callbacks if cb.get("enabled") and cb.get("callback_subtype") in subtypes]
        now_ms = int(self.clock() * 1000)
        message_id = record.get("messageId") or (record["id"] if kind == "DATA" else None)
        downlink_callback = None  # pragma: no mutate ("" matches no callback id either)
        if kind == "DATA" and record.get("ack"):
            downlink_callback = self._downlink(record, device_type_id, all_callbacks, origin_ms, now_ms, outputs)
        if not callbacks:
            return
        if kind == "DATA":
            variables = bindings.data_variables(record)
        elif kind == "DATA_ADVANCED":
            variables = bindings.advanced_variables(record)
        else:
            variables = bindings.event_variables(record, self.view.stations)
        for cb in callbacks:
            compiled = self.compiled.get(cb)
            cb_kind = "RESTORED" if kind == "RESTORED" else bindings.SUBTYPE_KIND[cb["callback_subtype"]]
            cb_vars = {**variables, "deliveryId": delivery_id(record["id"], cb["id"], cb["channel"])}
            if kind in ("DATA", "DATA_ADVANCED"):
                cb_vars.update(self.compiled.custom_data(cb, device_type_id, record["data"]))
            delivery = new_delivery(record, callback_id=cb["id"], kind=cb_kind, channel=cb["channel"],
                                    device_type_id=device_type_id, message_id=message_id, origin_ms=origin_ms,
                                    created_ms=now_ms, variables=cb_vars, downlink=cb["id"] == downlink_callback)
            try:
                if compiled is None:
                    raise TemplateError("callback", None, "callback could not be compiled")
                if cb["channel"] == "URL":
                    req = render_request(compiled, cb_vars)
                    # No secret here: the configuration holds them sealed; the delivery worker adds them.
                    delivery["request"] = http_request(req.method, req.url, req.headers, req.body, req.content_type)
                elif cb["channel"] == "EMAIL":
                    delivery["email"] = email(*render_email(compiled, cb_vars))
                elif cb["channel"] in TEMPLATED_SETTINGS:
                    # Topic and body only: the destination and its secrets are read at send time.
                    out = render_publish(compiled, cb_vars)
                    # An AZURE_EVENT_HUBS callback without a topic goes to its connection string's EntityPath.
                    delivery["publish"] = {"topic": out.get("topic", ""), "body": out["body"],
                                           "contentType": out["contentType"]}
                    if "partitionKey" in out:  # KINESIS
                        delivery["publish"]["key"] = out["partitionKey"]
            except TemplateError as exc:
                metrics.ROUTE_ERRORS.labels("render").inc()
                outputs.append(Out(self._t_results, record["device"].encode(), encode_delivery_result(
                    render_failure(delivery, str(exc)))))
                if delivery["downlink"]:
                    outputs.append(self._ack(record, device_type_id, dl.InfoCode.NO_ANSWER, now_ms,
                                             f"No answer: the downlink callback could not be rendered: {exc}"))
                continue
            metrics.ROUTED.labels(cb_kind, cb["channel"]).inc()
            outputs.append(Out(self._t_deliveries, delivery_key(delivery), encode_delivery(delivery)))

    def _downlink(self, record: Mapping[str, Any], device_type_id: str, callbacks: list[dict[str, Any]],
                  origin_ms: int, now_ms: int, outputs: list[Out]) -> str | None:
        """Start the downlink an uplink asks for; returns the id of the callback that answers it, if any."""
        dtype = self.view.device_types.get(device_type_id)
        route = dl.downlink_route(dtype, callbacks)
        if route.mode == "refused":
            assert route.code is not None  # a "refused" route always says why
            outputs.append(self._ack(record, device_type_id, route.code, now_ms, route.reason))
            return None
        late = dl.late_uplink(self.timing, route.mode, record["time"], now_ms)
        if late is not None:
            outputs.append(self._ack(record, device_type_id, dl.InfoCode.NETWORK_ERROR, now_ms, late))
            return None
        if route.mode == "callback":
            return route.callback_id
        assert dtype is not None  # only a known device type routes "direct"
        template = dtype.get("downlink_data_string") or ""
        try:  # rendered for good from the transmitting station (workers.downlink_dispatch): checked here
            dl.render_direct(template, tap_id=record["station"], rssi=record["rssi"], time_s=record["time"] // 1000)
        except ValueError as exc:
            outputs.append(self._ack(record, device_type_id, dl.InfoCode.INVALID_CONFIGURATION, now_ms,
                                     f"Invalid configuration: {exc}"))
            return None
        delivery = new_delivery(record, callback_id=None, kind="DOWNLINK", channel="DIRECT",
                                device_type_id=device_type_id, message_id=record["id"], origin_ms=origin_ms,
                                created_ms=now_ms, variables={"station": record["station"], "rssi": record["rssi"]})
        delivery["downlinkTemplate"] = template
        outputs.append(Out(self._t_deliveries, delivery_key(delivery), encode_delivery(delivery)))
        return None

    def _ack(self, record: Mapping[str, Any], device_type_id: str, code: dl.InfoCode, now_ms: int,
             reason: str | None = None) -> Out:
        metrics.DOWNLINKS.labels(str(int(code))).inc()
        event = dl.ack_event(record["device"], record["id"], code, device_type_id=device_type_id,
                             group_id=record.get("groupId"), now_ms=now_ms, reason=reason,
                             registration_id=record.get("registrationId"), uplink_ms=record["time"])
        return Out(self._t_events, record["device"].encode(), encode_device_event(event))


def render_failure(delivery: Delivery, reason: str) -> results.DeliveryResult:
    """A final failed attempt for a delivery that could not even be rendered (no request was sent)."""
    now_ms = int(time.time() * 1000)
    return results.done(delivery, send_id=results.not_sent_id(delivery["id"]), attempt=1, sent_at_ms=now_ms,
                        now_ms=now_ms, status=NON_HTTP_STATUS, error_class="render", info=reason, latency_ms=0.0,
                        dead_delivery=delivery)

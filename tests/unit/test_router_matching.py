"""The router's matching and rendering (router/stage.py), fed the records the ingest engine makes, without
Kafka: which callbacks a record goes to, what each delivery carries, and what a downlink request becomes.
The stage's loop (reading, committing) is tested on the real stack (tests/integration)."""
from __future__ import annotations

import time

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from backhaul.configview import ConfigView
from backhaul.topics import topic
from callback_language.downlink import InfoCode
from ingest.engine import IngestEngine, Outputs
from ingest.oob import encode_status
from router.stage import RouterStage, render_failure
from schemas.advanced_messages import encode_advanced_message
from schemas.deliveries import decode_delivery
from schemas.delivery_results import decode_delivery_result
from schemas.device_events import decode_device_event, encode_device_event
from schemas.frames import Frame
from schemas.messages import encode_message
from schemas.topics import DELIVERIES, DELIVERY_RESULTS, DEVICE_EVENTS, MESSAGES, MESSAGES_ADVANCED

DEVICE, DTYPE, GROUP = "1A2B", "dt1", "g1"


def callback(cid: str, subtype: int = 0, *, channel: str = "URL", enabled: bool = True, **extra) -> dict:
    row = {"id": cid, "device_type_id": DTYPE, "callback_subtype": subtype, "channel": channel, "enabled": enabled,
           "url": f"https://receiver.example/{cid}?d={{device}}", "http_method": "GET",
           "headers": {}, "updated_at": 1}
    row.update(extra)
    return row


def view(*callbacks: dict, dtype: dict | None = None, keep_alive: int = 0) -> ConfigView:
    v = ConfigView()
    v.devices[DEVICE] = {"id": DEVICE, "device_type_id": DTYPE, "group_id": GROUP, "state": 0, "registration_id": 5}
    v.device_types[DTYPE] = {"id": DTYPE, "group_id": GROUP, "keep_alive": keep_alive, "downlink_mode": 2,
                             **(dtype or {})}
    v.stations["0001"] = {"id": "0001", "lat": 43.0, "lng": 1.0}
    v.stations["0002"] = {"id": "0002", "lat": 43.1, "lng": 1.0}
    v.callbacks.update({cb["id"]: cb for cb in callbacks})
    return v


def engine_records(v: ConfigView, *, ack: bool = False, data: str = "0a0b") -> Outputs:
    """A message heard by two stations, its DATA_ADVANCED, and a keep-alive ERROR, as ingest makes them."""
    engine = IngestEngine(v, window_s=25.0)
    out = Outputs()
    for station, rssi in (("0001", -120.0), ("0002", -110.0)):
        engine.handle(Frame(station=station, device=DEVICE, seqNumber=7, time=1_700_000_000_000, data=data,
                            rssi=rssi, snr=12.0, freq=868_130_000, rep=0, ack=ack, oob=False),
                      0, out, 1_700_000_000.0)
    out.extend(engine.tick(1_700_000_000.0 + 25.0))
    if v.device_types[DTYPE]["keep_alive"]:
        out.extend(engine.tick(1_700_000_000.0 + v.device_types[DTYPE]["keep_alive"]))
    return out


# When the router routes the engine's records (epoch s): 0.5 s after their frames were sent.
ROUTED_AT = 1_700_000_000.5


def route(v: ConfigView, out: Outputs, *, at: float = ROUTED_AT) -> dict[str, list]:
    """Feed the engine's records to a router stage routing at `at`, in one batch; its outputs by topic,
    decoded."""
    stage = RouterStage(v, clock=lambda: at)
    batch: dict[TopicPartition, list[ConsumerRecord]] = {}
    for name, records, encode in ((MESSAGES, out.messages, encode_message),
                                  (MESSAGES_ADVANCED, out.advanced, encode_advanced_message),
                                  (DEVICE_EVENTS, out.events, encode_device_event)):
        tp = TopicPartition(topic(name), 0)
        batch[tp] = [ConsumerRecord(tp.topic, 0, n, 0, 0, DEVICE.encode(), encode(r), None, 0, 0, [])
                     for n, r in enumerate(records)]
    outputs = stage.process(batch)
    decoders = {topic(DELIVERIES): decode_delivery, topic(DELIVERY_RESULTS): decode_delivery_result,
                topic(DEVICE_EVENTS): decode_device_event}
    by_topic: dict[str, list] = {DELIVERIES: [], DELIVERY_RESULTS: [], DEVICE_EVENTS: []}
    for o in outputs:
        name = next(n for n in by_topic if topic(n) == o.topic)
        by_topic[name].append(decoders[o.topic](o.value))
    assert not stage._dead, "nothing here is a poison record"
    return by_topic


def test_each_record_goes_once_to_every_enabled_callback_of_its_kind_and_nothing_else():
    v = view(callback("up"), callback("bidir", 1), callback("adv", 5), callback("err", 6),
             callback("off", 0, enabled=False), callback("status", 2), callback("event", 7), keep_alive=60)
    records = engine_records(v)
    deliveries = route(v, records)[DELIVERIES]
    message_id = records.messages[0]["id"]
    assert sorted((d["callbackId"], d["kind"]) for d in deliveries) == [
        ("adv", "DATA_ADVANCED"), ("bidir", "DATA_BIDIR"), ("err", "ERROR"), ("up", "DATA_UPLINK")]
    by_cb = {d["callbackId"]: d for d in deliveries}
    assert by_cb["up"]["id"] == f"{message_id}/up"  # stable: the same record routed again has the same id
    assert by_cb["adv"]["id"] == f"{message_id}:advanced/adv"
    assert by_cb["err"]["recordId"] == records.events[0]["id"]
    assert {d["messageId"] for d in (by_cb["up"], by_cb["adv"])} == {message_id}
    assert by_cb["err"]["messageId"] is None


def test_a_duplicate_reception_is_not_routed_and_a_disabled_callback_never_is():
    v = view(callback("up", enabled=False), callback("up2"))
    records = engine_records(v, ack=True)  # a duplicate reception is published for a downlink only
    assert [m["duplicate"] for m in records.messages] == [False, True]
    deliveries = route(v, records)[DELIVERIES]
    assert [(d["callbackId"], d["variables"]["station"]) for d in deliveries] == [("up2", "0001")]


def test_a_delivery_carries_its_rendered_request_its_times_and_its_record():
    v = view(callback("up", url="https://receiver.example/up?d={device}&s={seqNumber}", http_method="POST",
                      body_template='{"d":"{device}","x":"{data}"}',
                      content_type="application/json", headers={"X-Seq": "{seqNumber}"}))
    (d,) = route(v, engine_records(v))[DELIVERIES]
    assert d["channel"] == "URL" and d["device"] == DEVICE and d["deviceTypeId"] == DTYPE and d["groupId"] == GROUP
    assert d["request"] == {"method": "POST", "url": f"https://receiver.example/up?d={DEVICE}&s=7",
                            "headers": {"X-Seq": "7"}, "body": '{"d":"1A2B","x":"0a0b"}',
                            "contentType": "application/json"}
    assert d["origin"] == 1_700_000_000_000 and d["messageTime"] == 1_700_000_000_000  # DATA: the frame's time
    assert d["createdAt"] == ROUTED_AT * 1000, "routed: the router's clock"
    assert d["variables"]["data"] == "0a0b" and d["variables"]["seqNumber"] == 7 and d["downlink"] is False
    assert "auth" not in d["request"]


def test_each_callback_binds_delivery_id_to_its_own_deliverys_id():
    body = '{"id": "{deliveryId}", "d": "{device}"}'
    json_post = {"http_method": "POST", "content_type": "application/json", "body_template": body}
    v = view(callback("up", **json_post), callback("up2", **json_post), callback("adv", 5, **json_post),
             callback("err", 6, **json_post),
             callback("mail", channel="EMAIL", recipient="ops@example.com", subject="{deliveryId}", message="m"),
             keep_alive=60)
    deliveries = route(v, engine_records(v))[DELIVERIES]
    assert len(deliveries) == 5
    for d in deliveries:
        assert d["variables"]["deliveryId"] == d["id"], d["callbackId"]
        sent = d["email"]["subject"] if "email" in d else orjson.loads(d["request"]["body"])["id"]
        assert sent == d["id"], d["callbackId"]
    assert len({d["id"] for d in deliveries}) == 5, "one id per callback, the record's shared"


def test_data_advanced_is_routed_from_its_deadline_and_events_from_their_time():
    v = view(callback("adv", 5), callback("err", 6), keep_alive=60)
    deliveries = {d["callbackId"]: d for d in route(v, engine_records(v))[DELIVERIES]}
    assert deliveries["adv"]["origin"] == 1_700_000_025_000
    assert deliveries["adv"]["variables"]["seqNumber"] == 7
    assert deliveries["err"]["origin"] == 1_700_000_060_000


def test_custom_data_comes_from_the_callback_grammar_else_the_device_types():
    v = view(callback("own", payload_config="temp::uint:8 hum::uint:8"), callback("plain"),
             dtype={"payload_type": 3, "payload_config": "level::uint:16"})
    deliveries = {d["callbackId"]: d["variables"] for d in route(v, engine_records(v))[DELIVERIES]}
    assert (deliveries["own"]["customData#temp"], deliveries["own"]["customData#hum"]) == ("10", "11")
    assert deliveries["plain"]["customData#level"] == str(0x0A0B)
    assert "customData#level" not in deliveries["own"]


def test_an_email_callback_is_rendered_and_a_batch_one_is_left_to_the_worker():
    v = view(callback("mail", channel="EMAIL", recipient="ops@example.com", subject="seq {seqNumber}",
                      message="data {data}"),
             callback("batch", channel="BATCH_URL", line_pattern="{device};{data}", url="https://receiver.example/b",
                      http_method="POST"))
    deliveries = {d["callbackId"]: d for d in route(v, engine_records(v))[DELIVERIES]}
    assert deliveries["mail"]["email"] == {"recipient": "ops@example.com", "subject": "seq 7", "body": "data 0a0b"}
    assert "request" not in deliveries["batch"] and "email" not in deliveries["batch"]
    assert deliveries["batch"]["channel"] == "BATCH_URL"


def test_a_callback_that_cannot_be_rendered_is_a_failed_attempt_not_a_delivery():
    # byte 0x0a of the payload read as a char is a line feed: refused in a header when rendered
    v = view(callback("bad", payload_config="c::char:1", headers={"X-First": "{customData#c}"}), callback("good"))
    routed = route(v, engine_records(v))
    assert [d["callbackId"] for d in routed[DELIVERIES]] == ["good"]
    (failure,) = routed[DELIVERY_RESULTS]
    assert failure["callbackId"] == "bad" and failure["status"] == 600 and failure["errorClass"] == "render"
    assert failure["final"] is True and failure["attempt"] == 1 and failure["info"]


def test_a_render_failure_is_final_dead_and_keeps_its_delivery():
    v = view(callback("up"))
    (d,) = route(v, engine_records(v))[DELIVERIES]
    before = int(time.time() * 1000)
    result = render_failure(d, "the body is not JSON")
    after = int(time.time() * 1000)
    assert (result["status"], result["errorClass"], result["info"], result["attempt"], result["latencyMs"]) == (
        600, "render", "the body is not JSON", 1, 0.0)
    assert result["dead"] is True and result["final"] is True and result["delivery"] == d
    assert result["sendId"] == f"{d['id']}:not-sent" and result["deliveryId"] == d["id"]
    assert before <= result["sentAt"] == result["time"] <= after


def test_records_of_a_device_without_a_known_type_go_nowhere():
    v = view(callback("up"))
    records = engine_records(v)
    v.device_types.clear()
    v.devices[DEVICE]["device_type_id"] = None
    for m in records.messages:
        m["deviceTypeId"] = None
    assert route(v, records)[DELIVERIES] == []


# Downlinks ---------------------------------------------------------------------------------------

def test_an_uplink_asking_for_a_downlink_marks_the_one_bidir_callback_that_answers_it():
    v = view(callback("hook", 1, downlink_hook=True), callback("other", 1), dtype={"downlink_mode": 1})
    deliveries = {d["callbackId"]: d for d in route(v, engine_records(v, ack=True))[DELIVERIES]}
    assert deliveries["hook"]["downlink"] is True and deliveries["other"]["downlink"] is False


def test_a_direct_downlink_is_checked_by_the_router_and_left_for_the_transmitting_station():
    template = "{tapId}{rssi}{time}"
    v = view(dtype={"downlink_mode": 0, "downlink_data_string": template})
    records = engine_records(v, ack=True)
    stage = RouterStage(v, clock=lambda: ROUTED_AT)
    routed = route(v, records)
    (d,) = routed[DELIVERIES]
    message = records.messages[0]
    assert (d["channel"], d["kind"], d["callbackId"]) == ("DIRECT", "DOWNLINK", None)
    assert d["id"] == f"{message['id']}/direct" and d["messageId"] == message["id"]
    # The station that heard first and its rssi: the fallback when the dispatcher knows no better one.
    assert d["deviceTypeId"] == DTYPE and d["variables"] == {"station": "0001", "rssi": -120.0}
    assert d["downlinkTemplate"] == template and "downlinkData" not in d
    assert routed[DEVICE_EVENTS] == []
    tp = TopicPartition(topic(MESSAGES), 0)
    (out,) = stage.process({tp: [ConsumerRecord(tp.topic, 0, 0, 0, 0, b"k", encode_message(message), None, 0, 0,
                                                [])]})
    assert out.key == DEVICE.encode()  # keyed by device: a device's downlinks stay in order


@pytest.mark.parametrize("mode, dtype, last_in_time_s", [
    ("callback", {"downlink_mode": 1}, 9.999), ("direct", {"downlink_mode": 0, "downlink_data_string": "00" * 8},
                                                18.999)])
def test_an_uplink_routed_after_its_deadline_gets_no_downlink_but_network_error(mode, dtype, last_in_time_s):
    """Counted from the uplink's own time (the frame's, 1_700_000_000 s): the BIDIR answer is due 10 s
    after it, a DIRECT downlink leaves 19 s after it (20 s to the station, less the 1 s lead)."""
    v = view(callback("hook", 1, downlink_hook=True), dtype=dtype)
    in_time = route(v, engine_records(v, ack=True), at=1_700_000_000 + last_in_time_s)
    assert in_time[DEVICE_EVENTS] == []
    assert any(d["downlink"] for d in in_time[DELIVERIES]) or any(d["channel"] == "DIRECT"
                                                                   for d in in_time[DELIVERIES])
    late = route(v, engine_records(v, ack=True), at=1_700_000_060.0)
    (ack,) = late[DEVICE_EVENTS]
    assert (ack["type"], ack["infoCode"], ack["downlinkAck"], ack["uplinkTime"]) == (
        "ACKNOWLEDGE", int(InfoCode.NETWORK_ERROR), False, 1_700_000_000_000)
    assert ack["infoMessage"].startswith("Network error: the uplink reached Backhaul 60.0 s after it was sent")
    assert [(d["callbackId"], d["downlink"]) for d in late[DELIVERIES]] == [("hook", False)], \
        "the BIDIR callback still delivers the data, as a plain data callback"


REASONS = {
    (None, 2): "Invalid configuration: the device type's downlinkMode 2 sends no downlink",
    ("zz", 0): "Invalid configuration: downlinkDataString 'zz' gives 'zz', which is not hexadecimal",
    (None, 1): "Invalid configuration: callback downlink mode but no downlink BIDIR callback",
}


@pytest.mark.parametrize("dtype, code", [({"downlink_mode": 2}, InfoCode.INVALID_CONFIGURATION),
                                         ({"downlink_mode": 0, "downlink_data_string": "zz"},
                                          InfoCode.INVALID_CONFIGURATION),
                                         ({"downlink_mode": 1}, InfoCode.INVALID_CONFIGURATION)])
def test_a_downlink_that_cannot_be_made_is_acknowledged_with_why(dtype, code):
    v = view(callback("up"), dtype=dtype)
    records = engine_records(v, ack=True)
    routed = route(v, records)
    (ack,) = routed[DEVICE_EVENTS]
    assert ack["type"] == "ACKNOWLEDGE" and ack["infoCode"] == int(code)
    assert ack["device"] == DEVICE and ack["deviceTypeId"] == DTYPE and ack["groupId"] == GROUP
    assert ack["registrationId"] == 5 and ack["id"].startswith(f"{DEVICE}:ACKNOWLEDGE:{records.messages[0]['id']}")
    assert ack["infoMessage"] == REASONS[dtype.get("downlink_data_string"), dtype["downlink_mode"]]
    assert [d["callbackId"] for d in routed[DELIVERIES]] == ["up"]  # the uplink itself is still delivered


def test_a_downlink_callback_that_cannot_be_rendered_is_acknowledged_as_no_answer():
    v = view(callback("hook", 1, downlink_hook=True, http_method="POST", body_template="{nope",
                      content_type="text/plain"), dtype={"downlink_mode": 1})
    routed = route(v, engine_records(v, ack=True))
    assert routed[DELIVERIES] == []
    (ack,) = routed[DEVICE_EVENTS]
    assert ack["infoCode"] == int(InfoCode.NO_ANSWER) and "could not be rendered" in ack["infoMessage"]


def test_an_uplink_without_ack_starts_no_downlink():
    v = view(callback("hook", 1, downlink_hook=True), dtype={"downlink_mode": 1})
    routed = route(v, engine_records(v, ack=False))
    assert [d["downlink"] for d in routed[DELIVERIES]] == [False] and routed[DEVICE_EVENTS] == []


def test_a_record_that_cannot_be_read_is_set_aside_and_the_others_are_routed():
    v = view(callback("up"))
    stage = RouterStage(v, clock=lambda: ROUTED_AT)
    tp = TopicPartition(topic(MESSAGES), 0)
    good = engine_records(v).messages[0]
    batch = {tp: [ConsumerRecord(tp.topic, 0, 0, 0, 0, b"k", b"{not json", None, 0, 0, []),
                  ConsumerRecord(tp.topic, 0, 1, 0, 0, b"k", orjson.dumps(good), None, 0, 0, [])]}
    outputs = stage.process(batch)
    assert [decode_delivery(o.value)["callbackId"] for o in outputs] == ["up"]
    assert len(stage._dead) == 1


def test_routing_is_counted_by_kind_and_channel_and_failures_by_reason():
    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    v = view(callback("up"), callback("bad", payload_config="c::char:1", headers={"X-First": "{customData#c}"}),
             dtype={"downlink_mode": 2})
    before = (count("backhaul_routed_deliveries_total", type="DATA_UPLINK", channel="URL"),
              count("backhaul_route_errors_total", reason="render"),
              count("backhaul_downlinks_total", info_code="8"))
    route(v, engine_records(v, ack=True))
    after = (count("backhaul_routed_deliveries_total", type="DATA_UPLINK", channel="URL"),
             count("backhaul_route_errors_total", reason="render"),
             count("backhaul_downlinks_total", info_code="8"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1.0, 1.0, 1.0]


def test_the_router_reads_messages_aggregates_and_events():
    assert RouterStage(view()).topics == (topic(MESSAGES), topic(MESSAGES_ADVANCED), topic(DEVICE_EVENTS))


def test_a_record_without_its_type_is_routed_by_the_devices_type_in_the_view():
    v = view(callback("up"))
    records = engine_records(v)
    for m in records.messages:
        m["deviceTypeId"] = None
    assert [d["deviceTypeId"] for d in route(v, records)[DELIVERIES]] == [DTYPE]


def test_restored_goes_to_the_error_callbacks_as_restored_and_status_with_its_stations_position():
    v = view(callback("err", 6), callback("status", 2), keep_alive=60)
    engine = IngestEngine(v, window_s=25.0)
    out = Outputs()
    for n, at in ((1, 1_700_000_000.0), (2, 1_700_000_100.0)):  # silent 100 s with a 60 s keep-alive
        out.extend(engine.tick(at))
        engine.handle(Frame(station="0002", device=DEVICE, seqNumber=n, time=int(at * 1000), data="00", rssi=-100.0,
                            snr=10.0, freq=868_100_000, rep=0, ack=False, oob=False), 0, out, at)
    engine.handle(Frame(station="0002", device=DEVICE, seqNumber=3, time=1_700_000_101_000,
                        data=encode_status(3.3, 21.0), rssi=-100.0, snr=10.0, freq=868_100_000, rep=0, ack=False,
                        oob=True), 0, out, 1_700_000_101.0)
    out.messages.clear()
    out.advanced.clear()
    deliveries = route(v, out)[DELIVERIES]
    assert [(d["callbackId"], d["kind"]) for d in deliveries] == [("err", "ERROR"), ("err", "RESTORED"),
                                                                  ("status", "STATUS")]
    status = deliveries[2]["variables"]
    assert (status["batt"], status["temp"], status["lat"], status["lng"]) == (3.3, 21.0, 43, 1)


def test_custom_data_reaches_data_advanced_callbacks_too():
    v = view(callback("adv", 5, payload_config="level::uint:16"))
    (d,) = route(v, engine_records(v))[DELIVERIES]
    assert d["variables"]["customData#level"] == str(0x0A0B)


def test_a_callback_that_does_not_compile_fails_its_delivery_saying_so_keyed_by_device():
    v = view(callback("broken", url="https://receiver.example/{nope}"), callback("hook", 1, downlink_hook=True,
                                                                                 url="https://r.example/{nope}"),
             dtype={"downlink_mode": 1})
    stage = RouterStage(v, clock=lambda: ROUTED_AT)
    records = engine_records(v, ack=True)
    tp = TopicPartition(topic(MESSAGES), 0)
    outputs = stage.process({tp: [ConsumerRecord(tp.topic, 0, 0, 0, 0, b"k", encode_message(records.messages[0]),
                                                 None, 0, 0, [])]})
    results = [decode_delivery_result(o.value) for o in outputs if o.topic == topic(DELIVERY_RESULTS)]
    assert sorted(r["callbackId"] for r in results) == ["broken", "hook"]
    assert {r["info"] for r in results} == {"callback: callback could not be compiled"}
    assert {o.key for o in outputs} == {DEVICE.encode()}
    (ack,) = [decode_device_event(o.value) for o in outputs if o.topic == topic(DEVICE_EVENTS)]
    assert ack["deviceTypeId"] == DTYPE and ack["infoCode"] == int(InfoCode.NO_ANSWER)
    assert ack["infoMessage"] == "No answer: the downlink callback could not be rendered: " \
                                 "callback: callback could not be compiled"

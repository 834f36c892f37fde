"""Every record on a topic: its builder, encoder and decoder round-trip, and a bad record is refused
naming the field (a missing field KeyError, a wrong type TypeError, not an object AttributeError)."""
from __future__ import annotations

import dataclasses

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backhaul import settings as settings_module
from backhaul.topics import topic
from schemas import (
    advanced_messages,
    config_records,
    deliveries,
    delivery_results,
    device_events,
    device_state,
    downlink_reports,
    downlinks,
    frames,
    messages,
)
from schemas.dead_letters import DeadLetter
from schemas.fields import Fields
from schemas.topics import ALL_TOPICS, FRAMES, topic_name

hex_id = st.text("0123456789ABCDEF", min_size=1, max_size=8)
station_id = st.text("0123456789ABCDEF", min_size=4, max_size=4)
ms = st.integers(0, 2**53)
maybe_text = st.none() | st.text(max_size=20)
registration = st.none() | st.integers(1, 2**31)

frames_ = st.builds(frames.Frame, station=station_id, device=hex_id, seqNumber=st.integers(0, 4095), time=ms,
                    data=st.binary(max_size=12).map(bytes.hex), rssi=st.floats(-200, 0), snr=st.floats(-50, 100),
                    freq=st.integers(0, 6_000_000_000), rep=st.integers(1, 3), ack=st.booleans(), oob=st.booleans())
subjects = st.builds(device_events.Subject, device=hex_id, device_type_id=maybe_text, group_id=maybe_text,
                     registration_id=registration)


# Messages -----------------------------------------------------------------
@given(frames_, maybe_text, maybe_text, registration, st.floats(-50, 100) | st.just("N/A"), st.booleans(), ms,
       st.none() | st.tuples(st.floats(-90, 90), st.floats(-180, 180)))
def test_a_first_reception_round_trips(frame, device_type_id, group_id, registration_id, avg_snr, over_quota,
                                       at, position):
    m = messages.first_reception("m-1", frame, device_type_id=device_type_id, group_id=group_id,
                                 registration_id=registration_id, avg_snr=avg_snr, over_quota=over_quota,
                                 ingested_at_ms=at, station_position=position)
    assert messages.decode_message(messages.encode_message(m)) == m
    assert (m["id"], m["duplicate"], m["device"], m["seqNumber"]) == ("m-1", False, frame.device, frame.seqNumber)
    assert ("lat" in m) == (position is not None)


@given(frames_, registration)
def test_a_duplicate_reception_round_trips_and_names_its_message(frame, registration_id):
    m = messages.duplicate_reception("m-1", frame, device_type_id="t", group_id="g",
                                     registration_id=registration_id)
    assert messages.decode_message(messages.encode_message(m)) == m
    assert (m["id"], m["messageId"], m["duplicate"]) == (f"m-1:{frame.station}", "m-1", True)
    assert "avgSnr" not in m and "ingestedAt" not in m


def message() -> messages.Message:
    frame = frames.Frame("1A2B", "00AB12CD", 7, 1764165600000, "c0ffee", -120.5, 10.0, 868_130_000, 1, False, False)
    return messages.first_reception("00AB12CD-7-1764165600000", frame, device_type_id="t", group_id="g",
                                    registration_id=3, avg_snr="N/A", over_quota=False, ingested_at_ms=1)


def advanced() -> advanced_messages.AdvancedMessage:
    return advanced_messages.advanced_message(
        "m-1", "00AB12CD", device_type_id="t", group_id="g", registration_id=3, seq_number=7, time_ms=1000,
        data="c0ffee", ack=False, duplicates=[{"bsId": "1A2B", "rssi": -120.5, "snr": 10.0, "nbRep": 3},
                                              {"bsId": "1A2C", "rssi": -100.0, "snr": 12.0, "nbRep": 1}],
        rinfos=[{"baseStation": "1A2B", "rssi": -120.5, "snr": 10.0, "freq": 868_130_000, "rep": 3}],
        lqi="Good", link_quality=2, computed_location={"source": 2, "status": 20}, operator_name="Backhaul",
        country_code="000", deadline_ms=26000, fixed_position=(43.6, 1.44))


def test_an_advanced_message_round_trips_and_counts_its_receptions():
    a = advanced()
    assert advanced_messages.decode_advanced_message(advanced_messages.encode_advanced_message(a)) == a
    assert (a["id"], a["messageId"], a["nbStations"], a["nbFrames"]) == ("m-1:advanced", "m-1", 2, 4)
    assert (a["fixedLat"], a["fixedLng"]) == (43.6, 1.44)


# Device events --------------------------------------------------------------
def every_event(subject: device_events.Subject, at: int) -> list[device_events.DeviceEvent]:
    return [
        device_events.sequence_break(subject, at, message_id="m-9", last_seq=5, seq=9, missing=3),
        device_events.out_of_sequence(subject, at, seq=4, frame_time=900, last_seq=9),
        device_events.keep_alive_error(subject, at, deadline_key_ms=at - 1, info="No message", last_seen_ms=5),
        device_events.restored(subject, at, message_id="m-10", info="Messages received again", last_error_time_ms=7),
        device_events.service_frame("STATUS", subject, at, message_id="m-11-oob", seq=11, station="1A2B",
                                    rssi=-100.0, snr=9.5, avg_snr="N/A", frame_time=at, decoded={"batt": 3.3}),
        device_events.acknowledge(subject, at, message_id="m-12", info_code=0, info_message="Acked",
                                  downlink_ack=True, downlink_overusage=False, station="1A2B"),
    ]


@given(subjects, ms)
def test_every_device_event_round_trips_with_a_stable_id(subject, at):
    events = every_event(subject, at)
    for event in events:
        assert device_events.decode_device_event(device_events.encode_device_event(event)) == event
        assert event["id"].startswith(f"{subject.device}:{event['type']}:") and event["time"] == at
        assert (event["deviceTypeId"], event["groupId"], event["registrationId"]) == (
            subject.device_type_id, subject.group_id, subject.registration_id)
    assert [e["id"] for e in events] == [e["id"] for e in every_event(subject, at)]
    assert events[1]["id"] == f"{subject.device}:OUT_OF_SEQUENCE:4:900"
    assert events[2]["id"] == f"{subject.device}:ERROR:{at - 1}"


def test_an_acknowledge_has_a_station_only_when_a_station_reported():
    subject = device_events.Subject("AB", None, None, None)
    decided = device_events.acknowledge(subject, 1, message_id="m", info_code=8, info_message="Invalid",
                                        downlink_ack=False, downlink_overusage=False)
    reported = device_events.acknowledge(subject, 1, message_id="m", info_code=4, info_message="Network error",
                                         downlink_ack=False, downlink_overusage=False, station=None)
    assert "station" not in decided and reported["station"] is None


def test_an_event_lacking_what_its_type_needs_is_refused():
    event = every_event(device_events.Subject("AB", None, None, None), 5)[2]  # ERROR
    del event["info"]
    with pytest.raises(KeyError, match="'info'"):
        device_events.decode_device_event(orjson.dumps(event))
    odd = {"id": "x", "type": "SOMETHING_NEW", "device": "AB", "time": 1, "note": "kept"}
    assert device_events.decode_device_event(orjson.dumps(odd)) == odd  # a type not known here: its head only


# Deliveries -------------------------------------------------------------------
def delivery(**changes) -> deliveries.Delivery:
    d = deliveries.new_delivery(message(), callback_id="cb", kind="DATA", channel="URL", device_type_id="t",
                                message_id="00AB12CD-7-1764165600000", origin_ms=1000, created_ms=2000,
                                variables={"data": "c0ffee"}, downlink=True)
    d["request"] = deliveries.http_request("POST", "http://x/in", {"X": "1"}, b"c0ffee", "text/plain")
    d.update(changes)  # type: ignore[typeddict-item]
    return d


def test_a_delivery_round_trips_with_its_stable_id_and_key():
    d = delivery()
    assert deliveries.decode_delivery(deliveries.encode_delivery(d)) == d
    assert (d["id"], d["recordId"], d["messageTime"], d["request"]["body"]) == (
        "00AB12CD-7-1764165600000/cb", "00AB12CD-7-1764165600000", 1764165600000, "c0ffee")
    assert deliveries.delivery_key(d) == b"00AB12CD"
    assert deliveries.delivery_key(delivery(channel="BATCH_URL")) == b"cb"
    assert deliveries.delivery_key({"channel": "URL"}) is None  # a broken record: no key, no crash


def test_a_direct_delivery_is_named_after_its_channel():
    d = deliveries.new_delivery(message(), callback_id=None, kind="DOWNLINK", channel="DIRECT", device_type_id="t",
                                message_id="m", origin_ms=1, created_ms=2, variables={"station": "1A2B"})
    d["downlinkTemplate"] = "{tapId}0000{time}"
    assert d["id"] == "00AB12CD-7-1764165600000/direct"
    assert deliveries.decode_delivery(deliveries.encode_delivery(d)) == d


def test_a_replay_keeps_the_first_id_for_receivers_and_counts_its_replays():
    first = deliveries.replayed(delivery(), 5000)
    second = deliveries.replayed(first, 6000)
    assert (first["id"], first["webhookId"], first["scheduleFrom"]) == ("00AB12CD-7-1764165600000/cb#r1",
                                                                        "00AB12CD-7-1764165600000/cb", 5000)
    assert (second["id"], second["webhookId"]) == ("00AB12CD-7-1764165600000/cb#r2", "00AB12CD-7-1764165600000/cb")


@pytest.mark.parametrize(("raw", "reason"), [
    (b"not json", "delivery: not JSON"),
    (b"[1]", "delivery: type must be a JSON object, got list"),
    (orjson.dumps({**delivery(), "origin": "soon"}), "origin: type must be int or float, got str"),
    (orjson.dumps({k: v for k, v in delivery().items() if k != "request"}), "request: missing"),
])
def test_a_bad_delivery_is_refused_naming_the_field(raw, reason):
    with pytest.raises(deliveries.InvalidDelivery) as refused:
        deliveries.decode_delivery(raw)
    assert str(refused.value).startswith(reason)


# Delivery results -------------------------------------------------------------
@given(st.integers(1, 5), st.integers(100, 600), st.none() | st.integers(0, 2**40), st.booleans())
def test_a_completed_send_says_final_dead_or_when_next(attempt, status, next_at, dead):
    d = delivery()
    dead_delivery = d if dead and next_at is None else None
    r = delivery_results.done(d, send_id="s1", attempt=attempt, sent_at_ms=10, now_ms=20, status=status,
                              error_class="ok" if status < 300 else "http_5xx", info=None, latency_ms=3.5,
                              answer="", next_attempt_at_ms=next_at, dead_delivery=dead_delivery)
    assert delivery_results.decode_delivery_result(delivery_results.encode_delivery_result(r)) == r
    assert r["final"] == (next_at is None) and r["dead"] == (dead_delivery is not None)
    assert ("nextAttemptAt" in r) == (next_at is not None) and ("delivery" in r) == (dead_delivery is not None)
    assert (r["deliveryId"], r["callbackId"], r["state"]) == (d["id"], "cb", delivery_results.DONE)


def test_an_announcement_round_trips_without_a_status():
    r = delivery_results.sending(delivery(), "s1", 1, 10)
    assert delivery_results.decode_delivery_result(delivery_results.encode_delivery_result(r)) == r


def test_a_completed_send_without_its_status_is_refused():
    r = dict(delivery_results.done(delivery(), send_id="s", attempt=1, sent_at_ms=1, now_ms=1, status=200,
                                   error_class="ok", info=None, latency_ms=1.0))
    with pytest.raises(TypeError, match=r"^delivery result\.status: type must be int, got str$"):
        delivery_results.decode_delivery_result(orjson.dumps({**r, "status": "200"}))
    del r["status"]
    with pytest.raises(KeyError, match="'status'"):
        delivery_results.decode_delivery_result(orjson.dumps(r))


# Downlinks and reports ----------------------------------------------------------
def test_a_granted_downlink_and_its_report_round_trip():
    d = delivery(variables={"station": "1A2B"})
    downlink = downlinks.granted(d, "0011223344556677", created_ms=3000, transmit_by_ms=22000)
    assert downlinks.decode_downlink(downlinks.encode_downlink(downlink)) == downlink
    assert (downlink["id"], downlink["source"], downlink["station"]) == (d["recordId"], "CALLBACK", "1A2B")
    assert downlinks.granted({**d, "channel": "DIRECT"}, "00" * 8, created_ms=1, transmit_by_ms=2)["source"] == "DIRECT"
    sent = downlink_reports.report(downlink, station="1A2C", reason=None, now_ms=4000)
    late = downlink_reports.report(downlink, station=None, reason="too late", now_ms=4000)
    for r in (sent, late):
        assert downlink_reports.decode_downlink_report(downlink_reports.encode_downlink_report(r)) == r
    assert (sent["transmitted"], late["transmitted"], late["reason"]) == (True, False, "too late")
    assert downlink["uplinkTime"] == 1764165600000 and sent["uplinkTime"] == 1764165600000, "the uplink's own time"


def test_a_direct_grant_carries_its_template_and_its_transmission_the_data_rendered():
    d = deliveries.new_delivery(message(), callback_id=None, kind="DOWNLINK", channel="DIRECT", device_type_id="t",
                                message_id="m", origin_ms=1, created_ms=2, variables={"station": "1A2B", "rssi": -99.0})
    d["downlinkTemplate"] = "{tapId}{rssi}{time}"
    grant = downlinks.granted(d, None, created_ms=3000, transmit_by_ms=22000)
    assert (grant["template"], grant["station"], grant["rssi"], "data" in grant) == (
        "{tapId}{rssi}{time}", "1A2B", -99.0, False)
    assert downlinks.decode_downlink(downlinks.encode_downlink(grant)) == grant
    sent = downlinks.transmission(grant, station="1A2C", rssi=-90.0, data_hex="00" * 8, now_ms=21000)
    assert "template" not in sent and (sent["station"], sent["rssi"], sent["data"], sent["leftAt"]) == (
        "1A2C", -90.0, "00" * 8, 21000)
    assert downlinks.decode_transmission(downlinks.encode_downlink(sent)) == sent
    with pytest.raises(KeyError, match="'data'"):  # a grant with neither data nor a template
        downlinks.decode_downlink(orjson.dumps({k: v for k, v in grant.items() if k != "template"}))
    with pytest.raises(KeyError, match="'data'"):  # a grant is not a transmission
        downlinks.decode_transmission(downlinks.encode_downlink(grant))


# Device state, config, frames, dead letters ---------------------------------------
def test_a_device_state_round_trips_and_an_old_one_without_registration_is_read():
    state: device_state.DeviceStateRecord = {
        "d": "AB", "ls": 7, "lt": 1000, "ts": None, "w": [["AB-7-1000", 7, 1000, 1.5, 26.5, "01", False, False,
                                                           {"0001": [-120.0, 10.0, 2, 868130000]}, 3]],
        "ow": [], "c": [[6, 20.5]], "ds": 0, "seen": 1.5, "ka": None, "br": None, "day": 0, "dc": 1,
        "snr": [10.0], "rg": 3}
    assert device_state.decode_device_state(device_state.encode_device_state(state)) == state
    old = {k: v for k, v in state.items() if k != "rg"}
    assert device_state.decode_device_state(orjson.dumps(old)) == old


def test_a_config_record_is_a_keyed_row_with_its_change_time():
    raw = config_records.encode_config_row({"id": "cb1", "enabled": True}, 1234)
    assert config_records.decode_config_row("callback:cb1", raw) == {"id": "cb1", "enabled": True,
                                                                      "_changed_at": 1234}
    assert config_records.split_config_key(config_records.config_key("callback", "a:b")) == ("callback", "a:b")
    with pytest.raises(ValueError, match="config record 'device:X': the value must be a JSON object"):
        config_records.decode_config_row("device:X", b"[1]")


@given(frames_)
def test_a_frame_a_station_publishes_is_the_frame_ingest_reads(frame):
    assert frames.decode_frame(frames.encode_frame(frame.to_dict())) == frame


def test_a_rejection_round_trips():
    key, value = frames.rejection("station.format", "station: format not hex", key=b"k", value=b"{}",
                                  topic="frames", partition=1, offset=2, time_ms=3)
    rejected = frames.decode_rejection(value)
    assert (key, rejected["reason"], rejected["raw"]["length"], rejected["offset"]) == (b"k", "station.format", 2, 2)


def test_a_dead_letter_missing_a_field_is_refused_naming_it():
    letter = DeadLetter.describe("router", "messages", 0, 1, b"k", b"v", "KeyError", "'time'", "tb", 1, 5)
    body = letter.to_dict()
    del body["errorType"]
    with pytest.raises(KeyError, match="'errorType'"):
        DeadLetter.decode(orjson.dumps(body))


# Every decoder refuses a bad record naming the field --------------------------------
SAMPLES: list[tuple[str, object, Fields, bytes]] = [
    ("message", messages.decode_message, messages.REQUIRED, messages.encode_message(message())),
    ("advanced message", advanced_messages.decode_advanced_message, advanced_messages.REQUIRED,
     advanced_messages.encode_advanced_message(advanced())),
    ("device event", device_events.decode_device_event, device_events.REQUIRED,
     device_events.encode_device_event(every_event(device_events.Subject("AB", "t", "g", 1), 5)[0])),
    ("delivery result", delivery_results.decode_delivery_result, delivery_results.REQUIRED,
     delivery_results.encode_delivery_result(delivery_results.sending(delivery(), "s1", 1, 10))),
    ("downlink", downlinks.decode_downlink, downlinks.REQUIRED,
     downlinks.encode_downlink(downlinks.granted(delivery(), "00" * 8, created_ms=1, transmit_by_ms=2))),
    ("downlink transmission", downlinks.decode_transmission, downlinks.REQUIRED + downlinks.TRANSMISSION,
     downlinks.encode_downlink(downlinks.transmission(downlinks.granted(delivery(), "00" * 8, created_ms=1,
                                                                        transmit_by_ms=2),
                                                      station="1A2B", rssi=-90.0, data_hex="00" * 8, now_ms=2))),
    ("downlink report", downlink_reports.decode_downlink_report, downlink_reports.REQUIRED,
     downlink_reports.encode_downlink_report(downlink_reports.report(
         downlinks.granted(delivery(), "00" * 8, created_ms=1, transmit_by_ms=2), station=None, reason="x",
         now_ms=3))),
]
WRONG = {str: 12, int: "12", float: "12.5", bool: "yes", list: {}, dict: []}


@pytest.mark.parametrize(("name", "decode", "required", "raw"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_every_decoder_names_the_missing_or_mistyped_field(name, decode, required, raw):
    record = orjson.loads(raw)
    assert decode(raw) == record
    with pytest.raises(AttributeError, match=f"^{name}: type must be a JSON object, got list$"):
        decode(orjson.dumps([record]))
    for field, kinds in required:
        with pytest.raises(KeyError) as missing:
            decode(orjson.dumps({k: v for k, v in record.items() if k != field}))
        assert missing.value.args == (field,)
        wrong = WRONG[kinds[0]]
        with pytest.raises(TypeError, match=rf"^{name}\.{field}: type must be .*, got {type(wrong).__name__}$"):
            decode(orjson.dumps({**record, field: wrong}))
    with pytest.raises(orjson.JSONDecodeError):
        decode(b"\xff not JSON")


@given(st.sampled_from(SAMPLES), st.dictionaries(st.text(min_size=1, max_size=10).map("x-".__add__),
                                                st.integers(-2**63, 2**63 - 1) | st.text(), max_size=3))
def test_fields_a_record_does_not_list_are_left_alone(sample, extra):
    _, decode, required, raw = sample
    record = {**extra, **orjson.loads(raw)}
    assert decode(orjson.dumps(record)) == record


def test_true_is_not_an_integer():
    with pytest.raises(TypeError, match=r"^message\.seqNumber: type must be int, got bool$"):
        messages.decode_message(orjson.dumps({**message(), "seqNumber": True}))


# Topic names ---------------------------------------------------------------------
def test_topic_names_take_their_prefix_and_the_runtime_applies_the_configured_one(monkeypatch):
    assert topic_name(FRAMES, "bench.x.") == "bench.x.frames"
    assert len({spec.name for spec in ALL_TOPICS}) == len(ALL_TOPICS)
    monkeypatch.setenv("BACKHAUL_TOPIC_PREFIX", "t.42.")
    settings_module.settings.cache_clear()
    try:
        assert topic(FRAMES) == "t.42.frames"
    finally:
        monkeypatch.undo()
        settings_module.settings.cache_clear()


def test_schemas_import_nothing_of_ours():
    import ast
    from pathlib import Path

    ours = {"backhaul", "ingest", "router", "workers", "store", "oss", "bench", "program", "simulator",
            "callback_language", "radio"}
    for path in Path(frames.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not {n.split(".")[0] for n in names} & ours, f"{path.name} imports {names}"


def test_a_frame_record_has_the_frame_fields():
    assert set(frames.FrameRecord.__annotations__) == {f.name for f in dataclasses.fields(frames.Frame)}

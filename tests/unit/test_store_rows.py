"""What the store writes for each record (store/stage.py), read before any SQL runs: the rows a batch
makes per table, how a batch's device status merges, and which sends and undelivered records it keeps.
How a batch's rows become statements (one per table, `Columns`; a key written twice in rounds) is checked
here too. Writing them to PostgreSQL (the SQL, its idempotence, reading back, one batch against the same
records one by one) is tested on the real database in tests/stages/test_store_stage.py and tests/integration."""
from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from backhaul.topics import topic
from callback_language.downlink import InfoCode, ack_event
from ingest.engine import IngestEngine, Outputs
from schemas import delivery_results as results
from schemas.advanced_messages import encode_advanced_message
from schemas.deliveries import http_request, new_delivery
from schemas.delivery_results import encode_delivery_result
from schemas.device_events import encode_device_event
from schemas.downlinks import encode_downlink, granted, transmission
from schemas.frames import Frame
from schemas.messages import encode_message
from schemas.topics import (
    DELIVERY_RESULTS,
    DEVICE_EVENTS,
    DOWNLINK_TRANSMISSIONS,
    DOWNLINKS,
    MESSAGES,
    MESSAGES_ADVANCED,
)
from store.stage import (
    Columns,
    Rows,
    StoreStage,
    later_sends,
    merged_sends,
    rounds,
    status_statements,
    undelivered_callback,
)

DEVICE = "1A2B"


class Config:
    def __init__(self, keep_alive: int = 60) -> None:
        self.devices = {DEVICE: {"id": DEVICE, "device_type_id": "dt", "group_id": "g", "state": 0,
                                 "registration_id": 3}}
        self.device_types = {"dt": {"id": "dt", "keep_alive": keep_alive}}
        self.stations = {"0001": {"lat": 43.0, "lng": 1.0}, "0002": {"lat": 43.1, "lng": 1.0},
                         "0003": {"lat": 43.0, "lng": 1.1}, "0009": {"lat": None, "lng": None}}


def ingest(seqs=(7,), stations=("0001", "0002"), keep_alive: int = 60) -> Outputs:
    engine = IngestEngine(Config(keep_alive), window_s=25.0)
    out = Outputs()
    for i, seq in enumerate(seqs):
        at = 1_700_000_000.0 + 100 * i
        for station in stations:
            engine.handle(Frame(station=station, device=DEVICE, seqNumber=seq, time=int(at * 1000), data="beef",
                                rssi=-110.0, snr=9.0, freq=868_100_000, rep=0, ack=False, oob=False), 0, out, at)
        out.extend(engine.tick(at + 25))
    out.extend(engine.tick(1_800_000_000.0))  # the keep-alive breach, if any
    return out


def records(topic_name: str, values: list[bytes]) -> dict[TopicPartition, list[ConsumerRecord]]:
    tp = TopicPartition(topic(topic_name), 0)
    return {tp: [ConsumerRecord(tp.topic, 0, n, 0, 0, DEVICE.encode(), v, None, 0, 0, []) for n, v in enumerate(values)]}


def store_rows(batch: dict) -> tuple[StoreStage, Rows]:
    stage = StoreStage(pool=None)
    assert stage.process(batch) == []  # the store publishes nothing: it writes
    merged = Rows()
    for _, rows in stage._pending:
        merged.add(rows)
    return stage, merged


def test_a_message_is_one_row_and_its_duplicates_none():
    out = ingest()
    _, rows = store_rows(records(MESSAGES, [encode_message(m) for m in out.messages]))
    (row,) = rows.messages
    m = out.messages[0]
    assert row == (m["id"], DEVICE, "dt", m["time"], 7, "beef", False,
                   [{"baseStation": "0001", "rssi": -110.0, "snr": 9.0, "freq": 868_100_000, "rep": 1}], False, 3)
    assert rows.status == {(DEVICE, 3): {"seq": 7, "last_com": m["time"]}}
    assert not (rows.advanced or rows.events or rows.attempts or rows.undelivered)


def test_data_advanced_keeps_every_station_its_quality_and_location():
    out = ingest(stations=("0001", "0002", "0003"))
    _, rows = store_rows(records(MESSAGES_ADVANCED, [encode_advanced_message(a) for a in out.advanced]))
    (row,) = rows.advanced
    a = out.advanced[0]
    assert row == (a["messageId"], DEVICE, "dt", a["time"], 7, "beef", False, a["rinfos"], a["nbFrames"],
                   a["linkQuality"], a["computedLocation"], 3)
    assert [r["baseStation"] for r in row[7]] == ["0001", "0002", "0003"]
    assert a["computedLocation"]["status"] == 1
    assert rows.status == {(DEVICE, 3): {"lqi": a["linkQuality"], "location": a["computedLocation"]}}


def test_an_uplink_asking_for_a_downlink_and_one_over_its_quota_are_stored_as_such():
    m = ingest().messages[0]
    flagged = {**m, "ack": True, "overQuota": True}
    _, rows = store_rows(records(MESSAGES, [encode_message(flagged)]))
    assert rows.messages[0][6] is True and rows.messages[0][8] is True
    a = {**ingest().advanced[0], "ack": True}
    _, rows = store_rows(records(MESSAGES_ADVANCED, [encode_advanced_message(a)]))
    assert rows.advanced[0][6] is True


def test_a_location_that_could_not_be_computed_does_not_replace_the_last_one():
    out = ingest(stations=("0009",))  # a station whose position is not known
    assert out.advanced[0]["computedLocation"] == {"source": 2, "status": 20}
    _, rows = store_rows(records(MESSAGES_ADVANCED, [encode_advanced_message(a) for a in out.advanced]))
    assert rows.status == {(DEVICE, 3): {"lqi": out.advanced[0]["linkQuality"]}}


def test_events_set_the_com_state_and_the_trashed_sequence_number():
    out = ingest(seqs=(7, 3), stations=("0001",))  # the keep-alive ERROR 60 s after 7; then 3, after 7: trashed, OUT_OF_SEQUENCE
    events = out.events
    assert [e["type"] for e in events] == ["ERROR", "OUT_OF_SEQUENCE"]
    _, rows = store_rows(records(DEVICE_EVENTS, [encode_device_event(e) for e in events]))
    assert [(r[0], r[2], r[3], r[5]) for r in rows.events] == [(e["id"], e["type"], e["time"], 3) for e in events]
    assert rows.events[1][4] == events[1]
    assert rows.status == {(DEVICE, 3): {"trash": 3, "com_state": 3}}
    restored = [e for e in ingest(seqs=(7, 8), stations=("0001",)).events if e["type"] == "RESTORED"]
    _, rows = store_rows(records(DEVICE_EVENTS, [encode_device_event(e) for e in restored]))
    assert rows.status == {(DEVICE, 3): {"com_state": 1}}


def test_a_batch_merges_a_devices_status_in_order_keeping_the_latest_last_com():
    a, b = Rows(), Rows()
    a.device(DEVICE, 3).update(seq=10, last_com=5_000, lqi=2)
    b.device(DEVICE, 3).update(seq=11, last_com=4_000)  # read later, but an older frame time
    b.device(DEVICE, 4)["seq"] = 1  # another registration is its own row
    a.add(b)
    assert a.status == {(DEVICE, 3): {"seq": 11, "last_com": 5_000, "lqi": 2}, (DEVICE, 4): {"seq": 1}}
    c = Rows()
    c.device(DEVICE, 3)["last_com"] = 6_000
    a.add(c)
    assert a.status[(DEVICE, 3)]["last_com"] == 6_000
    assert not Rows() and a


def test_empty_rows_are_falsy_and_any_table_or_status_makes_them_true():
    for fill in (lambda r: r.messages.append(()), lambda r: r.undelivered.append(()),
                 lambda r: r.device("d", None), lambda r: r.succeeded.update(cb=1),
                 lambda r: r.given_up.append(("cb", 1))):
        rows = Rows()
        fill(rows)
        assert rows


def delivery(callback_id: str = "cb", **extra) -> dict:
    d = new_delivery({"id": "m1", "device": DEVICE, "time": 1_700_000_000_000, "data": "beef", "snr": 9.0,
                      "groupId": "g", "registrationId": 3},
                     callback_id=callback_id, kind="DATA_UPLINK", channel="URL", device_type_id="dt",
                     message_id="m1", origin_ms=1_700_000_000_000, created_ms=1_700_000_001_000,
                     variables={"device": DEVICE})
    d["request"] = http_request("POST", "https://r.example/x", {"X-A": "1"}, b"body", "text/plain")
    d.update(extra)
    return d


def test_a_send_is_announced_then_completed_in_one_row_per_send():
    d = delivery()
    announced = results.sending(d, "s1", 1, 1_700_000_002_000)
    completed = results.done(d, send_id="s1", attempt=1, sent_at_ms=1_700_000_002_000, now_ms=1_700_000_002_300,
                             status=500, error_class="http_5xx", info="HTTP 500", latency_ms=300.0,
                             next_attempt_at_ms=1_700_000_062_000)
    _, rows = store_rows(records(DELIVERY_RESULTS, [encode_delivery_result(announced),
                                                    encode_delivery_result(completed)]))
    assert rows.attempts[0] == ("s1", d["id"], "m1", DEVICE, "cb", 1_700_000_002_000, None, results.SENDING_INFO,
                                None, None, None, 3)
    assert rows.attempts[1] == ("s1", d["id"], "m1", DEVICE, "cb", 1_700_000_002_000, 500, "HTTP 500", 300.0,
                                "http_5xx", None, 3)
    assert merged_sends(rows.attempts) == [rows.attempts[1]]
    assert not rows.succeeded and not rows.undelivered and not rows.given_up


def test_merged_sends_keep_announcement_order_and_never_reopen_a_completed_send():
    done_a = ("a", "d", None, DEVICE, "cb", 1, 200, "ok", 1.0, "ok", None, None)
    open_a = ("a", "d", None, DEVICE, "cb", 1, None, "sending", None, None, None, None)
    open_b = ("b", "d", None, DEVICE, "cb", 2, None, "sending", None, None, None, None)
    assert merged_sends([open_a, open_b, done_a]) == [done_a, open_b]
    assert merged_sends([done_a, open_a]) == [done_a]


def test_a_success_is_remembered_per_callback_latest_first():
    d = delivery()
    ok = [results.done(d, send_id=f"s{t}", attempt=1, sent_at_ms=t, now_ms=t, status=200, error_class="ok",
                       info=None, latency_ms=1.0) for t in (3_000, 9_000, 5_000)]
    _, rows = store_rows(records(DELIVERY_RESULTS, [encode_delivery_result(r) for r in ok]))
    assert rows.succeeded == {"cb": 9_000}
    assert rows.undelivered == [] and rows.given_up == []


def test_a_given_up_delivery_is_undelivered_at_its_message_time_without_credentials():
    d = delivery()
    d["request"]["auth"] = ["user", "secret"]  # as a delivery written before secrets were sealed
    dead = results.done(d, send_id="s9", attempt=4, sent_at_ms=1_700_000_460_000, now_ms=1_700_000_460_500,
                        status=503, error_class="http_5xx", info="HTTP 503", latency_ms=500.0, dead_delivery=d)
    _, rows = store_rows(records(DELIVERY_RESULTS, [encode_delivery_result(dead)]))
    (row,) = rows.undelivered
    assert row[:12] == (d["id"], DEVICE, "dt", "g", "cb", "m1", 1_700_000_000_000, "beef", 9.0, 503, "HTTP 503",
                        {"method": "POST", "url": "https://r.example/x", "headers": {"X-A": "1"}, "body": "body",
                         "contentType": "text/plain"})
    assert row[12] == {"device": DEVICE} and row[13]["id"] == d["id"] and row[14] == 3
    assert rows.given_up == [("cb", 1_700_000_001_000)]  # the schedule started when it was routed
    replayed = delivery(scheduleFrom=1_700_000_900_000)
    dead = results.done(replayed, send_id="s10", attempt=4, sent_at_ms=1, now_ms=2, status=503,
                        error_class="http_5xx", info="HTTP 503", latency_ms=1.0, dead_delivery=replayed)
    _, rows = store_rows(records(DELIVERY_RESULTS, [encode_delivery_result(dead)]))
    assert rows.given_up == [("cb", 1_700_000_900_000)]  # a replay's schedule is its own


def test_the_undelivered_callback_of_an_email_is_its_mail():
    d = delivery()
    del d["request"]
    d["email"] = {"recipient": "ops@example.com", "subject": "s", "body": "b"}
    assert undelivered_callback(d) == {"recipient": "ops@example.com", "subject": "s", "message": "b"}
    assert undelivered_callback({"id": "x"}) == {}  # DIRECT, or a record without its request


def test_a_record_that_cannot_be_read_leaves_no_row_and_the_batch_goes_on():
    out = ingest()
    stage, rows = store_rows(records(MESSAGES, [b"{broken", encode_message(out.messages[0])]))
    assert len(rows.messages) == 1 and len(stage._pending) == 1 and len(stage._dead) == 1


def test_records_from_before_send_ids_and_announcements_are_still_stored_whole():
    """A result written by an earlier version: no sendId, no sentAt, no state, a dead one without its delivery."""
    old_done = {"deliveryId": "m1/cb", "callbackId": "cb", "device": DEVICE, "attempt": 2, "time": 1_700_000_005_000,
                "status": 200, "errorClass": "ok", "info": None, "latencyMs": 12.0, "answer": "thanks",
                "messageId": "m1", "registrationId": 3}
    old_dead = {**old_done, "deliveryId": "m2/cb", "attempt": 4, "time": 1_700_000_009_000, "status": 500,
                "errorClass": "http_5xx", "info": "HTTP 500", "answer": None, "dead": True, "messageId": "m2"}
    _, rows = store_rows(records(DELIVERY_RESULTS, [encode_delivery_result(old_done), encode_delivery_result(old_dead)]))
    assert rows.attempts[0] == ("m1/cb#2", "m1/cb", "m1", DEVICE, "cb", 1_700_000_005_000, 200, None, 12.0, "ok",
                                "thanks", 3)
    assert rows.succeeded == {"cb": 1_700_000_005_000}
    assert rows.given_up == [("cb", 1_700_000_009_000)]  # no delivery: its schedule's start is unknown
    (undelivered,) = rows.undelivered
    assert undelivered[:11] == ("m2/cb", DEVICE, None, None, "cb", "m2", 1_700_000_009_000, None, None, 500,
                                "HTTP 500")
    assert undelivered[11:] == ({}, {}, {}, 3)


def test_a_success_older_than_one_already_in_the_batch_does_not_move_it_back():
    d = delivery()
    ok = [results.done(d, send_id=f"s{t}", attempt=1, sent_at_ms=t, now_ms=t, status=200, error_class="ok",
                       info=None, latency_ms=1.0) for t in (9_000, 3_000)]
    stage, _ = store_rows(records(DELIVERY_RESULTS, [encode_delivery_result(r) for r in ok]))
    one_record = Rows()
    stage._result(ok[0], one_record)
    stage._result(ok[1], one_record)
    assert one_record.succeeded == {"cb": 9_000}


def test_the_store_reads_every_record_it_writes_and_keeps_its_pool():
    stage = StoreStage(pool="the pool")
    assert stage.pool == "the pool" and stage._pending == []
    assert stage.topics == (topic(MESSAGES), topic(MESSAGES_ADVANCED), topic(DEVICE_EVENTS), topic(DELIVERY_RESULTS),
                            topic(DOWNLINKS), topic(DOWNLINK_TRANSMISSIONS))


def test_a_downlink_is_one_row_merged_from_its_grant_its_transmission_and_its_acknowledge():
    """The columns of `message_downlinks` each record sets (None: left as the others set them)."""
    m = {**ingest().messages[0], "ack": True}
    delivery = new_delivery(m, callback_id="bidir", kind="DATA_BIDIR", channel="URL", device_type_id="dt",
                            message_id=m["id"], origin_ms=m["time"], created_ms=m["time"] + 80,
                            variables={"station": "0001", "rssi": -110.0}, downlink=True)
    grant = granted(delivery, "00" * 8, created_ms=m["time"] + 900, transmit_by_ms=m["time"] + 20_000)
    sent = transmission(grant, station="0002", rssi=-99.5, data_hex="00" * 8, now_ms=m["time"] + 19_000)
    acked = ack_event(DEVICE, m["id"], InfoCode.ACKED, device_type_id="dt", group_id="g", now_ms=m["time"] + 19_100,
                      downlink_ack=True, registration_id=3, station="0002", data="00" * 8, uplink_ms=m["time"])
    _, rows = store_rows({**records(DOWNLINKS, [encode_downlink(grant)]),
                          **records(DOWNLINK_TRANSMISSIONS, [encode_downlink(sent)]),
                          **records(DEVICE_EVENTS, [encode_device_event(acked)])})
    head = (m["id"], DEVICE, 3, m["time"])
    assert rows.downlinks == [
        (*head, "CALLBACK", "00" * 8, None, None, m["time"] + 900, None, None, None, None, None, None),
        (*head, "CALLBACK", "00" * 8, "0002", -99.5, None, m["time"] + 19_000, None, None, None, None, None),
        (*head, None, "00" * 8, "0002", None, None, None, 0, acked["infoMessage"], True, False, m["time"] + 19_100)]
    assert [r[0] for r in rows.events] == [acked["id"]], "the event is stored as every event is, too"
    other = {**acked, "type": "ERROR", "info": "No message", "severity": "ERROR"}
    _, rows = store_rows(records(DEVICE_EVENTS, [encode_device_event(other)]))
    assert rows.downlinks == [], "only an ACKNOWLEDGE is a downlink's outcome"


def test_the_undelivered_callback_of_a_channel_with_settings_is_its_message():
    d = delivery(channel="KAFKA")
    del d["request"]
    d["publish"] = {"topic": "sigfox.t1", "body": '{"d": 1}', "contentType": "application/json"}
    assert undelivered_callback(d) == {"channel": "KAFKA", "topic": "sigfox.t1", "body": '{"d": 1}',
                                       "contentType": "application/json"}


def test_a_tables_rows_go_as_one_array_per_column_jsonb_as_its_text():
    cols = Columns("id text, n int, body jsonb, at bigint")
    assert cols.names == "id, n, body, at"
    assert cols.source == "unnest($1::text[], $2::int[], $3::text[]::jsonb[], $4::bigint[]) WITH ORDINALITY " \
                          "AS r(id, n, body, at, ord)"
    assert cols.insert("t") == f"INSERT INTO t(id, n, body, at) SELECT id, n, body, at FROM {cols.source}"
    rows = [("a", 1, [{"rssi": -1.5}], 7), ("b", None, None, 8), ("c", 3, {"é": "x"}, 9)]
    assert cols.arrays(rows) == [["a", "b", "c"], [1, None, 3], ['[{"rssi":-1.5}]', None, '{"é":"x"}'], [7, 8, 9]]


def test_a_key_written_twice_in_a_batch_is_written_again_in_a_later_round():
    rows = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2)]
    assert rounds(rows) == [[("a", 1), ("b", 1), ("c", 1)], [("a", 2), ("b", 2)], [("a", 3)]]
    assert rounds([]) == []


def test_device_status_goes_a_device_once_per_statement_rows_alike_in_what_they_set():
    batch = Rows()
    batch.device("d1", 1).update(seq=1, last_com=10)
    batch.device("d2", 1).update(lqi=2, location={"lat": 1.0})
    batch.device("d3", 1)["com_state"] = 3
    batch.device("d1", 2).update(lqi=1, com_state=1, trash=4)  # d1 registered again
    batch.device("d4", None)["seq"] = 9
    assert status_statements(batch.status) == [
        ([("d1", 1, 10, None, None, None, None, 1), ("d4", 9, None, None, None, None, None, None)], False, False),
        ([("d2", None, None, 2, {"lat": 1.0}, None, None, 1)], True, False),
        ([("d3", None, None, None, None, 3, None, 1)], False, True),
        ([("d1", None, None, 1, None, 1, 4, 2)], True, True)]
    assert status_statements({}) == []


def test_only_a_send_numbered_after_another_can_close_an_earlier_one():
    written = [{"send_id": "first", "attempt": 1}, {"send_id": "again", "attempt": 2}, {"send_id": "x", "attempt": 3}]
    assert later_sends(written) == ["again", "x"]
    assert later_sends([{"send_id": "first", "attempt": 1}]) == []

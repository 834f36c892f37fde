"""Every send on the record: send ids, merging a send's announcement with its completion, and the
sentences a waiting delivery shows in cbStatus."""
from __future__ import annotations

from schemas import delivery_results as results
from store.stage import merged_sends
from workers import waiting

DELIVERY = {"id": "m1/cb", "callbackId": "cb", "messageId": "m1", "device": "00AB", "deviceTypeId": "t",
            "groupId": "g", "registrationId": 3, "kind": "DATA", "channel": "URL"}


def row(send_id: str, status: int | None, info: str = "") -> tuple:
    """A callback_attempts row as the store builds it (send id first, status seventh)."""
    return (send_id, "m1/cb", "m1", "00AB", "cb", 1000, status, info, None, None, None, 3)


def test_every_request_has_its_own_send_id_also_across_restarts():
    import subprocess
    import sys

    ids = {results.new_send_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    code = "from schemas.delivery_results import new_send_id as n; print(*(n() for _ in range(1000)))"
    for _ in range(2):  # a restarted worker counts from 0 again: its prefix differs
        restarted = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        later = set(restarted.stdout.split())
        assert len(later) == 1000 and not later & ids
        ids |= later


def test_an_announcement_says_which_delivery_and_which_try():
    record = results.sending(DELIVERY, "s1", 2, 1234)
    assert results.is_sending(record) and record["sendId"] == "s1" and record["attempt"] == 2
    assert record["sentAt"] == record["time"] == 1234
    assert {k: record[k] for k in ("deliveryId", "callbackId", "messageId", "device", "registrationId")} == {
        "deliveryId": "m1/cb", "callbackId": "cb", "messageId": "m1", "device": "00AB", "registrationId": 3}
    assert "status" not in record


def test_records_from_before_send_ids_are_keyed_by_delivery_and_attempt():
    assert results.send_key({"deliveryId": "m1/cb", "attempt": 2}) == "m1/cb#2"
    assert results.send_key({"deliveryId": "m1/cb", "attempt": 2, "sendId": "s9"}) == "s9"
    assert results.not_sent_id("m1/cb") == "m1/cb:not-sent"


def test_a_completion_replaces_its_announcement_in_announcement_order():
    rows = [row("a", None), row("b", None), row("a", 500), row("c", 200), row("b", 200)]
    assert [(r[0], r[6]) for r in merged_sends(rows)] == [("a", 500), ("b", 200), ("c", 200)]


def test_an_announcement_arriving_after_its_completion_does_not_undo_it():
    assert [(r[0], r[6]) for r in merged_sends([row("a", 200), row("a", None)])] == [("a", 200)]


def test_an_open_send_stays_open_until_its_answer():
    assert [(r[0], r[6]) for r in merged_sends([row("a", None)])] == [("a", None)]


def test_waiting_sentences_name_the_reason_and_the_times():
    held = waiting.circuit_open(1_700_000_000, 1_700_000_030, 1_700_000_460)
    assert held.reason == waiting.CIRCUIT_OPEN
    assert held.info == ("waiting: circuit open (endpoint failing since 2023-11-14T22:13:20Z); next try at "
                         "2023-11-14T22:13:50Z at the earliest; given up at 2023-11-14T22:21:00Z if not sent by then")
    assert waiting.not_sent(held.info) == (
        "not sent, retry schedule over: circuit open (endpoint failing since 2023-11-14T22:13:20Z)")
    limited = waiting.at_limit(4, 2.5, 12)
    assert limited.reason == waiting.AT_LIMIT and "rate limited" in limited.info and "2.5 a second" in limited.info
    assert waiting.retry(2, 4, 1_700_000_060).info == "waiting: try 2 of 4 at 2023-11-14T22:14:20Z"
    assert all(w.info.startswith("waiting: ") for w in (held, limited, waiting.backlog()))

"""Dead letters are bounded; a stage's per-record isolation drops a failing record's outputs and sets it aside."""
from __future__ import annotations

from types import SimpleNamespace

import orjson
from aiokafka import TopicPartition

from backhaul.failures import is_infrastructure
from backhaul.kafka import Out
from backhaul.stage import Stage
from backhaul.topics import topic
from schemas.dead_letters import DeadLetter
from schemas.deliveries import delivery_problem
from schemas.topics import DEAD_LETTERS


class Doubler(Stage):
    """Two outputs per record; a record holding "boom" fails after the first."""

    name = "doubler"

    def process(self, batch):
        return self.each_record(batch, self._one)

    def _one(self, tp, rec, outputs):
        outputs.append(Out("out", None, rec.value))
        if rec.value == b"boom":
            raise KeyError("time")
        outputs.append(Out("out", None, rec.value + b"!"))


def record(offset: int, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic="in", partition=0, offset=offset, key=b"k", value=value)


def test_a_failing_record_is_dead_lettered_and_its_partial_outputs_dropped():
    stage = Doubler()
    out = stage.process({TopicPartition("in", 0): [record(0, b"a"), record(1, b"boom"), record(2, b"b")]})
    assert [o.value for o in out] == [b"a", b"a!", b"b", b"b!"]
    [dead] = stage._take_dead()
    assert dead.out.topic == topic(DEAD_LETTERS) and dead.out.key == b"doubler"
    letter = DeadLetter.decode(dead.out.value)
    assert letter == dead.letter
    assert (letter.stage, letter.topic, letter.partition, letter.offset) == ("doubler", "in", 0, 1)
    assert letter.id == "doubler/in/0/1" and letter.error_type == "KeyError" and letter.error == "'time'"
    assert "raise KeyError" in letter.traceback and letter.value["length"] == 4


def test_a_dead_letter_stays_small_whatever_the_record_and_the_error():
    letter = DeadLetter.describe("store", "messages", 1, 2, b"k" * 1_000_000, b"\x00" * 1_000_000, "DataError",
                                 "e" * 1_000_000, "t" * 1_000_000, 3, 1)
    assert len(letter.encode()) < 8192
    assert DeadLetter.decode(letter.encode()) == letter


def test_unreachable_infrastructure_is_told_from_a_refused_record():
    import asyncpg
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

    assert is_infrastructure(ConnectionRefusedError()) and is_infrastructure(KafkaConnectionError())
    assert is_infrastructure(KafkaTimeoutError()) and is_infrastructure(asyncpg.ConnectionDoesNotExistError())
    assert is_infrastructure(asyncpg.exceptions.CannotConnectNowError())
    assert not is_infrastructure(asyncpg.exceptions.CharacterNotInRepertoireError())
    assert not is_infrastructure(asyncpg.exceptions._base.DataError("invalid input for query argument $1"))
    assert not is_infrastructure(MessageSizeTooLargeError()) and not is_infrastructure(KeyError("x"))


def valid_delivery(**changes) -> dict:
    d = {"id": "m/cb", "callbackId": "cb", "kind": "DATA", "channel": "URL", "recordId": "m", "device": "AB",
         "origin": 1, "createdAt": 2, "variables": {}, "downlink": False,
         "request": {"method": "POST", "url": "http://x/", "headers": {}, "body": "b", "contentType": None,
                     "auth": None}}
    d.update(changes)
    return d


def test_a_delivery_record_is_checked_field_by_field():
    assert delivery_problem(valid_delivery()) is None
    assert delivery_problem([1]) == "delivery: type must be a JSON object, got list"
    assert delivery_problem(valid_delivery(channel="PIGEON")).startswith("channel: must be one of")
    assert delivery_problem(valid_delivery(id=None)) == "id: missing"
    assert delivery_problem(valid_delivery(origin="soon")) == "origin: type must be int or float, got str"
    assert delivery_problem(valid_delivery(request={"url": "http://x/"})) == "request.method: missing"
    assert delivery_problem(valid_delivery(request={"method": "GET", "url": "u", "headers": {"a": 1}})) == \
        "request.headers: every header value must be a string"
    assert delivery_problem(valid_delivery(channel="EMAIL")) == "email: missing"
    assert delivery_problem(valid_delivery(channel="DIRECT", callbackId=None, downlinkTemplate="{tapId}")) is None
    assert delivery_problem(valid_delivery(channel="DIRECT", callbackId=None, downlinkData="00")) is None  # older
    assert delivery_problem(valid_delivery(channel="DIRECT", callbackId=None)) == "downlinkTemplate: missing"
    assert delivery_problem(valid_delivery(channel="DIRECT", callbackId=None, downlinkTemplate=7)) == \
        "downlinkTemplate: type must be str, got int"
    assert delivery_problem(orjson.loads(orjson.dumps(valid_delivery(downlink="yes")))) == \
        "downlink: type must be bool, got str"

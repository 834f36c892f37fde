"""The dead-letter record: a record a stage could not handle, set aside with its error.

A stage that fails on a record (its own code raises, PostgreSQL refuses its
data, its outputs are refused by the broker) publishes one of these to the
`dead-letters` topic, commits the record's offset and goes on. The record is
described, not copied (`schemas.excerpt`): its source topic, partition and
offset say where the full record still is, for as long as the topic keeps it.

    {"id": "router/messages/2/1234", "stage": "router", "topic": "messages",
     "partition": 2, "offset": 1234, "key": {excerpt}, "value": {excerpt},
     "errorType": "KeyError", "error": "'time'", "traceback": "...",
     "attempts": 1, "time": 1764165600000}

`id` is stable: a dead letter published again after a crash has the same id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas.excerpt import bounded_text, excerpt, tail_text
from schemas.fields import Fields, NoneType, checked

ERROR_CHARS = 1000
TRACEBACK_CHARS = 4000
FIELDS: Fields = (("stage", (str,)), ("topic", (str,)), ("partition", (int,)), ("offset", (int,)),
                  ("key", (dict, NoneType)), ("value", (dict, NoneType)), ("errorType", (str,)), ("error", (str,)),
                  ("traceback", (str,)), ("attempts", (int,)), ("time", (int,)))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    stage: str
    topic: str
    partition: int
    offset: int
    key: dict[str, Any] | None
    value: dict[str, Any] | None
    error_type: str
    error: str
    traceback: str
    attempts: int
    time: int

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.topic}/{self.partition}/{self.offset}"

    @classmethod
    def describe(cls, stage: str, topic: str, partition: int, offset: int, key: bytes | None,
                 value: bytes | None, error_type: str, error: str, traceback: str, attempts: int,
                 time_ms: int) -> "DeadLetter":
        """A dead letter for the raw record, with every unbounded part bounded."""
        return cls(stage, topic, partition, offset, excerpt(key), excerpt(value), bounded_text(error_type, 200),
                   bounded_text(error, ERROR_CHARS), tail_text(traceback, TRACEBACK_CHARS), attempts, time_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "stage": self.stage, "topic": self.topic, "partition": self.partition,
                "offset": self.offset, "key": self.key, "value": self.value, "errorType": self.error_type,
                "error": self.error, "traceback": self.traceback, "attempts": self.attempts, "time": self.time}

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes) -> "DeadLetter":
        """The dead letter in a record's value; raises naming the field it cannot use (`schemas.fields`)."""
        v = checked(orjson.loads(raw), "dead letter", FIELDS)
        return cls(v["stage"], v["topic"], v["partition"], v["offset"], v["key"], v["value"], v["errorType"],
                   v["error"], v["traceback"], v["attempts"], v["time"])

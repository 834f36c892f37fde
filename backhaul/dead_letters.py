"""Moving a record a stage cannot handle to the `dead-letters` topic (schemas.dead_letters).

`dead_letter` describes the record; once the dead letter is published,
`announce` counts it (`backhaul_dead_letters_total{stage}`) and logs it at
ERROR with the exception and its traceback (a batch that is tried again
makes its dead letters again: only published ones are counted). The record's
content is never logged: the dead letter describes it (prefix, length,
digest) and says where the full record is.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass

from backhaul import metrics
from backhaul.kafka import Out
from backhaul.topics import topic
from schemas.dead_letters import DeadLetter
from schemas.topics import DEAD_LETTERS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pending:
    """A dead letter to publish, with the exception that made it."""

    out: Out
    letter: DeadLetter
    exc: BaseException


def describe_error(exc: BaseException) -> str:
    """`str(exc)`, or a placeholder when the exception cannot even say what it is."""
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ raises must not stop the stage either
        return f"<{type(exc).__name__} whose message cannot be shown>"


def dead_letter(stage: str, source_topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, exc: BaseException, attempts: int = 1) -> Pending:
    """The dead-letter record for one source record (publish it, then `announce` it)."""
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    letter = DeadLetter.describe(stage, source_topic, partition, offset, key, value, type(exc).__qualname__,
                                 describe_error(exc), trace, attempts, int(time.time() * 1000))
    return Pending(Out(topic(DEAD_LETTERS), stage.encode(), letter.encode()), letter, exc)


def announce(pending: Pending) -> None:
    """Count and log a published dead letter."""
    letter, exc = pending.letter, pending.exc
    metrics.DEAD_LETTERS.labels(letter.stage).inc()
    log.error("record moved to dead-letters", exc_info=(type(exc), exc, exc.__traceback__), extra={
        "stage": letter.stage, "topic": letter.topic, "partition": letter.partition, "offset": letter.offset,
        "errorType": letter.error_type, "error": letter.error[:300], "attempts": letter.attempts})

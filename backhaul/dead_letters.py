"""Moving a record a stage cannot handle to the `dead-letters` topic (schemas.dead_letters).

Every dead letter is also counted (`backhaul_dead_letters_total{stage}`) and
logged at ERROR with the exception and its traceback. The record's content is
never logged: the dead letter describes it (prefix, length, digest) and says
where the full record is.
"""
from __future__ import annotations

import logging
import time
import traceback

from backhaul import metrics
from backhaul.kafka import Out
from schemas.dead_letters import DeadLetter
from schemas.topics import DEAD_LETTERS, topic

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """`str(exc)`, or a placeholder when the exception cannot even say what it is."""
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ raises must not stop the stage either
        return f"<{type(exc).__name__} whose message cannot be shown>"


def dead_letter(stage: str, source_topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, exc: BaseException, attempts: int = 1) -> Out:
    """The dead-letter record for one source record, counted and logged."""
    text = describe_error(exc)
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    letter = DeadLetter.describe(stage, source_topic, partition, offset, key, value, type(exc).__qualname__,
                                 text, trace, attempts, int(time.time() * 1000))
    metrics.DEAD_LETTERS.labels(stage).inc()
    log.error("record moved to dead-letters", exc_info=(type(exc), exc, exc.__traceback__), extra={
        "stage": stage, "topic": source_topic, "partition": partition, "offset": offset,
        "errorType": letter.error_type, "error": letter.error[:300], "attempts": attempts})
    return Out(topic(DEAD_LETTERS), stage.encode(), letter.encode())

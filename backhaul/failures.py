"""Telling a failure of the infrastructure from a record that cannot be handled.

A stage that cannot reach Kafka or PostgreSQL must wait and try again: the
record is fine and nothing may be lost. A record that makes the stage's own
code raise, or that PostgreSQL or the broker refuses for what it holds, will
fail the same way every time: it is moved to `dead-letters` instead
(`backhaul.dead_letters`).
"""
from __future__ import annotations

import asyncpg
from aiokafka import errors as kafka_errors

# PostgreSQL refuses the row for its data: an invalid value (NUL in text, a number out of range,
# bad JSON), a constraint, a value too large for an index. asyncpg's client-side encoding error
# (asyncpg.exceptions._base.DataError, "invalid input for query argument") is also a DataError.
POSTGRES_REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions._base.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
)

_POSTGRES_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,               # connection closed, pool closing
    asyncpg.exceptions.OperatorInterventionError,    # shutting down, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,   # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,     # serialization failure, deadlock: try again
    # The server ended a connection while a pooled one was being released ("cannot switch to
    # state ...; another operation is in progress"): the connection is dropped, a new one is used.
    asyncpg.exceptions._base.InternalClientError,
)

_KAFKA_UNAVAILABLE: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
    # The broker lost or no longer accepts an idempotent producer's sequence (seen after a broker
    # restart): the record is fine, a new producer sends it (every producing step starts one then).
    kafka_errors.OutOfOrderSequenceNumber,
    kafka_errors.UnknownProducerId,
    kafka_errors.InvalidProducerEpoch,
    # A send on a producer that another task stopped after a Kafka failure: sent again on the new one.
    kafka_errors.ProducerClosed,
)


def dependency_of(exc: BaseException) -> str:
    """"kafka" or "postgresql": which one an infrastructure failure comes from (by its type,
    else by the library it was raised in: a refused connection is a plain OSError in both)."""
    if isinstance(exc, kafka_errors.KafkaError):
        return "kafka"
    if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions._base.InternalClientError)):
        return "postgresql"
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if "/aiokafka/" in filename:
            return "kafka"
        if "/asyncpg/" in filename:
            return "postgresql"
        tb = tb.tb_next
    return "postgresql" if isinstance(exc, OSError) else "kafka"


def is_infrastructure(exc: BaseException) -> bool:
    """True when `exc` says Kafka or PostgreSQL is unreachable or busy (retry, never dead-letter)."""
    if isinstance(exc, POSTGRES_REFUSED):
        return False
    if isinstance(exc, (OSError, TimeoutError) + _POSTGRES_UNAVAILABLE + _KAFKA_UNAVAILABLE):
        return True
    return isinstance(exc, kafka_errors.KafkaError) and bool(getattr(exc, "retriable", False))

"""Which dependency a failure comes from, on the real clients failing against a closed port."""
from __future__ import annotations

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from backhaul.failures import dependency_of, is_infrastructure
from program.supervised import free_port


async def test_a_refused_postgresql_connection_is_postgresqls():
    with pytest.raises(OSError) as caught:
        await asyncpg.connect(f"postgresql://nobody@127.0.0.1:{free_port()}/nothing", timeout=5)
    assert is_infrastructure(caught.value) and dependency_of(caught.value) == "postgresql"


async def test_a_refused_kafka_connection_is_kafkas():
    producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_ms=2000)
    try:
        with pytest.raises(Exception) as caught:
            await producer.start()
    finally:
        await producer.stop()
    assert is_infrastructure(caught.value) and dependency_of(caught.value) == "kafka"


def test_by_type():
    assert dependency_of(KafkaTimeoutError()) == "kafka"
    assert dependency_of(asyncpg.exceptions.AdminShutdownError()) == "postgresql"
    # A pooled connection the server ended while it was being released: PostgreSQL away, not the record.
    internal = asyncpg.exceptions._base.InternalClientError("cannot switch to state 15")
    assert is_infrastructure(internal) and dependency_of(internal) == "postgresql"


@pytest.mark.parametrize("error", ["OutOfOrderSequenceNumber", "UnknownProducerId", "InvalidProducerEpoch"])
def test_a_producer_the_broker_forgot_after_a_restart_is_kafka_away_not_a_bad_record(error):
    # Seen after Kafka was stopped and started: the delivery worker dead-lettered good deliveries.
    import aiokafka.errors

    exc = getattr(aiokafka.errors, error)()
    assert is_infrastructure(exc) and dependency_of(exc) == "kafka"

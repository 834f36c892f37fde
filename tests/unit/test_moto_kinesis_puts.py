"""moto's Kinesis, our stand-in for AWS in the channel tests, keeps every record it acknowledged when
requests arrive on several threads at once (tests/moto_server.serialise_kinesis_puts): without it, two
puts could take the same sequence number and one record vanish, and a kill -9 test would blame delivery."""
from __future__ import annotations

import sys
import threading

from moto.kinesis.models import Shard

from tests.moto_server import serialise_kinesis_puts

THREADS, PUTS = 8, 300


def test_concurrent_puts_on_one_shard_keep_every_record():
    serialise_kinesis_puts()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: unserialised, ~10 % are lost so
    try:
        shard = Shard(0, 0, 2**128)
        answers: list[str] = []

        def put(thread: int) -> None:
            for i in range(PUTS):
                answers.append(shard.put_record(f"k{thread}", f"{thread}-{i}".encode(), None))

        threads = [threading.Thread(target=put, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(set(answers)) == THREADS * PUTS, "one sequence number per acknowledged put"
    assert len(shard.records) == THREADS * PUTS, "every acknowledged record kept"

"""A delivery read again from Kafka waits for its first copy, then is released without being sent."""
from __future__ import annotations

import asyncio

from workers.taken import TakenDeliveries


async def test_a_copy_waits_for_the_first_then_goes_at_once():
    taken = TakenDeliveries()
    assert taken.take("m1/cb") is None                     # first: the caller sends it
    copy = taken.take("m1/cb")
    assert copy is not None and not copy.is_set()          # read again while in flight: held
    waiter = asyncio.create_task(copy.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    taken.settled("m1/cb")
    await asyncio.wait_for(waiter, 1)
    assert taken.take("m1/cb").is_set()                    # read again once settled: released at once
    assert taken.take("m1/cb#r1") is None                  # a replay has an id of its own: sent


async def test_the_memory_is_bounded_and_never_holds_a_forgotten_copy():
    taken = TakenDeliveries(capacity=2)
    assert taken.take("a") is None
    copy_of_a = taken.take("a")
    assert taken.take("b") is None and taken.take("c") is None   # "a" is forgotten, still in flight
    assert copy_of_a.is_set()
    assert taken.take("a") is None                          # forgotten: taken again

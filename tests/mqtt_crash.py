"""The kill -9 of a delivery worker mid-flight, for the channels whose messages a Mosquitto subscriber reads
back (MQTT, AZURE_IOT_HUB): the crash is the same, what names a message differs."""
from __future__ import annotations

from collections.abc import Callable

from program.supervised import WorkerProcess
from simulator.network import simulate
from tests.conftest import Pipeline, wait_until
from tests.mosquitto import Got, Subscriber

# Paced (60/s, little burst) so that the kill finds most messages still held by the worker.
CRASH_ENV = {"BACKHAUL_RETRY_SCHEDULE_S": "1,1,1,2,2", "BACKHAUL_RETRY_CLAIM_S": "3",
             "BACKHAUL_ENDPOINT_RATE_PER_S": "60", "BACKHAUL_ENDPOINT_BURST": "10", "BACKHAUL_ENDPOINT_QUEUE": "1000"}


async def kill_9_mid_flight(pipe: Pipeline, subscriber: Subscriber, restart: Callable[[], WorkerProcess], total: int,
                           distinct: Callable[[Got], object]) -> int:
    """Send 5 messages per device of `pipe` (a relay,ingest,router,store worker and a delivery worker),
    kill -9 the delivery worker once 20 have arrived, start another (`restart()`), and wait until
    `total` distinct messages (`distinct(got)`) arrived; returns how many had arrived at the kill."""
    sent = await simulate(pipe.network, messages_per_device=5, rate=0, duration=None, max_stations=2, progress=False)
    assert sent["messages"] == total
    await wait_until(lambda: len(subscriber.messages) >= 20, 15, "some messages before the crash")
    pipe.workers[1].kill9()
    before = len(subscriber.messages)
    assert before < total / 2, "killed with most messages still to deliver"
    restarted = restart()
    await restarted.wait_ready()
    await wait_until(lambda: len({distinct(m) for m in subscriber.messages}) >= total, 30,
                     f"all {total} messages\n{restarted.log_tail()}")
    return before

"""An endpoint's backlog is claimed oldest message first; what is claimed elsewhere (by the due-time
loop) is counted, so that a drain waits for it to come back before it claims past it."""
from __future__ import annotations

import pytest

from backhaul import db
from workers import waiting
from workers.retry_store import RetryStore

pytestmark = pytest.mark.integration
ENDPOINT = "http://customer.example:80"


def delivery(device: str, n: int) -> dict:
    return {"id": f"{device}:{n}/cb", "device": device, "callbackId": "cb", "channel": "URL", "kind": "DATA",
            "recordId": f"{device}:{n}", "messageId": f"{device}:{n}", "origin": 1_000 + n, "createdAt": 1_000 + n,
            "messageTime": 1_000_000 + n * 1_000, "variables": {}}


@pytest.fixture
async def store(isolated):
    pool = await db.create_pool(isolated.dsn)
    try:
        yield RetryStore(pool, claim_s=30.0)
    finally:
        await pool.close()


async def put(store: RetryStore, device: str, numbers) -> None:
    for n in numbers:
        await store.schedule(delivery(device, n), 1, 10_000_000_000.0, endpoint=ENDPOINT, wait=waiting.backlog())


def ids(claimed) -> list[str]:
    return [d["id"] for d, _ in claimed]


async def test_the_backlog_comes_oldest_message_first_across_devices(store):
    await put(store, "A", [3, 1])
    await put(store, "B", [2])
    assert ids(await store.claim_backlog(ENDPOINT, 10)) == ["A:1/cb", "B:2/cb", "A:3/cb"]
    assert await store.claim_backlog(ENDPOINT, 10) == [], "claimed rows are not handed out twice"
    assert await store.claimed(ENDPOINT) == 3


async def test_claims_of_an_endpoint_are_counted_until_they_come_back(store):
    await put(store, "A", [1, 2, 3])
    await put(store, "B", [1])
    # The due-time loop takes A:1 and A:2 (retries due now) just before the drain claims the backlog.
    await store.pool.execute("UPDATE delivery_retries SET claimed_until = now() + interval '30 seconds' "
                             "WHERE delivery_id IN ('A:1/cb', 'A:2/cb')")
    assert await store.claimed(ENDPOINT) == 2
    assert await store.claimed("http://other.example:80") == 0
    # Parked behind the drain again: unclaimed, and the backlog comes in message order.
    for n in (1, 2):
        await store.schedule(delivery("A", n), 2, 10_000_000_000.0, endpoint=ENDPOINT, wait=waiting.backlog())
    assert await store.claimed(ENDPOINT) == 0
    assert ids(await store.claim_backlog(ENDPOINT, 10)) == ["A:1/cb", "B:1/cb", "A:2/cb", "A:3/cb"]


async def test_an_expired_claim_is_neither_counted_nor_held_back(store):
    await put(store, "A", [1, 2])
    await store.pool.execute("UPDATE delivery_retries SET claimed_until = now() - interval '1 second' "
                             "WHERE delivery_id = 'A:1/cb'")
    assert await store.claimed(ENDPOINT) == 0
    assert ids(await store.claim_backlog(ENDPOINT, 10)) == ["A:1/cb", "A:2/cb"]


async def test_a_round_sends_only_what_is_older_than_its_devices_claims_elsewhere(store):
    from workers.backlog import behind_older_claims

    await put(store, "A", [1, 2, 3])
    await put(store, "B", [1, 2])
    # A:1 is out elsewhere (a request still out on an endpoint that hung): the drain claims past it.
    await store.pool.execute("UPDATE delivery_retries SET claimed_until = now() + interval '30 seconds' "
                             "WHERE delivery_id = 'A:1/cb'")
    claimed = await store.claim_backlog(ENDPOINT, 10)
    assert ids(claimed) == ["B:1/cb", "A:2/cb", "B:2/cb", "A:3/cb"]
    elsewhere = await store.oldest_claimed_elsewhere(ENDPOINT, ids(claimed))
    assert elsewhere == {"A": 1_001_000}
    now, later = behind_older_claims(claimed, elsewhere)
    assert ids(now) == ["B:1/cb", "B:2/cb"] and ids(later) == ["A:2/cb", "A:3/cb"]
    await store.release(ids(later))
    assert await store.claimed(ENDPOINT) == 3, "A:1 elsewhere, B:1 and B:2 in this round"
    # A:1 comes back (parked behind the drain): the next round takes A in order.
    await store.schedule(delivery("A", 1), 2, 10_000_000_000.0, endpoint=ENDPOINT, wait=waiting.backlog())
    claimed = await store.claim_backlog(ENDPOINT, 10)
    assert ids(claimed) == ["A:1/cb", "A:2/cb", "A:3/cb"]
    assert await store.oldest_claimed_elsewhere(ENDPOINT, ids(claimed)) == {"B": 1_001_000}
    assert behind_older_claims(claimed, {"B": 1_001_000}) == (claimed, [])

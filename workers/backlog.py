"""Which deliveries of a drain round may go now without overtaking an older one of their device.

While an endpoint's backlog is drained after it recovered, some of its deliveries can be claimed
elsewhere (the due-time loop parking them behind the drain, a request still out on an endpoint that
hung): a round that sent a device's later messages past them would deliver that device out of order.
A round sends only what is older than (or of the same message as) the oldest delivery of its device
claimed elsewhere; the rest goes back to the backlog for a later round.
"""
from __future__ import annotations

from schemas.deliveries import message_time_ms
from workers.retry_store import Claimed


def behind_older_claims(claimed: Claimed, oldest_elsewhere: dict[str, int]) -> tuple[Claimed, Claimed]:
    """(what may be sent now, what waits) of a round's `claimed` deliveries, given each device's oldest
    message time among its deliveries for the endpoint claimed elsewhere."""
    now: Claimed = []
    later: Claimed = []
    for delivery, attempts in claimed:
        blocker = oldest_elsewhere.get(delivery.get("device", ""))
        at = message_time_ms(delivery)
        if blocker is not None and at is not None and at > blocker:
            later.append((delivery, attempts))
        else:
            now.append((delivery, attempts))
    return now, later

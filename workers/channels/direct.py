"""The DIRECT downlink: the device type's `downlinkDataString`, rendered by the router, goes to the
stations (`downlinks`) once the device's contract and daily quota allow it (`workers.downlink_gate`),
else an ACKNOWLEDGE says why. It calls nothing: no attempt, no retry."""
from __future__ import annotations

from backhaul.kafka import Out
from workers.channels.base import Channel, Context, Delivery


class Direct(Channel):
    name = "DIRECT"
    calls = False

    async def publish(self, delivery: Delivery, context: Context) -> list[Out]:
        return await context.grant(delivery, delivery["downlinkData"])

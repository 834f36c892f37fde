"""The DIRECT downlink: the device type's `downlinkDataString` is granted (`downlinks`) once the device's
contract, receive windows and daily quota allow it (`workers.downlink_gate`), else an ACKNOWLEDGE says
why; it is rendered for the station chosen to transmit it (`workers.downlink_dispatch`). It calls
nothing: no attempt, no retry."""
from __future__ import annotations

from backhaul.kafka import Out
from workers.channels.base import Channel, Context, Delivery


class Direct(Channel):
    name = "DIRECT"
    calls = False

    async def publish(self, delivery: Delivery, context: Context) -> list[Out]:
        # A delivery routed by an earlier version carries the downlink it rendered.
        return (await context.grant(delivery, delivery.get("downlinkData"))).records

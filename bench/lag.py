"""Which stage falls behind: records between the end of each topic and each consumer group's commit.

Read straight from Kafka (committed offsets of every group of the sandbox and
the partitions' end offsets), so it covers every stage, the delivery worker
included, whatever the workers export.
"""
from __future__ import annotations

from backhaul.kafka import make_admin, make_consumer


class LagProbe:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.admin = make_admin()
        self.consumer = make_consumer(group=None)
        self._groups: list[str] = []

    async def start(self) -> None:
        await self.admin.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def sample(self) -> dict[str, int]:
        """Lag (records) per consumer group, named without the sandbox prefix."""
        if not self._groups:
            self._groups = sorted(g for g, *_ in await self.admin.list_consumer_groups() if g.startswith(self.prefix))
        lags = {}
        for group in self._groups:
            committed = await self.admin.list_consumer_group_offsets(group)
            if not committed:
                continue
            ends = await self.consumer.end_offsets(list(committed))
            lags[group[len(self.prefix):]] = sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items()
                                                 if meta.offset >= 0)
        return lags

"""The delivery worker's consumer group reports its lag like every stage's (`backhaul_consumer_lag`)."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backhaul.settings import settings
from backhaul.topics import topic
from schemas.topics import DELIVERIES
from tests.conftest import wait_until
from workers.delivery import GROUP

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def lag_by_partition(metrics_text: str, group: str, source: str) -> dict[str, float]:
    """The consumer-lag gauge's value per partition of `source` for `group`."""
    return {sample.labels["partition"]: sample.value
            for family in text_string_to_metric_families(metrics_text) if family.name == "backhaul_consumer_lag"
            for sample in family.samples
            if sample.labels.get("group") == group and sample.labels.get("topic") == source}


async def test_the_delivery_group_exports_its_consumer_lag(isolated, workers):
    delivery = workers("delivery", isolated)
    await delivery.wait_ready()
    group, deliveries = topic(GROUP), topic(DELIVERIES)

    async def every_partition_reported():
        lags = lag_by_partition(await delivery.metrics(), group, deliveries)
        return lags if len(lags) == settings().kafka_partitions else None

    lags = await wait_until(every_partition_reported, 30, "the delivery group's consumer lag on /metrics")
    assert set(lags) == {str(p) for p in range(settings().kafka_partitions)}
    assert all(lag == 0 for lag in lags.values()), lags  # nothing was published: nothing behind

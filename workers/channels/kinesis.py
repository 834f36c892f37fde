"""The KINESIS channel: each delivery one record of a `PutRecords` to the callback's data stream (aiobotocore).

Settings (`channelSettings`, checked by `oss.channel_settings.aws`): the account (`workers.channels.aws`),
`streamName` or `streamArn`, and `partitionKey` (a template of the callback's variables rendered by the router;
default the device id, so that a device's records stay in order on one shard). The record's data is the body
template rendered, as it is: Kinesis records have no attributes or headers, and the body is the customer's,
so the stable message id is not carried in the record (wrapping the body in an envelope would change what the
customer asked for). Receivers de-duplicate on what the body holds: `{device}` and `{seqNumber}` name an
uplink. The attempt's answer in cbStatus is the record's place, `shardId@sequenceNumber`.

Deliveries to one stream are gathered for a few ms into batches of at most 500 records and 5 MiB, a record at
most 1 MiB (data and partition key, `workers.channels.linger`); each delivery's attempt is its own record's
answer (PutRecords' per-record ErrorCode: ProvisionedThroughputExceededException counts as throttling,
InternalFailure as the service's fault), so only failed records are retried. A request that fails whole
(credentials, a missing stream, the service unreachable) fails each of its records with the same text.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from backhaul.aws_rules import MAX_PARTITION_KEY, STREAM_ARN, STREAM_NAME
from workers.attempt import Outcome
from workers.channels.aws import OK_STATUS, Account, AwsBatchChannel, SettingsError, entry_failure
from workers.channels.base import Delivery
from workers.channels.linger import Limits

MIB = 1024 * 1024
LIMITS = Limits(count=500, bytes=5 * MIB, entry_bytes=MIB)


def stream_of(settings: dict[str, Any]) -> str:
    """The stream's ARN or name, checked (SettingsError naming the member)."""
    arn, name = settings.get("streamArn"), settings.get("streamName")
    if isinstance(arn, str) and STREAM_ARN.fullmatch(arn):
        return arn
    if isinstance(name, str) and STREAM_NAME.fullmatch(name):
        return name
    raise SettingsError("channelSettings.streamName: is required (or streamArn)")


class Kinesis(AwsBatchChannel):
    name = "KINESIS"
    service = "kinesis"
    limits = LIMITS
    what = "record"

    def call(self, delivery: Delivery, settings: dict[str, Any], account: Account) -> Callable[[], Awaitable[Outcome]]:
        stream = stream_of(settings)
        key = delivery["publish"].get("key") or delivery["device"]
        if len(key) > MAX_PARTITION_KEY:
            raise SettingsError(f"channelSettings.partitionKey: rendered to {len(key)} characters; Kinesis takes "
                                f"1 to {MAX_PARTITION_KEY}")
        data = delivery["publish"]["body"].encode()
        entry = {"Data": data, "PartitionKey": key}
        return lambda: self.batches.submit((account, stream), entry, len(data) + len(key.encode()))

    async def flush(self, client: Any, where: str, entries: list[dict[str, Any]]) -> list[Outcome]:
        stream = {"StreamARN": where} if where.startswith("arn:") else {"StreamName": where}
        answer = await client.put_records(Records=entries, **stream)
        return [entry_failure(r["ErrorCode"], r.get("ErrorMessage"), 0.0) if r.get("ErrorCode")
                else Outcome(OK_STATUS, "ok", None, 0.0, f"{r.get('ShardId')}@{r.get('SequenceNumber')}")
                for r in answer["Records"]]

"""Leaving a consumer group as a static member (KIP-345), so its partitions move at once.

A consumer with a `group.instance.id` is a static member: when it stops,
aiokafka (like the Java client) sends no LeaveGroup, and the broker keeps its
partitions for it until its session times out, so that a restart within the
session gets them back without a rebalance. That is right for a crash; on a
graceful shutdown, though, the partitions should go to the other members now.

LeaveGroup v3 removes a member by its instance id (the request the Java
admin client's `removeMembersFromConsumerGroup` sends); aiokafka only has
v0 and v1, which carry a member id and no instance id, hence the two
structs below.
"""
from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Int16, Int32, Schema, String

log = logging.getLogger(__name__)


# aiokafka ships no types: its protocol base classes are Any to mypy.
class LeaveGroupResponse_v3(Response):  # type: ignore[misc]
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")),
                          ("error_code", Int16))),
    )


class LeaveGroupRequest_v3(RequestStruct):  # type: ignore[misc]  # aiokafka's base is Any
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = LeaveGroupResponse_v3
    SCHEMA = Schema(
        ("group_id", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")))),
    )


class LeaveGroupByInstance(Request[LeaveGroupRequest_v3]):  # type: ignore[misc]  # aiokafka's base is Any
    """LeaveGroup for one static member, named by its instance id (member id unknown: "")."""

    API_KEY = 13

    def __init__(self, group: str, instance_id: str) -> None:
        self._group = group
        self._instance_id = instance_id

    def build(self, request_struct_class: type[LeaveGroupRequest_v3]) -> LeaveGroupRequest_v3:
        return request_struct_class(self._group, [("", self._instance_id)])


async def leave_group(admin: AIOKafkaAdminClient, group: str, instance_id: str) -> bool:
    """Remove the static member `instance_id` from `group` through `admin` (a client not yet started:
    this starts and closes it); True if the broker removed it.

    Best effort, as aiokafka's own leave is: a failure is logged and the
    partitions then move when the member's session times out."""
    try:
        await admin.start()
        coordinator = await admin.find_coordinator(group)
        response = await admin._send_request_to_node(coordinator, LeaveGroupByInstance(group, instance_id))
        errors = [response.error_code] + [code for _, _, code in response.members]
        failed = next((code for code in errors if code), 0)
        if failed:
            raise for_code(failed)(f"LeaveGroup of {instance_id} from {group}")
        log.info("left the consumer group", extra={"group": group, "instance": instance_id})
        return True
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("could not leave the consumer group: its partitions move when the session times out",
                    extra={"group": group, "instance": instance_id, "error": f"{type(exc).__name__}: {exc}"})
        return False
    finally:
        await admin.close()

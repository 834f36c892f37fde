"""A message's downlink as the store writes it (`message_downlinks`), read back THROUGH THE API as its
`downlinkAnswerStatus`.

The store stage runs alone in this process (`tests/integration/test_store_readback.network`: a device
type and device made through the API, the stations in PostgreSQL). Its records are built with
`schemas/`: the grant the delivery worker publishes, the transmission the dispatcher publishes, the
ACKNOWLEDGE event the router, the delivery worker or the acks stage publishes. Whatever order they
come in, the API shows the downlink granted (PENDING until its station reports), the station chosen,
the data, and the first outcome decided; a replay changes nothing; deleting the device purges it.
"""
from __future__ import annotations

from typing import Any

import pytest

from callback_language.downlink import InfoCode, ack_event, info_message
from schemas.dead_letters import DeadLetter
from schemas.deliveries import Delivery, new_delivery
from schemas.device_events import DeviceEvent, encode_device_event
from schemas.downlinks import Downlink, encode_downlink, granted, transmission
from schemas.messages import Message
from schemas.topics import DEAD_LETTERS, DEVICE_EVENTS, DOWNLINK_TRANSMISSIONS, DOWNLINKS, MESSAGES
from tests.api_support import check
from tests.integration.test_store_readback import D1, GROUP, Network, network
from tests.stages.stage_records import T0, Owned, keyed_message, message
from tests.stages.stage_support import publish, records_of, wait_all_committed

pytestmark = pytest.mark.integration

INPUTS = (MESSAGES, DEVICE_EVENTS, DOWNLINKS, DOWNLINK_TRANSMISSIONS)
DATA = "0011223344556677"
NAMED = {"fields": "downlinkAnswerStatus(baseStation(name))"}


async def store(records: dict[str, list[tuple[bytes, bytes]]]) -> None:
    """Publish records (topic -> keyed records, in order) and wait until the store has written them all."""
    for name, keyed in records.items():
        if keyed:
            await publish(name, keyed)
    await wait_all_committed(GROUP, INPUTS)
    assert await records_of(DEAD_LETTERS, DeadLetter.decode) == []


def bidir(o: Owned, m: Message) -> Delivery:
    """The delivery of the uplink to its downlink callback, routed 80 ms after it."""
    return new_delivery(m, callback_id="bidir", kind="DATA_BIDIR", channel="URL", device_type_id=o.device_type,
                        message_id=m["id"], origin_ms=m["time"], created_ms=m["time"] + 80,
                        variables={"station": m["station"], "rssi": m["rssi"]}, downlink=True)


def grant_of(o: Owned, m: Message) -> Downlink:
    return granted(bidir(o, m), DATA, created_ms=m["time"] + 900, transmit_by_ms=m["time"] + 20_000)


def ack(o: Owned, m: Message, code: InfoCode, at_ms: int, **kw: Any) -> DeviceEvent:
    return ack_event(m["device"], m["id"], code, device_type_id=o.device_type, group_id=o.group, now_ms=at_ms,
                     registration_id=o.registrations[m["device"]], uplink_ms=m["time"], **kw)


def keyed(records: list[Downlink]) -> list[tuple[bytes, bytes]]:
    return [(r["device"].encode(), encode_downlink(r)) for r in records]


def keyed_events(events: list[DeviceEvent]) -> list[tuple[bytes, bytes]]:
    return [(e["device"].encode(), encode_device_event(e)) for e in events]


async def answers(net: Network, **params: str) -> dict[int, dict[str, Any] | None]:
    """Each message's downlinkAnswerStatus (None: it has none), by seqNumber."""
    listed = check(await net.client.get(f"/devices/{D1}/messages", params=params or None), 200)["data"]
    return {m["seqNumber"]: m.get("downlinkAnswerStatus") for m in listed}


async def test_a_downlink_reads_back_pending_then_transmitted_and_the_first_outcome_stays(isolated):
    async with network("Readback downlinks") as net:
        o = net.owner
        m1 = message(o, D1, 1, ack=True)
        await store({MESSAGES: [keyed_message(m1)]})
        assert await answers(net) == {1: None}, "asked for a downlink, none answered yet: nothing to show"

        g1 = grant_of(o, m1)
        await store({DOWNLINKS: keyed([g1])})
        pending = {"data": DATA, "infoCode": 5, "infoMessage": info_message(InfoCode.PENDING), "downlinkAck": False,
                   "downlinkOverusage": False}
        assert await answers(net) == {1: pending}, "granted, not transmitted yet: PENDING"

        t1 = transmission(g1, station="5A02", rssi=-95.0, data_hex=DATA, now_ms=T0 + 19_000)
        await store({DOWNLINK_TRANSMISSIONS: keyed([t1])})
        assert await answers(net, **NAMED) == {1: {**pending, "baseStation": {"id": "5A02", "name": "station 5A02"}}}

        acked = ack(o, m1, InfoCode.ACKED, T0 + 19_100, downlink_ack=True, station="5A02", data=DATA)
        await store({DEVICE_EVENTS: keyed_events([acked])})
        done = {"baseStation": {"id": "5A02"}, "data": DATA, "infoCode": 0, "infoMessage": info_message(InfoCode.ACKED),
                "downlinkAck": True, "downlinkOverusage": False}
        assert await answers(net) == {1: done}, "the station's name only when asked for"

        late = ack(o, m1, InfoCode.NETWORK_ERROR, T0 + 25_000, reason="Network error: too late", station="5A03")
        await store({DEVICE_EVENTS: keyed_events([late]), DOWNLINKS: keyed([g1]),
                     DOWNLINK_TRANSMISSIONS: keyed([t1])})
        assert await answers(net) == {1: done}, "a second outcome for the same uplink, and a replay, change nothing"


async def test_outcomes_without_a_downlink_and_records_in_any_order_read_back_alike(isolated):
    async with network("Readback downlink order") as net:
        o = net.owner
        refused, reported, plain = (message(o, D1, n, time_ms=T0 + n * 60_000, ack=n != 3) for n in (1, 2, 3))
        await store({MESSAGES: [keyed_message(m) for m in (refused, reported, plain)]})

        # Refused by the gate: an ACKNOWLEDGE and nothing else.
        too_many = ack(o, refused, InfoCode.TOO_MANY_REQUESTS, refused["time"] + 900)
        # Reported by the stations before the store read its grant and its transmission (other topics).
        g2 = grant_of(o, reported)
        t2 = transmission(g2, station="5A01", rssi=-120.0, data_hex=DATA, now_ms=reported["time"] + 19_000)
        network_error = ack(o, reported, InfoCode.NETWORK_ERROR, reported["time"] + 19_200,
                            reason="Network error: no registered station to transmit from (5A01)", station="5A01",
                            data=DATA)
        await store({DEVICE_EVENTS: keyed_events([too_many, network_error])})
        await store({DOWNLINK_TRANSMISSIONS: keyed([t2])})
        await store({DOWNLINKS: keyed([g2])})
        expected = {
            1: {"infoCode": 7, "infoMessage": info_message(InfoCode.TOO_MANY_REQUESTS), "downlinkAck": False,
                "downlinkOverusage": False},
            2: {"baseStation": {"id": "5A01"}, "data": DATA, "infoCode": 4,
                "infoMessage": "Network error: no registered station to transmit from (5A01)", "downlinkAck": False,
                "downlinkOverusage": False},
            3: None,
        }
        assert await answers(net) == expected
        rows = await net.api.pool.fetch("SELECT message_id, time, granted_at, left_at, source, rssi "
                                        "FROM message_downlinks ORDER BY time")
        assert [tuple(r) for r in rows] == [(refused["id"], refused["time"], None, None, None, None),
                                            (reported["id"], reported["time"], reported["time"] + 900,
                                             reported["time"] + 19_000, "CALLBACK", -120.0)]

        await store({MESSAGES: [keyed_message(m) for m in (refused, reported, plain)],
                     DOWNLINKS: keyed([g2]), DOWNLINK_TRANSMISSIONS: keyed([t2]),
                     DEVICE_EVENTS: keyed_events([too_many, network_error])})
        assert await answers(net) == expected, "a replay changes nothing"

        check(await net.client.delete(f"/devices/{D1}"), 204)
        assert await net.api.pool.fetch("SELECT message_id FROM message_downlinks") == [], \
            "deleting the device purges its downlinks with its history"

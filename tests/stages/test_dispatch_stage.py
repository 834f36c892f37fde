"""The dispatch stage alone (workers/downlink_dispatch.py), in this process, on the real Kafka.

Its contract: it reads the receptions (`messages`), the grants (`downlinks`) and what it sent
(`downlink-transmissions`); each grant leaves at its uplink's time + `transmit_s` - `lead_s` for the
station that heard the uplink best by then, rendered (DIRECT) for that station, onto
`downlink-transmissions`; a DIRECT template that cannot be rendered gives ACKNOWLEDGE 8 instead; a
grant read long after it was due is dropped. Its commits trail the clock by `keep_s`, so a new
instance (a restart) reads that much again, sends what was still waiting and nothing twice.

Here a downlink is due at its station 3 s after its uplink and leaves 1 s before that.
"""
from __future__ import annotations

import time

import pytest

from backhaul import settings as settings_module
from schemas.deliveries import new_delivery
from schemas.device_events import decode_device_event
from schemas.downlinks import Downlink, decode_transmission, encode_downlink, granted
from schemas.frames import Frame
from schemas.messages import Message, duplicate_reception, encode_message, first_reception
from schemas.topics import DEVICE_EVENTS, DOWNLINK_TRANSMISSIONS, DOWNLINKS, MESSAGES
from tests.conftest import wait_until
from tests.stages.stage_support import commits, publish, records_of, running
from workers.downlink_dispatch import DownlinkDispatchStage

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

GROUP = "backhaul-dispatch"
DEVICE = "5C0001"
DATA = "0011223344556677"


@pytest.fixture
def short_timing(isolated, monkeypatch):
    monkeypatch.setenv("BACKHAUL_DOWNLINK_TRANSMIT_S", "3")
    monkeypatch.setenv("BACKHAUL_DOWNLINK_LEAD_S", "1")
    settings_module.settings.cache_clear()
    yield isolated
    settings_module.settings.cache_clear()


def heard(seq: int, uplink_ms: int, station: str, rssi: float, *, first: bool) -> Message:
    frame = Frame(station, DEVICE, seq, uplink_ms, "c0ffee", rssi, 10.0, 868_130_000, 1, True, False)
    message_id = f"{DEVICE}-{seq}-{uplink_ms}"
    if first:
        return first_reception(message_id, frame, device_type_id="dt", group_id="g", registration_id=1,
                               avg_snr="N/A", over_quota=False, ingested_at_ms=uplink_ms + 40)
    return duplicate_reception(message_id, frame, device_type_id="dt", group_id="g", registration_id=1)


def grant(first: Message, *, template: str | None = None) -> Downlink:
    delivery = new_delivery(first, callback_id=None if template else "bidir", kind="DOWNLINK" if template else
                            "DATA_BIDIR", channel="DIRECT" if template else "URL", device_type_id="dt",
                            message_id=first["id"], origin_ms=first["time"], created_ms=first["time"] + 50,
                            variables={"station": first["station"], "rssi": first["rssi"]})
    if template:
        delivery["downlinkTemplate"] = template
    return granted(delivery, None if template else DATA, created_ms=first["time"] + 300,
                   transmit_by_ms=first["time"] + 3_000)


async def transmissions() -> dict[str, list[Downlink]]:
    sent: dict[str, list[Downlink]] = {}
    for t in await records_of(DOWNLINK_TRANSMISSIONS, decode_transmission, timeout=2):
        sent.setdefault(t["id"], []).append(t)
    return sent


async def test_grants_leave_on_time_from_the_best_station_and_a_restart_sends_each_once(short_timing):
    now = int(time.time() * 1000)
    u1 = heard(1, now, "5A01", -130.0, first=True)
    u2 = heard(2, now + 10_000, "5A01", -120.0, first=True)  # leaves at now + 12 s: after the restart
    stale = heard(3, now - 600_000, "5A01", -100.0, first=True)
    broken = heard(4, now + 200, "5A03", 40_000.0, first=True)  # an rssi no 2 signed bytes hold
    await publish(MESSAGES, [(m["device"].encode(), encode_message(m)) for m in (
        u1, heard(1, now, "5A02", -95.0, first=False), u2, heard(2, now + 10_000, "5A03", -99.0, first=False),
        stale, broken)])
    grants = [grant(u1), grant(u2), grant(stale), grant(broken, template="{tapId}{rssi}{time}")]
    await publish(DOWNLINKS, [(g["device"].encode(), encode_downlink(g)) for g in grants])

    async with running(DownlinkDispatchStage()):
        async def first_sent():
            return (await transmissions()).get(u1["id"])
        [t1] = await wait_until(first_sent, 10, "the first downlink to leave")
        assert (t1["station"], t1["rssi"], t1["data"], t1["source"]) == ("5A02", -95.0, DATA, "CALLBACK")
        assert now + 2_000 <= t1["leftAt"] < now + 3_000 and t1["transmitBy"] == now + 3_000, \
            "1 s before it is due at its station, 3 s after its uplink"
        done = await commits(GROUP, DOWNLINKS)
        assert done and all(offset == 0 for offset in done.values()), \
            f"commits trail the clock: a restart reads the last minute again ({done})"
    assert u2["id"] not in await transmissions(), "the second was still waiting when the first instance stopped"

    async with running(DownlinkDispatchStage()):  # a new instance: its state is what it reads again
        async def second_sent():
            return (await transmissions()).get(u2["id"])
        [t2] = await wait_until(second_sent, 20, "the second downlink, held across the restart")
        assert (t2["station"], t2["rssi"]) == ("5A03", -99.0)
        assert now + 12_000 <= t2["leftAt"]

    sent = await transmissions()
    assert sorted(sent) == sorted([u1["id"], u2["id"]]) and all(len(v) == 1 for v in sent.values()), \
        "each sent once: not the first again after the restart, not the stale grant"
    # Decided again by the second instance (nothing was sent to read back): the same event, stored once.
    refused = await records_of(DEVICE_EVENTS, decode_device_event)
    assert {(e["id"], e["type"], e["messageId"], e["infoCode"]) for e in refused} == {
        (f"{DEVICE}:ACKNOWLEDGE:{broken['id']}", "ACKNOWLEDGE", broken["id"], 8)}
    assert all("rssi 40000.0: does not fit 2 signed bytes" in e["infoMessage"] for e in refused)

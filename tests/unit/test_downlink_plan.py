"""Which station transmits a downlink and when it leaves (workers/downlink_plan.py), and the timing it is
counted with (callback_language.downlink.DownlinkTiming): at the boundaries, to the millisecond."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callback_language.downlink import DownlinkTiming, late_uplink, render_direct
from schemas.downlinks import Downlink
from schemas.frames import Frame
from schemas.messages import Message, duplicate_reception, first_reception
from workers.downlink_plan import Departure, DownlinkPlan

T0 = 1_764_165_600_000  # the uplink's own time (its first frame at the station)
TIMING = DownlinkTiming(answer_s=10, transmit_s=20, lead_s=1, listen_s=25)
LEAVES = T0 + 19_000
KEEP_MS = 80_000


def reception(station: str, rssi: float, *, first: bool = False, ack: bool = True, message_id: str = "m1") -> Message:
    frame = Frame(station, "AB", 1, T0, "", rssi, 10.0, 868_130_000, 1, ack, False)
    if first:
        return first_reception(message_id, frame, device_type_id=None, group_id=None, registration_id=None,
                               avg_snr="N/A", over_quota=False, ingested_at_ms=T0 + 40)
    return duplicate_reception(message_id, frame, device_type_id=None, group_id=None, registration_id=None)


def grant(**fields) -> Downlink:
    g: Downlink = {"id": "m1", "device": "AB", "messageId": "m1", "uplinkTime": T0, "data": "00" * 8,
                   "station": "A001", "rssi": -130.0, "transmitBy": T0 + 20_000, "source": "CALLBACK"}
    g.update(fields)  # type: ignore[typeddict-item]
    return g


def plan() -> DownlinkPlan:
    return DownlinkPlan(TIMING, KEEP_MS)


# Timing ------------------------------------------------------------------------------------------------

def test_every_deadline_is_counted_from_the_uplinks_own_time():
    assert (TIMING.answer_by(T0), TIMING.transmit_by(T0), TIMING.leaves_at(T0)) == (T0 + 10_000, T0 + 20_000,
                                                                                   T0 + 19_000)
    assert TIMING.listen_ms() == 25_000


def test_an_uplink_is_late_from_its_deadline_on_to_the_millisecond():
    assert late_uplink(TIMING, "callback", T0, T0 + 9_999) is None
    late = late_uplink(TIMING, "callback", T0, T0 + 10_000)
    assert late == ("Network error: the uplink reached Backhaul 10.0 s after it was sent, 0.0 s after its BIDIR "
                    "answer was due: no downlink")
    assert late_uplink(TIMING, "direct", T0, T0 + 18_999) is None
    assert "60.0 s after it was sent" in late_uplink(TIMING, "direct", T0, T0 + 60_000)
    assert "41.0 s after its downlink had to leave" in late_uplink(TIMING, "direct", T0, T0 + 60_000)


# Which station -------------------------------------------------------------------------------------------

def test_a_grant_leaves_at_its_time_from_the_station_that_heard_best_by_then():
    p = plan()
    p.heard(reception("A001", -130.0, first=True), T0 + 50)
    p.heard(reception("A002", -95.0), T0 + 3_000)          # slower, better: taken
    p.heard(reception("A003", -90.0), LEAVES + 1)          # better still, but after the downlink left
    p.granted(grant())
    assert p.due(LEAVES - 1) == []
    assert p.held() == 1
    assert p.due(LEAVES) == [Departure(grant(), "A002", -95.0, "00" * 8)]
    assert p.due(LEAVES + 10_000) == [] and p.held() == 0, "sent once"


def test_equal_receptions_the_earliest_wins_and_a_reception_at_the_leave_time_counts():
    p = plan()
    p.heard(reception("A002", -100.0), LEAVES)
    p.heard(reception("A001", -100.0, first=True), T0 + 10)
    p.granted(grant())
    assert p.due(LEAVES)[0].station == "A001"
    p = plan()
    p.heard(reception("A001", -120.0, first=True), T0 + 10)
    p.heard(reception("A002", -100.0), LEAVES)
    p.granted(grant())
    assert p.due(LEAVES)[0].station == "A002"


def test_receptions_of_uplinks_not_asking_for_a_downlink_are_not_kept():
    p = plan()
    p.heard(reception("A002", -90.0, ack=False), T0 + 10)
    p.granted(grant())
    (d,) = p.due(LEAVES)
    assert (d.station, d.rssi) == ("A001", -130.0), "none known: the grant's own first reception"


def test_a_grant_read_late_leaves_at_once():
    p = plan()
    p.heard(reception("A002", -95.0), T0 + 30_000)  # after the leave time: not a candidate
    p.granted(grant())
    assert [(d.grant["id"], d.station) for d in p.due(T0 + 60_000)] == [("m1", "A001")]


def test_grants_leave_in_the_order_of_their_leave_time():
    p = plan()
    for n, uplink in ((1, T0 + 5_000), (2, T0), (3, T0 + 2_000)):
        p.granted(grant(id=f"m{n}", messageId=f"m{n}", uplinkTime=uplink))
    assert [d.grant["id"] for d in p.due(T0 + 30_000)] == ["m2", "m3", "m1"]


def test_a_direct_template_is_rendered_for_the_chosen_station():
    p = plan()
    p.heard(reception("A001", -130.0, first=True), T0 + 50)
    p.heard(reception("1A2B", -101.4), T0 + 2_000)
    template = "{tapId}{rssi}{time}"
    direct = grant(source="DIRECT", template=template)
    del direct["data"]
    p.granted(direct)
    (d,) = p.due(LEAVES)
    assert d.data == "1a2b" + "ff9b" + f"{T0 // 1000:08x}"
    assert d.data == render_direct(template, tap_id="1A2B", rssi=-101.4, time_s=T0 // 1000)


def test_a_direct_template_that_cannot_be_rendered_says_why():
    p = plan()
    p.heard(reception("A001", 40_000.0, first=True), T0 + 50)
    broken = grant(source="DIRECT", template="{tapId}{rssi}{time}")
    del broken["data"]
    p.granted(broken)
    (d,) = p.due(LEAVES)
    assert d.data is None and "does not fit 2 signed bytes" in d.problem


# Restarts --------------------------------------------------------------------------------------------------

def test_a_grant_already_sent_is_not_sent_again_whatever_the_order_read():
    p = plan()
    p.granted(grant())
    p.sent({**grant(), "leftAt": LEAVES})
    assert p.due(T0 + 60_000) == []
    p = plan()
    p.sent({**grant(), "leftAt": LEAVES})
    p.granted(grant())
    assert p.due(T0 + 60_000) == [] and p.held() == 0


def test_the_same_grant_read_twice_is_held_once():
    p = plan()
    p.granted(grant())
    p.granted(grant())
    assert len(p.due(LEAVES)) == 1


def test_receptions_and_sent_grants_are_forgotten_after_the_keep_time():
    p = plan()
    p.heard(reception("A002", -95.0), T0 + 3_000)
    p.granted(grant())
    assert p.due(LEAVES)[0].station == "A002"
    p.forget(T0 + 3_001)
    p.granted(grant(id="m1-again", messageId="m1"))
    assert p.due(LEAVES)[0].station == "A001", "the reception was forgotten"
    p.forget(LEAVES + 1)
    p.granted(grant())
    assert len(p.due(LEAVES)) == 1, "the sent grant was forgotten too"


@given(st.lists(st.tuples(st.sampled_from(["A001", "A002", "A003", "A004"]), st.integers(-140, -60),
                          st.integers(0, 40_000)), min_size=1, max_size=12))
def test_the_choice_is_the_best_reception_heard_by_the_leave_time(receptions):
    p = plan()
    for station, rssi, after in receptions:
        p.heard(reception(station, float(rssi)), T0 + after)
    p.granted(grant())
    (d,) = p.due(T0 + 60_000)
    candidates = [(station, rssi, after) for station, rssi, after in receptions if T0 + after <= LEAVES]
    if not candidates:
        assert (d.station, d.rssi) == ("A001", -130.0), "none heard in time: the grant's own first reception"
        return
    best = max(rssi for _, rssi, _ in candidates)
    first_heard = min(after for _, rssi, after in candidates if rssi == best)
    assert d.rssi == best
    assert d.station == next(s for s, rssi, after in candidates if rssi == best and after == first_heard)


@pytest.mark.parametrize("lead_s", [0.0, 1.0, 5.0])
def test_the_lead_moves_the_leave_time(lead_s):
    timing = DownlinkTiming(answer_s=10, transmit_s=20, lead_s=lead_s, listen_s=25)
    p = DownlinkPlan(timing, KEEP_MS)
    p.granted(grant())
    leaves = T0 + 20_000 - int(lead_s * 1000)
    assert p.due(leaves - 1) == [] and len(p.due(leaves)) == 1

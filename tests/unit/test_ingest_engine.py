"""The ingest state machine: examples, and hypothesis against a simple reference model."""
from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import aggregate
from ingest.engine import DeviceState, IngestEngine, Outputs, is_newer
from ingest.oob import encode_status
from schemas.frames import Frame

WINDOW = 25.0


@dataclass
class FakeConfig:
    devices: dict = field(default_factory=dict)
    device_types: dict = field(default_factory=dict)
    stations: dict = field(default_factory=dict)


def config(keep_alive: int = 0, devices=("AB",)) -> FakeConfig:
    return FakeConfig(
        devices={d: {"id": d, "device_type_id": "T", "group_id": "G", "state": 0} for d in devices},
        device_types={"T": {"id": "T", "keep_alive": keep_alive}},
        stations={"0001": {"lat": 43.0, "lng": 1.0}, "0002": {"lat": 43.1, "lng": 1.0},
                  "0003": {"lat": 43.0, "lng": 1.1}},
    )


def frame(seq: int, station: str = "0001", device: str = "AB", rssi: float = -120.0, rep: int = 1,
          t: int = 1_000_000, oob: bool = False, data: str = "01") -> Frame:
    return Frame(station=station, device=device, seqNumber=seq, time=t, data=data, rssi=rssi, snr=10.0,
                 freq=868_130_000, rep=rep, ack=False, oob=oob)


def run(engine: IngestEngine, f: Frame, now: float) -> Outputs:
    out = Outputs()
    engine.handle(f, 0, out, now)
    return out


def test_first_frame_is_a_message_at_once_and_other_stations_merge():
    e = IngestEngine(config(), window_s=WINDOW)
    out = run(e, frame(10, "0001"), 100.0)
    assert [m["duplicate"] for m in out.messages] == [False]
    out = run(e, frame(10, "0002", rssi=-110), 101.0)
    assert [m["duplicate"] for m in out.messages] == [True]
    out = run(e, frame(10, "0002", rssi=-100, rep=2), 101.5)
    assert out.messages == []  # a repetition from the same station only merges
    assert e.tick(100.0 + WINDOW - 0.01).advanced == []
    adv = e.tick(100.0 + WINDOW).advanced
    assert len(adv) == 1
    dups = {d["bsId"]: d for d in adv[0]["duplicates"]}
    assert dups["0002"] == {"bsId": "0002", "rssi": -100, "snr": 10.0, "nbRep": 2}
    assert dups["0001"]["nbRep"] == 1
    assert adv[0]["id"] == adv[0]["messageId"] + ":advanced"


def test_late_frame_is_counted_and_dropped():
    e = IngestEngine(config(), window_s=WINDOW)
    run(e, frame(10), 100.0)
    e.tick(200.0)
    out = run(e, frame(10, "0003"), 230.0)
    assert out.messages == [] and out.events == []
    assert e.counters.late == 1 and e.counters.late_lateness == [230.0 - (100.0 + WINDOW)]


def test_replay_of_an_old_sequence_number_is_trashed():
    e = IngestEngine(config(), window_s=WINDOW)
    for i, seq in enumerate((10, 11, 12)):
        run(e, frame(seq), 100.0 + i * 100)
        e.tick(100.0 + i * 100 + WINDOW)
    out = run(e, frame(5), 1000.0)
    assert out.messages == []
    assert [ev["type"] for ev in out.events] == ["OUT_OF_SEQUENCE"]
    assert e.states["AB"].trash_seq == 5 and e.counters.trashed == 1


def test_sequence_number_wraps_from_4095_to_0():
    e = IngestEngine(config(), window_s=WINDOW)
    run(e, frame(4095), 100.0)
    out = run(e, frame(0), 200.0)
    assert [m["seqNumber"] for m in out.messages] == [0]
    assert out.events == []
    assert is_newer(0, 4095) and is_newer(5, 4090) and not is_newer(4090, 5)


def test_gap_raises_a_sequence_break_event():
    e = IngestEngine(config(), window_s=WINDOW)
    run(e, frame(10), 100.0)
    out = run(e, frame(14), 200.0)
    assert [(ev["type"], ev["missing"]) for ev in out.events] == [("SEQUENCE_BREAK", 3)]


def test_disengage_accepts_the_next_number_whatever_it_is():
    cfg = config()
    e = IngestEngine(cfg, window_s=WINDOW)
    run(e, frame(100), 100.0)
    assert run(e, frame(50), 200.0).messages == []
    cfg.devices["AB"]["disengaged_at"] = 123
    assert [m["seqNumber"] for m in run(e, frame(50, t=2), 300.0).messages] == [50]
    assert run(e, frame(40, t=3), 400.0).messages == []  # disengage is used once


def test_keep_alive_error_once_per_breach_then_restored():
    e = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    run(e, frame(1), 100.0)
    assert [ev["type"] for ev in e.tick(159.0).events] == []
    assert [ev["type"] for ev in e.tick(160.0).events] == ["ERROR"]
    assert e.tick(500.0).events == []  # once per breach
    assert e.com_state("AB", 500.0) == (3, 6)
    out = run(e, frame(2), 510.0)
    assert [ev["type"] for ev in out.events] == ["RESTORED"]
    assert e.com_state("AB", 511.0) == (1, 0)
    assert [ev["type"] for ev in e.tick(570.0).events] == ["ERROR"]


def test_unknown_device_is_rejected():
    e = IngestEngine(config(), window_s=WINDOW)
    out = run(e, frame(1, device="CAFE"), 1.0)
    assert out.rejected == [("unknown-device", "device CAFE is not registered")]


def test_device_without_a_valid_token_is_rejected():
    cfg = config(devices=("AB", "CD"))
    cfg.devices["AB"]["token_state"] = -1
    cfg.devices["CD"]["token_end"] = 5_000
    e = IngestEngine(cfg, window_s=WINDOW)
    assert run(e, frame(1), 1.0).rejected[0][0] == "off-contract"
    assert run(e, frame(1, device="CD"), 4.0).messages
    assert run(e, frame(2, device="CD"), 6.0).rejected[0][0] == "off-contract"


def test_out_of_band_status_is_an_event_not_a_message_nor_quota():
    e = IngestEngine(config(), window_s=WINDOW, daily_quota=1)
    out = run(e, frame(7, oob=True, data=encode_status(3.3, -4.5)), 1.0)
    assert out.messages == []
    assert [(ev["type"], ev["batt"], ev["temp"]) for ev in out.events] == [("STATUS", 3.3, -4.5)]
    assert run(e, frame(8), 2.0).messages[0]["overQuota"] is False
    assert run(e, frame(9), 3.0).messages[0]["overQuota"] is True


def test_daily_quota_comes_from_the_contract():
    cfg = config()
    cfg.contracts = {"K": {"id": "K", "max_uplink_frames": 2}}
    cfg.device_types["T"]["contract_id"] = "K"
    e = IngestEngine(cfg, window_s=WINDOW)
    flags = [run(e, frame(s), 10.0 + s).messages[0]["overQuota"] for s in range(1, 4)]
    assert flags == [False, False, True]
    assert run(e, frame(4), 86400.0 * 2).messages[0]["overQuota"] is False  # a new UTC day


def test_state_survives_serialisation_with_open_windows():
    e = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    run(e, frame(10, "0001"), 100.0)
    run(e, frame(10, "0002"), 101.0)
    blob = orjson.dumps(e.states["AB"].to_json())
    e2 = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    e2.restore(DeviceState.from_json(orjson.loads(blob), 0))
    adv = e2.tick(100.0 + WINDOW).advanced
    assert len(adv) == 1 and {d["bsId"] for d in adv[0]["duplicates"]} == {"0001", "0002"}
    assert [ev["type"] for ev in e2.tick(200.0).events] == ["ERROR"]


def test_link_quality_and_location_follow_the_documented_rule():
    assert aggregate.link_quality(-100, 3) == 3
    assert aggregate.link_quality(-120, 1) == 1
    assert aggregate.link_quality(-140, 1) == 0
    stations = {"A": {"lat": 0.0, "lng": 0.0}, "B": {"lat": 0.0, "lng": 1.0}}
    loc = aggregate.computed_location([("A", -100.0), ("B", -100.0)], stations)
    assert loc["lat"] == 0.0 and abs(loc["lng"] - 0.5) < 1e-9 and loc["status"] == 1
    # 10 dB stronger is 10 times the weight.
    loc = aggregate.computed_location([("A", -90.0), ("B", -100.0)], stations)
    assert abs(loc["lng"] - 1 / 11) < 1e-6
    assert aggregate.computed_location([("Z", -90.0)], stations) == {"source": 2, "status": 20}


# Property tests ---------------------------------------------------------------

class ReferenceModel:
    """The dedup / window / sequence rules stated as plainly as possible."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.accepted: list[tuple[int, float]] = []   # (seq, opened at), in order

    def classify(self, seq: int, station: str, now: float, stations_seen: dict) -> str:
        for s, opened in reversed(self.accepted):
            if s == seq and now < opened + self.window:
                key = (s, opened)
                if station in stations_seen.setdefault(key, set()):
                    return "repetition"
                stations_seen[key].add(station)
                return "duplicate"
        recent = [s for s, opened in self.accepted if opened + self.window <= now][-16:]
        if seq in recent:
            return "late"
        if self.accepted:
            last = self.accepted[-1][0]
            if not 1 <= (seq - last) % 4096 < 2048:
                return "trashed"
        self.accepted.append((seq, now))
        stations_seen[(seq, now)] = {station}
        return "message"


def _walk(steps: list[tuple[int, str, float]]) -> list[tuple[int, str, float]]:
    # Sequence numbers that mostly advance (and wrap), with copies, replays and jumps back.
    seq, out = 4090, []
    for step, station, dt in steps:
        seq = (seq + step) % 4096
        out.append((seq, station, dt))
    return out


events = st.lists(
    st.tuples(st.sampled_from([0, 0, 1, 1, 1, 2, -1, -3, -8, -20]), st.sampled_from(["0001", "0002", "0003"]),
              st.one_of(st.floats(0, 3), st.floats(20, 40))),
    min_size=40, max_size=150).map(_walk)


@settings(max_examples=1000, deadline=None)
@given(events)
def test_engine_matches_reference_model(evs):
    """Same classification of every frame; one DATA_ADVANCED per message, with its stations."""
    e = IngestEngine(config(), window_s=WINDOW)
    model = ReferenceModel(WINDOW)
    seen: dict = {}
    now = 0.0
    advanced = []
    for seq, station, dt in evs:
        now += dt
        advanced.extend(e.tick(now).advanced)
        before = (e.counters.messages, e.counters.duplicates, e.counters.repetitions, e.counters.late,
                  e.counters.trashed)
        run(e, frame(seq, station, t=int(now * 1000)), now)
        after = (e.counters.messages, e.counters.duplicates, e.counters.repetitions, e.counters.late,
                 e.counters.trashed)
        kind = ["message", "duplicate", "repetition", "late", "trashed"][
            [a - b for a, b in zip(after, before)].index(1)]
        assert kind == model.classify(seq, station, now, seen), (seq, station, now)
    advanced.extend(e.tick(now + WINDOW + 1).advanced)
    assert len(advanced) == e.counters.messages == len(model.accepted)
    for adv in advanced:
        stations = {d["bsId"] for d in adv["duplicates"]}
        key = next(k for k in seen if k[0] == adv["seqNumber"] and abs(k[1] * 1000 - adv["time"]) < 1)
        assert stations == seen[key]
    assert len({a["id"] for a in advanced}) == len(advanced)


@settings(max_examples=150, deadline=None)
@given(events, st.integers(0, 149))
def test_restoring_state_mid_stream_changes_nothing(evs, cut):
    """A worker that restarts from its changelog produces exactly what an uninterrupted one does."""
    def drive(restart_at: int | None) -> list:
        e = IngestEngine(config(keep_alive=30), window_s=WINDOW)
        outs = []
        now = 0.0
        for i, (seq, station, dt) in enumerate(evs):
            if i == restart_at:
                blobs = {d: orjson.dumps(s.to_json()) for d, s in e.states.items()}
                counters = e.counters
                e = IngestEngine(config(keep_alive=30), window_s=WINDOW)
                e.counters = counters
                for blob in blobs.values():
                    e.restore(DeviceState.from_json(orjson.loads(blob), 0))
            now += dt
            t = e.tick(now)
            outs.extend(t.messages + t.advanced + t.events)
            o = run(e, frame(seq, station, t=int(now * 1000)), now)
            outs.extend(o.messages + o.advanced + o.events)
        t = e.tick(now + 100)
        outs.extend(t.messages + t.advanced + t.events)
        return outs

    assert drive(cut) == drive(None)


def test_frames_from_unregistered_or_not_enabled_stations_are_rejected():
    cfg = config()
    cfg.stations["0004"] = {"lat": 43.0, "lng": 1.0, "state": "disabled"}
    cfg.stations["0005"] = {"lat": 43.0, "lng": 1.0, "state": "planned"}
    e = IngestEngine(cfg, window_s=WINDOW)
    assert run(e, frame(1, station="0009"), 10.0).rejected == [("station.unknown", "station 0009 is not registered")]
    assert run(e, frame(1, station="0004"), 10.0).rejected[0][0] == "station.disabled"
    assert run(e, frame(1, station="0005"), 10.0).rejected[0][0] == "station.disabled"
    assert e.counters.messages == 0
    out = run(e, frame(1, station="0001"), 10.0)
    assert not out.rejected and len(out.messages) == 1


def test_a_device_registered_again_starts_afresh():
    cfg = config()
    cfg.devices["AB"]["registration_id"] = 7
    e = IngestEngine(cfg, window_s=WINDOW)
    first = run(e, frame(100), 10.0)
    assert first.messages[0]["registrationId"] == 7
    assert run(e, frame(50, t=2_000_000), 11.0).events[0]["type"] == "OUT_OF_SEQUENCE"
    cfg.devices["AB"]["registration_id"] = 8  # deleted and registered again (or moved to another group)
    out = run(e, frame(50, t=3_000_000), 12.0)
    assert [m["seqNumber"] for m in out.messages] == [50] and out.messages[0]["registrationId"] == 8
    assert not [ev for ev in out.events if ev["type"] == "OUT_OF_SEQUENCE"]
    advanced = e.tick(12.0 + WINDOW + 1).advanced
    assert [(a["seqNumber"], a["registrationId"]) for a in advanced] == [(50, 8)]  # 100's window went with 7

"""The ingest state machine: examples, and hypothesis against a simple reference model."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backhaul.geo import distance_m
from ingest import aggregate
from ingest.engine import DeviceState, IngestEngine, Outputs, is_newer
from ingest.oob import encode_status
from radio.quality import link_quality
from schemas.frames import Frame
from tests.clock import FakeClock

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
          t: int = 1_000_000, oob: bool = False, data: str = "01", ack: bool = False) -> Frame:
    return Frame(station=station, device=device, seqNumber=seq, time=t, data=data, rssi=rssi, snr=10.0,
                 freq=868_130_000, rep=rep, ack=ack, oob=oob)


def run(engine: IngestEngine, f: Frame, now: float) -> Outputs:
    out = Outputs()
    engine.handle(f, 0, out, now)
    return out


def test_first_frame_is_a_message_at_once_and_other_stations_merge():
    e = IngestEngine(config(), window_s=WINDOW)
    out = run(e, frame(10, "0001"), 100.0)
    assert [m["duplicate"] for m in out.messages] == [False]
    out = run(e, frame(10, "0002", rssi=-110), 101.0)
    assert out.messages == [] and e.counters.duplicates == 1, "merged; no downlink asked: nobody reads a reception"
    out = run(e, frame(10, "0002", rssi=-100, rep=2), 101.5)
    assert out.messages == []  # a repetition from the same station only merges
    assert e.tick(100.0 + WINDOW - 0.01).advanced == []
    adv = e.tick(100.0 + WINDOW).advanced
    assert len(adv) == 1
    dups = {d["bsId"]: d for d in adv[0]["duplicates"]}
    assert dups["0002"] == {"bsId": "0002", "rssi": -100, "snr": 10.0, "nbRep": 2}
    assert dups["0001"]["nbRep"] == 1
    assert adv[0]["id"] == adv[0]["messageId"] + ":advanced"


def test_a_message_asking_for_a_downlink_publishes_each_other_stations_reception():
    """The downlink dispatcher picks the station that heard it best from these (workers.downlink_plan)."""
    e = IngestEngine(config(), window_s=WINDOW)
    first = run(e, frame(10, "0001", ack=True), 100.0).messages
    out = run(e, frame(10, "0002", rssi=-110, ack=True), 101.0)
    assert [(m["duplicate"], m["station"], m["messageId"], m["ack"]) for m in out.messages] == [
        (True, "0002", first[0]["id"], True)]
    assert run(e, frame(10, "0002", rssi=-100, rep=2, ack=True), 101.5).messages == []  # a repetition: merged


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
    assert link_quality(-100, 3) == 3
    assert link_quality(-120, 1) == 1
    assert link_quality(-140, 1) == 0
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
        # Deadlines are compared to the millisecond, the broker's resolution (as the engine does).
        def closed(opened: float) -> bool:
            return round(now * 1000) >= round((opened + self.window) * 1000)

        for s, opened in reversed(self.accepted):
            if s == seq and not closed(opened):
                key = (s, opened)
                if station in stations_seen.setdefault(key, set()):
                    return "repetition"
                stations_seen[key].add(station)
                return "duplicate"
        recent = [s for s, opened in self.accepted if closed(opened)][-16:]
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
# 24.99999 s after the first copy is 25,000 ms: the window has closed (the CI of 25f6131 found it).
@example([(4090, "0001", 0.0), (4090, "0001", 24.99999), (4091, "0002", 0.0), (4091, "0001", 24.99999),
          (4091, "0001", 1.0), (4092, "0003", 0.0)])
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
        advanced.extend(run(e, frame(seq, station, t=int(now * 1000)), now).advanced)
        after = (e.counters.messages, e.counters.duplicates, e.counters.repetitions, e.counters.late,
                 e.counters.trashed)
        kind = ["message", "duplicate", "repetition", "late", "trashed"][
            [a - b for a, b in zip(after, before, strict=False)].index(1)]
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


# Same decision with or without a crash ---------------------------------------------------------

def test_a_copy_read_after_its_deadline_is_late_even_if_the_window_is_still_open():
    """Station A at T, station B at T+28 s read by a worker catching up (no tick in between):
    B is late, exactly as it is live, and DATA_ADVANCED holds A only."""
    e = IngestEngine(config(), window_s=WINDOW)
    run(e, frame(10, "0001"), 100.0)
    out = run(e, frame(10, "0002"), 128.0)          # read before any tick closed the window
    assert out.messages == []
    assert e.counters.duplicates == 0 and e.counters.late == 1 and e.counters.late_lateness == [3.0]
    assert [{d["bsId"] for d in a["duplicates"]} for a in out.advanced] == [{"0001"}]
    assert e.tick(1000.0).advanced == []           # closed once, by the late copy's arrival


def test_the_deadline_itself_is_late_and_one_millisecond_before_is_not():
    for at, merged in ((100.0 + WINDOW - 0.001, True), (100.0 + WINDOW, False)):
        e = IngestEngine(config(), window_s=WINDOW)
        run(e, frame(10, "0001", t=1, ack=True), 100.0)
        out = run(e, frame(10, "0002", t=2, ack=True), at)
        assert [m["duplicate"] for m in out.messages] == ([True] if merged else []), at
        assert e.counters.late == (0 if merged else 1)
        advanced = out.advanced + e.tick(1000.0).advanced
        assert [a["nbStations"] for a in advanced] == [2 if merged else 1]


def test_deadlines_compare_to_the_millisecond_whatever_float_rounding_does():
    # 0.1 + 0.2 != 0.3 in floats: broker times are milliseconds, so are the comparisons.
    e = IngestEngine(config(), window_s=0.2)
    run(e, frame(10, "0001", t=1), 0.1)
    run(e, frame(10, "0002", t=2), 0.3)
    assert e.counters.late == 1 and e.counters.duplicates == 0


def test_a_frame_read_after_the_keep_alive_deadline_breaches_first_then_restores():
    live = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    run(live, frame(1), 100.0)
    live_events = live.tick(160.0).events + run(live, frame(2), 170.0).events
    caught_up = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    run(caught_up, frame(1), 100.0)
    late_events = run(caught_up, frame(2), 170.0).events   # no tick between the two frames
    assert [ev["type"] for ev in late_events] == ["ERROR", "RESTORED"]
    assert late_events == live_events


DEVICES = ("AB", "CD")


def _frames(steps: list[tuple[int, str, float, str, bool]]) -> list[tuple[Frame, float]]:
    """(frame, broker append time) per step: per device, sequence numbers that mostly advance
    (and wrap), with copies from other stations, repetitions, replays, jumps back, service frames."""
    seqs = dict.fromkeys(DEVICES, 4090)
    now, log = 1_000.0, []
    for step, station, dt, device, oob in steps:
        now = round(now + dt, 3)                   # the broker stamps milliseconds
        seqs[device] = (seqs[device] + step) % 4096
        data = encode_status(3.3, 20.5) if oob else "01"
        log.append((frame(seqs[device], station, device, t=int(now * 1000) - 7, oob=oob, data=data), now))
    return log


logs = st.lists(
    st.tuples(st.sampled_from([0, 0, 1, 1, 1, 2, -1, -3, -8, -20]), st.sampled_from(["0001", "0002", "0003"]),
              st.one_of(st.floats(0, 3), st.floats(20, 40), st.just(0.0)), st.sampled_from(DEVICES),
              st.sampled_from([False] * 6 + [True])),
    min_size=30, max_size=120).map(_frames)


class StageModel:
    """The ingest stage's cycle on the engine, as `ingest/stage.py` runs it: a batch is read, each
    frame's due deadlines are closed and the frame handled at its append time, the clock ticks
    (deadlines up to the watermark), the outputs are published, the touched devices' state is
    written to the changelog, and the offsets are committed."""

    def __init__(self, changelog: dict[str, bytes]) -> None:
        self.engine = IngestEngine(config(keep_alive=30, devices=DEVICES), window_s=WINDOW)
        for blob in changelog.values():
            self.engine.restore(DeviceState.from_json(orjson.loads(blob), 0))

    def batch(self, frames: list[tuple[Frame, float]], wall: float, watermark: float) -> Outputs:
        out = Outputs()
        for f, appended in frames:
            self.engine.close_due(f.device, appended, out)
            self.engine.handle(f, 0, out, appended)
        out.extend(self.engine.tick(wall, lambda partition: watermark))
        return out

    def persist(self, out: Outputs, changelog: dict[str, bytes]) -> None:
        for device in out.touched:
            changelog[device] = orjson.dumps(self.engine.states[device].to_json())


def _records(out: Outputs) -> list[dict]:
    return out.messages + out.advanced + out.events


def _uninterrupted(log: list[tuple[Frame, float]]) -> list[dict]:
    """Live: every frame read as soon as it is appended, the worker caught up all along."""
    worker, published = StageModel({}), []
    for f, appended in log:
        published += _records(worker.batch([(f, appended)], appended, appended))
    end = log[-1][1] + 1000
    return published + _records(worker.engine.tick(end, lambda partition: end))


CRASH_PHASES = ("before publishing", "after publishing", "after the changelog")


def _interrupted(log: list[tuple[Frame, float]], crash_at: int, phase: str, down_s: float,
                 chunks: list[int]) -> list[dict]:
    """Live until the batch of frame `crash_at`, which crashes at `phase`; the worker comes back
    `down_s` later from the changelog and the last commit, reads the backlog in `chunks` (its
    watermark lagging: the append time of the last frame read), then runs live again."""
    changelog: dict[str, bytes] = {}
    worker, published = StageModel(changelog), []
    for f, appended in log[:crash_at]:
        out = worker.batch([(f, appended)], appended, appended)
        published += _records(out)
        worker.persist(out, changelog)
    f, appended = log[crash_at]
    out = worker.batch([(f, appended)], appended, appended)
    if phase != "before publishing":
        published += _records(out)
    if phase == "after the changelog":
        worker.persist(out, changelog)
    # kill -9: the commit of frame `crash_at` never happens.
    worker = StageModel(changelog)
    restart = appended + down_s
    backlog = [(f, t) for f, t in log[crash_at:] if t <= restart]
    position, sizes = 0, iter(chunks)
    while position < len(backlog):
        chunk = backlog[position:position + next(sizes, len(backlog))]
        position += len(chunk)
        watermark = restart if position == len(backlog) else chunk[-1][1]
        out = worker.batch(chunk, restart, watermark)
        published += _records(out)
        worker.persist(out, changelog)
    for f, appended in log[crash_at + len(backlog):]:
        published += _records(worker.batch([(f, appended)], appended, appended))
    end = log[-1][1] + 1000
    return published + _records(worker.engine.tick(end, lambda partition: end))


@settings(max_examples=400, deadline=None)
@given(logs, st.data())
def test_a_crash_at_any_moment_gives_the_same_outputs_as_the_uninterrupted_run(log, data):
    """Messages, duplicate receptions, DATA_ADVANCED (ids and stations) and events of a run that
    crashes at a random frame and moment and catches up on a backlog are exactly those of the
    uninterrupted run: re-published records are identical to the first copy, nothing is missing,
    nothing is added."""
    crash_at = data.draw(st.integers(0, len(log) - 1), label="crash at frame")
    phase = data.draw(st.sampled_from(CRASH_PHASES), label="crash")
    down_s = data.draw(st.one_of(st.floats(0, 5), st.floats(5, 120)), label="down for")
    chunks = data.draw(st.lists(st.integers(1, 8), max_size=40), label="backlog batches")
    live = _uninterrupted(log)
    replayed = _interrupted(log, crash_at, phase, down_s, chunks)
    # Per id, the distinct contents published (a frame sent twice alike is trashed twice under one id).
    assert _contents(replayed) == _contents(live)
    if phase == "before publishing":
        assert len(replayed) == len(live)           # nothing was published twice


def _contents(records: list[dict]) -> dict[str, set[bytes]]:
    by_id: dict[str, set[bytes]] = {}
    for r in records:
        by_id.setdefault(r["id"], set()).add(orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
    return by_id


# Deadlines under an injected clock, at their boundaries (issue 18) ------------------------------

def test_the_advanced_window_closes_exactly_at_its_deadline_not_a_millisecond_before():
    e = IngestEngine(config(), window_s=WINDOW)
    run(e, frame(10), 100.0)
    assert e.tick(100.0 + WINDOW - 0.001).advanced == []
    closed = e.tick(100.0 + WINDOW).advanced
    assert [(a["seqNumber"], a["deadline"]) for a in closed] == [(10, round((100.0 + WINDOW) * 1000))]
    assert e.tick(100.0 + WINDOW + 0.001).advanced == []  # once
    assert e.open_windows == 0


def test_a_copy_one_millisecond_after_the_deadline_is_late_by_that_millisecond():
    e = IngestEngine(config(), window_s=WINDOW)
    run(e, frame(10, "0001"), 100.0)
    out = run(e, frame(10, "0002"), 100.0 + WINDOW + 0.001)
    assert out.messages == [] and [a["nbStations"] for a in out.advanced] == [1]
    assert e.counters.late == 1 and abs(e.counters.late_lateness[0] - 0.001) < 1e-9


def test_the_engine_reads_its_injected_clock_when_no_time_is_given():
    clock = FakeClock(100.0)
    e = IngestEngine(config(keep_alive=60), window_s=WINDOW, clock=clock)
    out = Outputs()
    e.handle(frame(10), 0, out)  # appended "now": 100.0 by the clock
    assert out.messages[0]["ingestedAt"] == 100_000
    clock.advance(WINDOW - 0.001)
    assert e.tick().advanced == []
    clock.advance(0.001)
    assert len(e.tick().advanced) == 1
    clock.now = 160.0 - 0.001
    assert e.tick().events == []
    clock.now = 160.0
    assert [ev["type"] for ev in e.tick().events] == ["ERROR"]
    assert e.com_state("AB") == (3, 1)
    clock.now = 100.0 + 3 * 60 - 0.001
    assert e.com_state("AB") == (3, 2)
    clock.now = 100.0 + 3 * 60
    assert e.com_state("AB") == (3, 3)  # whole keep-alive periods missed since last seen


def test_keep_alive_error_exactly_at_the_deadline_not_a_millisecond_before():
    e = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    run(e, frame(1), 100.0)
    assert e.tick(159.999).events == []
    (error,) = e.tick(160.0).events
    assert error["type"] == "ERROR" and error["time"] == 160_000 and error["lastSeen"] == 100_000
    assert error["id"] == "AB:ERROR:160000"
    assert error["info"] == "No message received since 1970-01-01 00:01:40 UTC"
    assert e.com_state("AB", 160.0) == (3, 1)


def test_a_frame_one_millisecond_before_the_keep_alive_deadline_keeps_the_device_ok():
    e = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    run(e, frame(1), 100.0)
    out = run(e, frame(2), 159.999)
    assert out.events == []
    assert e.tick(160.0).events == []  # the deadline moved to 219.999
    assert e.tick(219.998).events == []
    assert [ev["time"] for ev in e.tick(219.999).events] == [219_999]


def test_a_frame_at_the_keep_alive_deadline_is_too_late_to_prevent_the_error():
    e = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    run(e, frame(1), 100.0)
    out = run(e, frame(2), 160.0)
    assert [ev["type"] for ev in out.events] == ["ERROR", "RESTORED"]
    restored = out.events[1]
    assert restored["lastErrorTime"] == 160_000 and restored["id"] == f"AB:RESTORED:{out.messages[0]['id']}"
    assert restored["info"] == "Messages received again after 1970-01-01 00:02:40 UTC"


def test_keep_alive_event_ids_are_stable_and_each_breach_has_its_own():
    def breaches(e: IngestEngine) -> list[str]:
        run(e, frame(1), 100.0)
        ids = [ev["id"] for ev in e.tick(160.0).events]
        ids += [ev["id"] for ev in run(e, frame(2), 200.0).events]
        ids += [ev["id"] for ev in e.tick(260.0).events]
        return ids

    first = breaches(IngestEngine(config(keep_alive=60), window_s=WINDOW))
    assert first == breaches(IngestEngine(config(keep_alive=60), window_s=WINDOW))  # same input, same ids
    assert first[0] == "AB:ERROR:160000" and first[2] == "AB:ERROR:260000"
    assert first[1].startswith("AB:RESTORED:AB-2-")
    assert len(set(first)) == 3


def test_a_breach_raised_again_after_a_restart_keeps_its_id():
    e = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    run(e, frame(1), 100.0)
    saved = orjson.loads(orjson.dumps(e.states["AB"].to_json()))  # the changelog, before the breach
    live = e.tick(160.0).events
    again = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    again.restore(DeviceState.from_json(saved, 0))
    assert again.tick(160.0).events == live


def test_a_device_without_keep_alive_never_breaches_and_reports_no_keep_alive():
    e = IngestEngine(config(keep_alive=0), window_s=WINDOW)
    run(e, frame(1), 100.0)
    assert e.tick(10_000_000.0).events == []
    assert e.com_state("AB", 10_000_000.0) == (0, 0) and e.keepalive_count == 0
    assert e.com_state("CD", 1.0) == (5, 0)  # never seen


def test_the_watermark_holds_a_due_window_and_breach_until_the_partition_has_caught_up():
    e = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    run(e, frame(10), 100.0)
    read_up_to = {0: 100.0 + WINDOW - 0.001}
    assert e.tick(1000.0, lambda p: read_up_to[p]).advanced == []  # a copy appended before may be unread
    read_up_to[0] = 100.0 + WINDOW
    out = e.tick(1000.0, lambda p: read_up_to[p])
    assert len(out.advanced) == 1 and out.events == []  # the breach (at 160) is not caught up to yet
    read_up_to[0] = 160.0
    assert [ev["type"] for ev in e.tick(1000.0, lambda p: read_up_to[p]).events] == ["ERROR"]


def test_communication_status_codes():
    cfg = config(keep_alive=60, devices=("AB", "CD", "EF"))
    cfg.devices["EF"]["token_state"] = 1
    cfg.device_types["N"] = {"id": "N", "keep_alive": 0}
    e = IngestEngine(cfg, window_s=WINDOW, clock=FakeClock(130.0))
    assert e.com_state("AB") == (5, 0)  # never seen
    run(e, frame(1), 100.0)
    assert e.com_state("AB") == (1, 0)  # OK: heard within its keep-alive
    assert e.com_state("EF") == (4, 0)  # no valid token
    cfg.devices["CD"]["device_type_id"] = "N"
    run(e, frame(1, device="CD"), 100.0)
    assert e.com_state("CD", 10_000.0) == (0, 0)  # no keep-alive: never KO
    e.tick(160.0)
    assert e.com_state("AB", 219.999) == (3, 1) and e.com_state("AB", 220.0) == (3, 2)


def test_outputs_of_a_frame_that_failed_half_way_are_dropped_to_the_mark():
    out = Outputs()
    out.messages.append("m1"), out.advanced.append("a1"), out.events.append("e1"), out.rejected.append(("r", "1"))
    mark = out.mark()
    assert mark == (1, 1, 1, 1)
    out.messages += ["m2", "m3"]
    out.advanced.append("a2")
    out.events += ["e2", "e3", "e4"]
    out.rejected.append(("r", "2"))
    out.truncate(mark)
    assert (out.messages, out.advanced, out.events, out.rejected) == (["m1"], ["a1"], ["e1"], [("r", "1")])
    other = Outputs(["m9"], ["a9"], ["e9"], [("r", "9")], {"XY"})
    out.extend(other)
    assert (out.messages, out.advanced, out.events, out.rejected) == (
        ["m1", "m9"], ["a1", "a9"], ["e1", "e9"], [("r", "1"), ("r", "9")])
    assert out.touched == {"XY"}


def test_partitions_moved_away_take_their_devices_windows_and_keep_alives_with_them():
    e = IngestEngine(config(keep_alive=60, devices=("AB", "CD")), window_s=WINDOW)
    e.handle(frame(1, device="AB"), 0, Outputs(), 100.0)
    e.handle(frame(1, device="CD"), 1, Outputs(), 100.0)
    assert e.open_windows == 2 and e.keepalive_count == 2
    e.forget_partitions({1})
    assert set(e.states) == {"AB"} and e.open_windows == 1 and e.keepalive_count == 1
    out = e.tick(1000.0)
    assert [a["device"] for a in out.advanced] == ["AB"] and [ev["device"] for ev in out.events] == ["AB"]
    e.forget_partitions({0})
    assert e.states == {} and e.tick(2000.0).advanced == []


def test_a_service_frame_is_one_status_event_and_its_copies_merge_into_its_window():
    e = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    out = run(e, frame(7, oob=True, data=encode_status(3.3, 21.0)), 100.0)
    assert out.events == [{"id": "AB:STATUS:AB-7-1000000-oob", "type": "STATUS", "device": "AB", "deviceTypeId": "T",
                           "groupId": "G", "registrationId": None, "time": 100_000, "seqNumber": 7, "station": "0001",
                           "rssi": -120.0, "snr": 10.0, "avgSnr": "N/A", "frameTime": 1_000_000, "batt": 3.3,
                           "temp": 21.0}]
    assert e.counters.oob == 1 and e.states["AB"].oob_windows[7].oob is True
    copy = run(e, frame(7, "0002", oob=True, data=encode_status(3.3, 21.0)), 100.0 + WINDOW - 0.001)
    assert copy.events == [] and copy.messages == [] and e.counters.duplicates == 1 and e.counters.oob == 1
    assert e.tick(100.0 + WINDOW - 0.001).advanced == []
    closed = e.tick(100.0 + WINDOW)
    assert closed.advanced == [] and e.open_windows == 0  # a service frame has no DATA_ADVANCED
    late = run(e, frame(7, "0003", oob=True, data=encode_status(3.3, 21.0)), 100.0 + WINDOW + 1)
    assert late.events == [] and e.counters.late == 1


def test_a_service_frame_is_a_sign_of_life_and_an_unreadable_one_is_rejected():
    e = IngestEngine(config(keep_alive=60), window_s=WINDOW)
    run(e, frame(1), 100.0)
    e.tick(160.0)
    out = run(e, frame(7, oob=True, data=encode_status(3.3, 21.0)), 170.0)
    assert [ev["type"] for ev in out.events] == ["RESTORED", "STATUS"]
    assert out.events[0]["id"] == "AB:RESTORED:AB-7-1000000-oob"
    bad = run(e, frame(8, oob=True, data="ff"), 171.0)
    assert bad.rejected == [("data.oob", "data: unknown out-of-band type 0xff")] and bad.events == []


@pytest.mark.parametrize("rssi, stations, quality", [
    (-109.9, 2, 3), (-110.0, 2, 2), (-124.9, 2, 2), (-125.0, 2, 1), (-134.9, 2, 1), (-135.0, 2, 0),
    (-110.0, 3, 3), (-109.0, 3, 3), (-135.0, 3, 1), (-125.0, 4, 2),  # three stations or more: one level up
    (-109.9, 1, 2), (-135.0, 1, 0), (-125.0, 1, 0), (-110.0, 0, 1),  # one station (or none): one level down
])
def test_link_quality_at_each_threshold(rssi, stations, quality):
    assert link_quality(rssi, stations) == quality


def test_computed_location_one_station_two_stations_and_unknown_ones():
    stations = {"A": {"lat": 43.1234567, "lng": 1.7654321}, "B": {"lat": 43.2, "lng": 1.8},
                "C": {"lat": 43.0, "lng": None}, "D": {"lat": None, "lng": 1.0}}
    assert aggregate.computed_location([("A", -100.0), ("C", -90.0), ("D", -90.0), ("Z", -80.0)], stations) == {
        "lat": 43.123457, "lng": 1.765432, "radius": 10_000, "source": 2, "status": 1}
    assert aggregate.computed_location([("C", -90.0)], stations) == {"source": 2, "status": 20}
    # B is heard 10 dB louder than A: ten times the weight (milliwatts)
    located = aggregate.computed_location([("A", -110.0), ("B", -100.0)], stations)
    w_a, w_b = 10 ** -11.0, 10 ** -10.0
    lat = (43.1234567 * w_a + 43.2 * w_b) / (w_a + w_b)
    lng = (1.7654321 * w_a + 1.8 * w_b) / (w_a + w_b)
    spread = math.sqrt((w_a * distance_m(lat, lng, 43.1234567, 1.7654321) ** 2
                        + w_b * distance_m(lat, lng, 43.2, 1.8) ** 2) / (w_a + w_b))
    assert located == {"lat": round(lat, 6), "lng": round(lng, 6), "radius": int(round(spread)), "source": 2,
                       "status": 1}
    assert located["radius"] > aggregate.MIN_RADIUS_M
    close = aggregate.computed_location([("A", -100.0), ("B", -100.0)],
                                        {"A": {"lat": 43.0, "lng": 1.0}, "B": {"lat": 43.0001, "lng": 1.0}})
    assert close == {"lat": 43.00005, "lng": 1.0, "radius": 1_000, "source": 2, "status": 1}  # at least 1 km


def test_the_records_of_one_message_read_whole():
    """DATA at once, DATA_ADVANCED with every station's best values, and the sequence events, field by field."""
    cfg = config()
    cfg.devices["AB"].update(lat=43.5, lng=1.5, country_code="250", registration_id=9)
    e = IngestEngine(cfg, window_s=WINDOW)

    def heard(station, rssi, snr, freq, rep, t=1_000_000):
        return Frame(station=station, device="AB", seqNumber=10, time=t, data="0a0b", rssi=rssi, snr=snr, freq=freq,
                     rep=rep, ack=True, oob=False)

    (message,) = run(e, heard("0001", -120.0, 7.5, 868_130_000, 0), 100.0).messages
    assert message == {"id": "AB-10-1000000", "device": "AB", "deviceTypeId": "T", "groupId": "G",
                       "registrationId": 9, "seqNumber": 10, "time": 1_000_000, "data": "0a0b", "station": "0001",
                       "rssi": -120.0, "snr": 7.5, "freq": 868_130_000, "rep": 0, "ack": True, "duplicate": False,
                       "avgSnr": "N/A", "overQuota": False, "ingestedAt": 100_000, "lat": 43, "lng": 1}
    run(e, heard("0002", -101.5, 12.25, 868_140_000, 2, t=1_000_100), 101.0)
    run(e, heard("0002", -99.0, 11.0, 868_140_000, 1, t=1_000_100), 101.5)  # a repetition: best values kept
    (advanced,) = e.tick(200.0).advanced
    assert advanced == {
        "id": "AB-10-1000000:advanced", "messageId": "AB-10-1000000", "device": "AB", "deviceTypeId": "T",
        "groupId": "G", "registrationId": 9, "seqNumber": 10, "time": 1_000_000, "data": "0a0b", "ack": True,
        "duplicates": [{"bsId": "0001", "rssi": -120.0, "snr": 7.5, "nbRep": 1},
                       {"bsId": "0002", "rssi": -99.0, "snr": 12.25, "nbRep": 2}],
        "nbStations": 2, "nbFrames": 3, "lqi": "Excellent", "linkQuality": 3,
        "computedLocation": {"lat": 43.099212, "lng": 1.0, "radius": 1000, "source": 2, "status": 1},
        "rinfos": [{"baseStation": "0001", "rssi": -120.0, "snr": 7.5, "freq": 868_130_000, "rep": 1},
                   {"baseStation": "0002", "rssi": -99.0, "snr": 12.25, "freq": 868_140_000, "rep": 2}],
        "operatorName": "Backhaul", "countryCode": "250", "deadline": 125_000, "fixedLat": 43.5, "fixedLng": 1.5}
    (gap,) = run(e, frame(14, t=2_000_000), 300.0).events
    assert gap == {"id": "AB:SEQUENCE_BREAK:AB-14-2000000", "type": "SEQUENCE_BREAK", "device": "AB",
                   "deviceTypeId": "T", "groupId": "G", "registrationId": 9, "time": 300_000,
                   "deviceLastSeqnumber": 10, "deviceMessageSeqnumber": 14, "missing": 3}
    (back,) = run(e, frame(12, t=3_000_000), 400.0).events
    assert back == {"id": "AB:OUT_OF_SEQUENCE:12:3000000", "type": "OUT_OF_SEQUENCE", "device": "AB",
                    "deviceTypeId": "T", "groupId": "G", "registrationId": 9, "time": 400_000,
                    "deviceLastSeqnumber": 14, "deviceMessageSeqnumber": 12}
    assert run(e, frame(15, t=4_000_000), 500.0).events == []  # the next number: no gap
    del cfg.devices["AB"]["country_code"], cfg.devices["AB"]["lat"]
    run(e, frame(16, t=5_000_000), 600.0)
    (plain,) = e.tick(700.0).advanced[-1:]
    assert plain["countryCode"] == "000" and "fixedLat" not in plain


def test_avg_snr_is_the_mean_of_the_last_25_from_the_15th_message():
    e = IngestEngine(config(), window_s=WINDOW)
    snrs = [float(n % 7) + 0.125 for n in range(30)]
    seen = [run(e, Frame(station="0001", device="AB", seqNumber=n + 1, time=n, data="00", rssi=-100.0, snr=snr,
                         freq=868_100_000, rep=0, ack=False, oob=False), 100.0 + n).messages[0]["avgSnr"]
            for n, snr in enumerate(snrs)]
    assert seen[:14] == ["N/A"] * 14
    assert seen[14] == round(sum(snrs[:15]) / 15, 2) and seen[29] == round(sum(snrs[5:30]) / 25, 2)
    assert seen[29] != round(sum(snrs[:30]) / 30, 2)


def test_rejections_name_their_reason():
    cfg = config(devices=("AB", "CD", "EF", "GH"))
    cfg.devices["CD"]["state"] = 5   # deleted
    cfg.devices["EF"]["state"] = 6   # suspended
    cfg.devices["GH"]["token_end"] = 100_000
    cfg.stations["0004"] = {"lat": 0.0, "lng": 0.0, "state": "planned"}
    e = IngestEngine(cfg, window_s=WINDOW)
    assert run(e, frame(1, station="0004"), 1.0).rejected == [("station.disabled",
                                                               "station 0004 is planned, not enabled")]
    assert run(e, frame(1, device="CD"), 1.0).rejected == [("unknown-device", "device CD is not registered")]
    assert run(e, frame(1, device="EF"), 1.0).rejected == [("device-suspended", "device EF is suspended")]
    assert run(e, frame(1, device="GH"), 100.0).messages  # the token ends at 100 s: still good at it
    assert run(e, frame(2, device="GH"), 100.001).rejected == [("off-contract", "device GH has no valid token")]
    for token_state, ok in ((0, True), (2, True), (1, False), (3, False), (-1, False)):
        cfg.devices["AB"]["token_state"] = token_state
        out = run(e, frame(10 + token_state, t=token_state + 10), 5.0)
        assert bool(out.messages) == ok, token_state


def test_newer_is_up_to_half_the_counter_ahead():
    assert is_newer(2047, 0) and not is_newer(2048, 0) and not is_newer(0, 0)
    assert is_newer(1365, 0) and is_newer(1366, 0)  # a third of the counter is still newer


def test_a_device_state_survives_the_changelog_whole_on_its_new_partition():
    cfg = config(keep_alive=60)
    cfg.devices["AB"]["registration_id"] = 4
    e = IngestEngine(cfg, window_s=WINDOW)
    run(e, frame(10, t=1), 100.0)
    run(e, frame(10, "0002", t=1), 101.0)
    run(e, frame(7, t=2), 102.0)  # trashed
    e.tick(100.0 + WINDOW)
    run(e, frame(11, oob=True, data=encode_status(3.3, 20.0), t=3), 190.0)
    run(e, frame(12, t=4), 200.0)
    st = e.states["AB"]
    record = orjson.loads(orjson.dumps(st.to_json()))
    assert record["rg"] == 4 and record["lt"] == 4 and record["ts"] == 7 and record["c"] == [[10, 125.0]]
    back = DeviceState.from_json(record, 3)
    assert back.partition == 3
    for name in ("device", "registration", "last_seq", "last_time", "trash_seq", "closed", "disengage_seen",
                 "last_seen", "keepalive_deadline", "breached_at", "day", "day_count"):
        assert getattr(back, name) == getattr(st, name), name
    assert list(back.snrs) == list(st.snrs) and set(back.windows) == {12} and set(back.oob_windows) == {11}
    assert back.oob_windows[11].oob is True and back.windows[12].to_json() == st.windows[12].to_json()
    restored = IngestEngine(cfg, window_s=WINDOW)
    restored.restore(back)
    late = run(restored, frame(10, "0003", t=1), 300.0)
    assert late.messages == [] and restored.counters.late == 1  # it remembers the closed window
    out = restored.tick(1000.0)
    assert [a["seqNumber"] for a in late.advanced + out.advanced] == [12]
    assert restored.open_windows == 0  # the service frame's window closed too
    assert [ev["type"] for ev in late.events + out.events] == ["ERROR"]


def test_a_state_without_keep_alive_restores_beside_one_with():
    cfg = config(keep_alive=60, devices=("AB", "CD"))
    cfg.device_types["N"] = {"id": "N", "keep_alive": 0}
    cfg.devices["CD"]["device_type_id"] = "N"
    e = IngestEngine(cfg, window_s=WINDOW)
    run(e, frame(1), 100.0)
    run(e, frame(1, device="CD"), 100.0)
    again = IngestEngine(cfg, window_s=WINDOW)
    for device in ("CD", "AB"):
        again.restore(DeviceState.from_json(orjson.loads(orjson.dumps(e.states[device].to_json())), 0))
    assert [ev["device"] for ev in again.tick(1000.0).events] == ["AB"]


def test_a_device_registered_again_keeps_its_partition_and_drops_the_old_keep_alive():
    cfg = config(keep_alive=60)
    cfg.devices["AB"]["registration_id"] = 1
    e = IngestEngine(cfg, window_s=WINDOW)
    e.handle(frame(1), 2, Outputs(), 100.0)
    cfg.devices["AB"]["registration_id"] = 2  # registered again, nothing heard since
    assert e.tick(160.0).events == []  # the old registration's keep-alive is over
    e.handle(frame(5, t=2), 2, Outputs(), 170.0)
    assert e.states["AB"].partition == 2 and e.states["AB"].registration == 2
    e.forget_partitions({2})
    assert e.states == {}


def test_a_device_without_a_known_type_has_no_keep_alive_and_the_default_quota():
    cfg = config(keep_alive=60)
    cfg.devices["AB"]["device_type_id"] = "gone"
    cfg.contracts = {"K": {"max_uplink_frames": 1}}
    cfg.devices["CD"] = {**cfg.devices["AB"], "id": "CD", "device_type_id": "T", "contract_id": "K"}
    e = IngestEngine(cfg, window_s=WINDOW, daily_quota=2)
    assert [run(e, frame(n, t=n), 100.0 + n).messages[0]["overQuota"] for n in (1, 2, 3)] == [False, False, True]
    assert e.tick(10_000.0).events == [] and e.keepalive_count == 0
    flags = [run(e, frame(n, device="CD", t=n), 100.0 + n).messages[0]["overQuota"] for n in (1, 2)]
    assert flags == [False, True]  # the device's own contract
    assert (IngestEngine(cfg).window_s, IngestEngine(cfg).daily_quota) == (25.0, 140)


def test_one_tick_closes_every_due_deadline_past_stale_ones():
    cfg = config(keep_alive=60, devices=("AB", "CD"))
    e = IngestEngine(cfg, window_s=WINDOW)
    run(e, frame(1), 100.0)
    run(e, frame(1, device="CD"), 100.0)
    run(e, frame(1, "0002"), 100.0 + WINDOW)  # AB's window closed by its late copy: a stale heap entry
    run(e, frame(2, t=2), 150.0)              # AB's keep-alive moved on: another stale entry
    out = e.tick(165.0)
    assert [a["device"] for a in out.advanced] == ["CD"]
    assert [ev["device"] for ev in out.events] == ["CD"]
    assert e.counters.advanced == 2


def test_the_last_16_closed_windows_are_remembered_and_older_copies_are_out_of_sequence():
    e = IngestEngine(config(), window_s=1.0)
    for seq in range(1, 18):
        run(e, frame(seq, t=seq), 10.0 * seq)
    e.tick(1000.0)
    assert len(e.states["AB"].closed) == 16
    assert run(e, frame(2, "0002", t=2), 1001.0).events == [] and e.counters.late == 1
    assert [ev["type"] for ev in run(e, frame(1, "0002", t=1), 1002.0).events] == ["OUT_OF_SEQUENCE"]

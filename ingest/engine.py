"""The ingest state machine: frames in, messages, aggregates and device events out.

Pure logic, no I/O: the stage feeds it validated frames with the broker's
append time of each, and the wall clock, and publishes what it returns. Per
device it keeps:

* the open DATA_ADVANCED windows, one per seqNumber, each with a deadline
  `window_s` after the append time of its first frame;
* the last accepted seqNumber (12 bits: "newer" means 1..2047 steps ahead,
  modulo 4096), the last trashed one, and a short memory of recently closed
  windows so that a copy arriving after its window is counted as late;
* the keep-alive deadline and whether an ERROR is outstanding;
* the daily uplink counter and the last 25 SNRs (avgSnr).

Decisions, per frame of (device, seqNumber):
  open window                 -> merged; a new station also yields a duplicate reception when the
                                 frame asks for a downlink (the dispatcher's only use of it)
  recently closed window      -> late: counted with its lateness, dropped
  not newer than the last one -> trashed (trashSequenceNumber, OUT_OF_SEQUENCE event)
  otherwise                   -> a new message, emitted at once (SEQUENCE_BREAK event on a gap)
Out-of-band frames are deduplicated the same way but are not messages: they
become STATUS / REPEATER device events and do not count toward the quota.

Same decision with or without a crash. Every decision is a function of the
frames in partition order and their broker append times, never of when the
worker happens to read them, so a worker that restarts from its changelog and
reads a backlog decides exactly what it would have decided live:

* a copy belongs to its window when its append time is *before* the window's
  deadline (the first copy's append time + `window_s`), to the millisecond;
  appended at or after the deadline it is late, whether the window is still in
  memory or was already closed (a worker catching up closes the device's due
  windows before it looks at the copy: `close_due`);
* likewise a keep-alive deadline at or before a frame's append time is breached
  (ERROR) before that frame counts as a sign of life (RESTORED);
* the wall clock only decides *when* a due window or breach is emitted (`tick`,
  once every frame appended before the deadline has been read), never what it
  holds, and DATA_ADVANCED carries no emission time: one published before a
  crash and again after it is the same record, with the same id.
"""
from __future__ import annotations

import heapq
import time as _time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, cast

from ingest import aggregate
from ingest.oob import OobError, decode_oob
from radio.quality import LQI_NAMES, link_quality
from schemas import device_events as events
from schemas.advanced_messages import AdvancedMessage, Duplicate, Rinfo, advanced_message
from schemas.device_events import DeviceEvent, Subject
from schemas.device_state import DeviceStateRecord, WindowRecord
from schemas.frames import SEQ_MODULO, Frame
from schemas.messages import Message, duplicate_reception, first_reception

CLOSED_MEMORY = 16
SNR_HISTORY = 25
AVG_SNR_MIN = 15


class Config(Protocol):
    devices: dict[str, dict[str, Any]]
    device_types: dict[str, dict[str, Any]]
    stations: dict[str, dict[str, Any]]


def is_newer(seq: int, last: int) -> bool:
    """True if `seq` comes after `last` on the 12-bit wrapping counter."""
    return 1 <= (seq - last) % SEQ_MODULO < SEQ_MODULO // 2


@dataclass(slots=True)
class Window:
    message_id: str
    seq: int
    time: int               # epoch ms of the first frame (station clock)
    opened_at: float        # epoch s: the broker's append time of the first frame
    deadline: float         # epoch s: opened_at + window; copies appended from then on are late
    data: str
    ack: bool
    oob: bool
    # station id -> [best rssi, best snr, repetitions bitmask, freq]
    stations: dict[str, list] = field(default_factory=dict)
    # the device registration the message belongs to (see DeviceState.registration)
    registration: int | None = None

    def to_json(self) -> WindowRecord:
        return [self.message_id, self.seq, self.time, self.opened_at, self.deadline, self.data,
                self.ack, self.oob, self.stations, self.registration]

    @classmethod
    def from_json(cls, v: WindowRecord) -> "Window":
        return cls(*v)


@dataclass(slots=True)
class DeviceState:
    device: str
    partition: int = 0
    # The registration (devices.registration_id) this state belongs to: a device deleted and
    # registered again, or moved to another group, starts afresh (sequence, windows, keep-alive).
    registration: int | None = None
    last_seq: int | None = None
    last_time: int | None = None
    trash_seq: int | None = None
    windows: dict[int, Window] = field(default_factory=dict)
    oob_windows: dict[int, Window] = field(default_factory=dict)
    # seq (+4096 for out-of-band) -> when its window closed (epoch s)
    closed: dict[int, float] = field(default_factory=dict)
    disengage_seen: int = 0
    last_seen: float | None = None                           # append time (epoch s) of the last accepted frame
    keepalive_deadline: float | None = None
    breached_at: float | None = None
    day: int = 0
    day_count: int = 0
    snrs: deque = field(default_factory=lambda: deque(maxlen=SNR_HISTORY))

    def to_json(self) -> DeviceStateRecord:
        """The device's `ingest.state` record (`schemas.device_state`)."""
        return {
            "d": self.device, "ls": self.last_seq, "lt": self.last_time, "ts": self.trash_seq,
            "w": [w.to_json() for w in self.windows.values()],
            "ow": [w.to_json() for w in self.oob_windows.values()],
            "c": [[k, v] for k, v in self.closed.items()], "ds": self.disengage_seen,
            "seen": self.last_seen, "ka": self.keepalive_deadline, "br": self.breached_at,
            "day": self.day, "dc": self.day_count, "snr": list(self.snrs), "rg": self.registration,
        }

    @classmethod
    def from_json(cls, v: DeviceStateRecord, partition: int) -> "DeviceState":
        st = cls(device=v["d"], partition=partition, last_seq=v["ls"], last_time=v["lt"], trash_seq=v["ts"],
                 disengage_seen=v["ds"], last_seen=v["seen"], keepalive_deadline=v["ka"],
                 breached_at=v["br"], day=v["day"], day_count=v["dc"], registration=v.get("rg"))
        st.windows = {w[1]: Window.from_json(w) for w in v["w"]}
        st.oob_windows = {w[1]: Window.from_json(w) for w in v["ow"]}
        st.closed = {cast(int, k): t for k, t in v["c"]}  # [seq, closed at]  # pragma: no mutate (cast)
        st.snrs.extend(v["snr"])
        return st


@dataclass
class Outputs:
    """What one call to the engine produced, by destination."""

    messages: list[Message] = field(default_factory=list)          # DATA messages and duplicate receptions
    advanced: list[AdvancedMessage] = field(default_factory=list)  # DATA_ADVANCED aggregates
    events: list[DeviceEvent] = field(default_factory=list)        # device events
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (reason code, message) per frame
    touched: set[str] = field(default_factory=set)          # devices whose state changed

    def mark(self) -> tuple[int, int, int, int]:
        """Where the lists end now (the last is `rejected`), for `truncate`."""
        return len(self.messages), len(self.advanced), len(self.events), len(self.rejected)

    def truncate(self, mark: tuple[int, int, int, int]) -> None:
        """Drop what was added since `mark` (the outputs of a frame that failed half-way)."""
        del self.messages[mark[0]:], self.advanced[mark[1]:], self.events[mark[2]:], self.rejected[mark[3]:]

    def extend(self, other: "Outputs") -> None:
        self.messages.extend(other.messages)
        self.advanced.extend(other.advanced)
        self.events.extend(other.events)
        self.rejected.extend(other.rejected)
        self.touched |= other.touched


@dataclass
class Counters:
    """Running totals, for metrics and tests."""

    messages: int = 0
    oob: int = 0
    duplicates: int = 0
    repetitions: int = 0
    late: int = 0
    trashed: int = 0
    over_quota: int = 0
    advanced: int = 0
    late_lateness: list[float] = field(default_factory=list)


class IngestEngine:
    """Dedup, windows, sequence numbers and keep-alive for the devices of some partitions."""

    def __init__(self, config: Config, *, window_s: float = 25.0, daily_quota: int = 140,
                 clock=_time.time) -> None:
        self.config = config
        self.window_s = window_s
        self.daily_quota = daily_quota
        self.clock = clock
        self.states: dict[str, DeviceState] = {}
        self._window_heap: list[tuple[float, str, int, bool]] = []
        self._keepalive_heap: list[tuple[float, str]] = []
        self.counters = Counters()

    # State -------------------------------------------------------------
    def state(self, device: str, partition: int) -> DeviceState:
        st = self.states.get(device)
        if st is None:
            st = self.states[device] = DeviceState(device=device, partition=partition)  # pragma: no mutate
        st.partition = partition
        return st

    def _registered_state(self, device: str, partition: int, registration: int | None) -> DeviceState:
        """The device's state for its current registration; the state of an earlier one is dropped."""
        st = self.state(device, partition)
        if registration is not None and st.registration != registration:
            if st.registration is not None:
                st = self.states[device] = DeviceState(device=device, partition=partition)
            st.registration = registration
        return st

    def restore(self, st: DeviceState) -> None:
        """Adopt a state read back from the changelog and index its deadlines."""
        self.states[st.device] = st
        for w in st.windows.values():
            heapq.heappush(self._window_heap, (w.deadline, st.device, w.seq, False))
        for w in st.oob_windows.values():
            heapq.heappush(self._window_heap, (w.deadline, st.device, w.seq, True))
        if st.keepalive_deadline is not None and st.breached_at is None:
            heapq.heappush(self._keepalive_heap, (st.keepalive_deadline, st.device))

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop the state of devices whose partitions moved to another worker."""
        for device in [d for d, st in self.states.items() if st.partition in partitions]:
            del self.states[device]
        alive = self.states
        self._window_heap = [e for e in self._window_heap if e[1] in alive]
        heapq.heapify(self._window_heap)
        self._keepalive_heap = [e for e in self._keepalive_heap if e[1] in alive]
        heapq.heapify(self._keepalive_heap)

    @property
    def open_windows(self) -> int:
        return sum(len(st.windows) + len(st.oob_windows) for st in self.states.values())

    @property
    def keepalive_count(self) -> int:
        return sum(1 for st in self.states.values() if st.keepalive_deadline is not None)

    # Frames ------------------------------------------------------------
    def handle(self, frame: Frame, partition: int, out: Outputs, now: float | None = None) -> None:
        """Process one valid frame appended at `now` (broker time); appends what it produces to `out`."""
        now = self.clock() if now is None else now
        self.close_due(frame.device, now, out)
        station = self.config.stations.get(frame.station)
        if station is None:
            out.rejected.append(("station.unknown", f"station {frame.station} is not registered"))
            return
        if station.get("state", "enabled") != "enabled":
            out.rejected.append(("station.disabled", f"station {frame.station} is {station.get('state')}, "
                                                     "not enabled"))
            return
        device = self.config.devices.get(frame.device)
        if device is None or device.get("state") == 5:
            out.rejected.append(("unknown-device", f"device {frame.device} is not registered"))
            return
        if device.get("state") == 6:
            out.rejected.append(("device-suspended", f"device {frame.device} is suspended"))
            return
        token_end = device.get("token_end")
        if device.get("token_state", 0) in (-1, 1, 3) or (token_end is not None and token_end < now * 1000):
            out.rejected.append(("off-contract", f"device {frame.device} has no valid token"))
            return
        st = self._registered_state(frame.device, partition, device.get("registration_id"))
        windows = st.oob_windows if frame.oob else st.windows
        w = windows.get(frame.seqNumber)
        if w is not None:
            self._merge(w, frame, device, out)
            out.touched.add(st.device)
            return
        closed_key = frame.seqNumber + SEQ_MODULO * frame.oob
        if closed_key in st.closed:
            self.counters.late += 1
            self.counters.late_lateness.append(max(0.0, now - st.closed[closed_key]))
            return
        if frame.oob:
            self._open_oob(st, frame, device, now, out)
            return
        disengaged_at = device.get("disengaged_at") or 0
        disengaged = disengaged_at > st.disengage_seen
        if st.last_seq is not None and not disengaged and not is_newer(frame.seqNumber, st.last_seq):
            self.counters.trashed += 1
            st.trash_seq = frame.seqNumber
            out.touched.add(st.device)
            out.events.append(events.out_of_sequence(_subject(st, device), _ms(now), seq=frame.seqNumber,
                                                     frame_time=frame.time, last_seq=st.last_seq))
            return
        if disengaged:
            st.disengage_seen = disengaged_at
        self._open_message(st, frame, device, now, out)

    def _open_message(self, st: DeviceState, frame: Frame, device: dict, now: float, out: Outputs) -> None:
        message_id = f"{frame.device}-{frame.seqNumber}-{frame.time}"
        if st.last_seq is not None and (frame.seqNumber - st.last_seq) % SEQ_MODULO > 1:
            out.events.append(events.sequence_break(_subject(st, device), _ms(now), message_id=message_id,
                                                    last_seq=st.last_seq, seq=frame.seqNumber,
                                                    missing=(frame.seqNumber - st.last_seq) % SEQ_MODULO - 1))
        st.last_seq = frame.seqNumber
        st.last_time = frame.time
        day = int(now // 86400)
        if day != st.day:
            st.day, st.day_count = day, 0
        st.day_count += 1
        quota = self._daily_quota(device)
        over_quota = st.day_count > quota
        if over_quota:
            self.counters.over_quota += 1
        st.snrs.append(frame.snr)
        avg_snr = _avg_snr(st)
        self._seen(st, device, now, out, cause=message_id)
        w = Window(message_id, frame.seqNumber, frame.time, now, now + self.window_s, frame.data,
                   frame.ack, False, {frame.station: [frame.rssi, frame.snr, 1 << frame.rep, frame.freq]},
                   st.registration)
        st.windows[frame.seqNumber] = w
        heapq.heappush(self._window_heap, (w.deadline, st.device, w.seq, False))
        self.counters.messages += 1
        out.touched.add(st.device)
        station = self.config.stations.get(frame.station) or {}
        out.messages.append(first_reception(
            message_id, frame, device_type_id=device.get("device_type_id"), group_id=device.get("group_id"),
            registration_id=st.registration, avg_snr=avg_snr, over_quota=over_quota, ingested_at_ms=_ms(now),
            station_position=(station["lat"], station["lng"]) if station.get("lat") is not None else None))

    def _open_oob(self, st: DeviceState, frame: Frame, device: dict, now: float, out: Outputs) -> None:
        try:
            decoded = decode_oob(frame.data)
        except OobError as exc:
            out.rejected.append((exc.code, str(exc)))
            return
        message_id = f"{frame.device}-{frame.seqNumber}-{frame.time}-oob"
        w = Window(message_id, frame.seqNumber, frame.time, now, now + self.window_s, frame.data,
                   False, True, {frame.station: [frame.rssi, frame.snr, 1 << frame.rep, frame.freq]},
                   st.registration)
        st.oob_windows[frame.seqNumber] = w
        heapq.heappush(self._window_heap, (w.deadline, st.device, w.seq, True))
        self.counters.oob += 1
        self._seen(st, device, now, out, cause=message_id)
        out.touched.add(st.device)
        kind = decoded.pop("type")
        out.events.append(events.service_frame(kind, _subject(st, device), _ms(now), message_id=message_id,
                                               seq=frame.seqNumber, station=frame.station, rssi=frame.rssi,
                                               snr=frame.snr, avg_snr=_avg_snr(st), frame_time=frame.time,
                                               decoded=decoded))

    def _merge(self, w: Window, frame: Frame, device: dict, out: Outputs) -> None:
        rec = w.stations.get(frame.station)
        if rec is None:
            w.stations[frame.station] = [frame.rssi, frame.snr, 1 << frame.rep, frame.freq]
            self.counters.duplicates += 1
            # Only the downlink dispatcher reads duplicate receptions, and only those asking for a downlink
            # (workers.downlink_plan.heard): the router and the store skip them, and the DATA_ADVANCED record
            # carries every station. Not publishing the others saves a record per extra station (issue 19).
            if not w.oob and frame.ack:
                out.messages.append(duplicate_reception(
                    w.message_id, frame, device_type_id=device.get("device_type_id"),
                    group_id=device.get("group_id"), registration_id=w.registration))
            return
        self.counters.repetitions += 1
        rec[0] = max(rec[0], frame.rssi)
        rec[1] = max(rec[1], frame.snr)
        rec[2] |= 1 << frame.rep

    # Keep-alive --------------------------------------------------------
    def _seen(self, st: DeviceState, device: dict, now: float, out: Outputs, *, cause: str) -> None:
        st.last_seen = now
        if st.breached_at is not None:
            out.events.append(events.restored(_subject(st, device), _ms(now), message_id=cause,
                                              info=f"Messages received again after {_fmt(st.breached_at)}",
                                              last_error_time_ms=_ms(st.breached_at)))
            st.breached_at = None
        keep_alive = self._keep_alive(device)
        if keep_alive:
            st.keepalive_deadline = now + keep_alive
            heapq.heappush(self._keepalive_heap, (st.keepalive_deadline, st.device))
        else:
            st.keepalive_deadline = None

    def _daily_quota(self, device: dict) -> int:
        """The device's contract's maxUplinkFrames, else the default (140)."""
        contracts = getattr(self.config, "contracts", None) or {}
        contract_id = device.get("contract_id")
        if contract_id is None:
            dtype = self.config.device_types.get(device.get("device_type_id") or "") or {}  # pragma: no mutate
            contract_id = dtype.get("contract_id")
        contract = contracts.get(contract_id or "")  # pragma: no mutate (no contract "XXXX")
        return (contract or {}).get("max_uplink_frames") or self.daily_quota

    def _keep_alive(self, device: dict) -> int:
        dtype = self.config.device_types.get(device.get("device_type_id") or "")  # pragma: no mutate (no type "XXXX")
        return int(dtype.get("keep_alive") or 0) if dtype else 0

    # Deadlines ---------------------------------------------------------
    def close_due(self, device_id: str, at: float, out: Outputs) -> None:
        """Close the device's windows, and raise its keep-alive breach, whose deadline is at or
        before `at` (a frame's append time), in deadline order, as `tick` would have by then.

        `handle` calls it first, so a copy or a frame read late (a worker catching up after a
        restart) meets the state the live run had when it was appended."""
        st = self.states.get(device_id)
        if st is None:
            return
        due = [(w.deadline, w.seq, oob, w) for oob, windows in ((False, st.windows), (True, st.oob_windows))
               for w in windows.values() if _reached(at, w.deadline)]
        for _, _, oob, w in sorted(due, key=lambda d: d[:3]):  # pragma: no mutate (unique keys)
            self._close(st, w, oob, out)
        if st.keepalive_deadline is not None and st.breached_at is None and _reached(at, st.keepalive_deadline):
            self._breach(st, out)

    def tick(self, now: float | None = None, watermark: Callable[[int], float] | None = None) -> Outputs:
        """Close every window and raise every keep-alive breach that is due.

        Deadlines are broker time (when Kafka appended the frame). A deadline is
        due when `now` (the wall clock) has passed it and, if `watermark` is
        given, when every frame of the device's partition appended before it has
        been processed: a worker catching up on a backlog never closes a window
        whose copies are still waiting in that backlog. What a window holds does
        not depend on when it closes (see the module docstring).
        """
        now = self.clock() if now is None else now
        out = Outputs()
        held: list[tuple[float, str, int, bool]] = []
        heap = self._window_heap
        while heap and _reached(now, heap[0][0]):   # to the millisecond, as close_due
            entry = heapq.heappop(heap)
            deadline, device_id, seq, oob = entry
            st = self.states.get(device_id)
            if st is None:
                continue
            w = (st.oob_windows if oob else st.windows).get(seq)
            if w is None or w.deadline != deadline:
                continue
            if watermark is not None and not _reached(watermark(st.partition), deadline):
                held.append(entry)
                continue
            self._close(st, w, oob, out)
        for entry in held:
            heapq.heappush(heap, entry)
        kheld: list[tuple[float, str]] = []
        kheap = self._keepalive_heap
        while kheap and _reached(now, kheap[0][0]):
            kentry = heapq.heappop(kheap)
            deadline, device_id = kentry
            st = self.states.get(device_id)
            if st is None or st.keepalive_deadline != deadline or st.breached_at is not None:
                continue
            if watermark is not None and not _reached(watermark(st.partition), deadline):
                kheld.append(kentry)
                continue
            self._breach(st, out)
        for kentry in kheld:
            heapq.heappush(kheap, kentry)
        return out

    def _close(self, st: DeviceState, w: Window, oob: bool, out: Outputs) -> None:
        """Close one window: remember it among the recently closed, emit its DATA_ADVANCED."""
        record = None if oob else self._advanced(st, w)  # built first: if it raises, nothing changed
        del (st.oob_windows if oob else st.windows)[w.seq]
        out.touched.add(st.device)
        key = w.seq + SEQ_MODULO * oob
        st.closed.pop(key, None)  # a number used again after the wrap is the latest closed, not the oldest
        st.closed[key] = w.deadline
        while len(st.closed) > CLOSED_MEMORY:
            del st.closed[next(iter(st.closed))]
        if record is not None:
            out.advanced.append(record)
            self.counters.advanced += 1

    def _breach(self, st: DeviceState, out: Outputs) -> None:
        """The device missed its keep-alive deadline: one ERROR event (until it is heard again)."""
        device = self.config.devices.get(st.device) or {}
        if device.get("registration_id") not in (None, st.registration):
            return  # registered again since: the old registration's keep-alive is over
        deadline = st.keepalive_deadline
        assert deadline is not None  # both callers checked it is set (and due)
        st.breached_at = deadline
        out.touched.add(st.device)
        # The key truncates (not _ms) as earlier versions did: a breach raised again keeps its id.
        out.events.append(events.keep_alive_error(_subject(st, device), _ms(deadline),
                                                  deadline_key_ms=int(deadline * 1000),
                                                  info=f"No message received since {_fmt(st.last_seen)}",
                                                  last_seen_ms=_ms(st.last_seen or 0)))  # pragma: no mutate

    def _advanced(self, st: DeviceState, w: Window) -> AdvancedMessage:
        device = self.config.devices.get(st.device) or {}
        duplicates: list[Duplicate] = [{"bsId": bs, "rssi": r[0], "snr": r[1], "nbRep": bin(r[2]).count("1")}
                                       for bs, r in w.stations.items()]
        best_rssi = max(d["rssi"] for d in duplicates)
        quality = link_quality(best_rssi, len(duplicates))
        location = aggregate.computed_location([(d["bsId"], d["rssi"]) for d in duplicates],
                                               self.config.stations)
        rinfos: list[Rinfo] = [{"baseStation": bs, "rssi": r[0], "snr": r[1], "freq": r[3],
                                "rep": bin(r[2]).count("1")} for bs, r in w.stations.items()]
        return advanced_message(
            w.message_id, st.device, device_type_id=device.get("device_type_id"), group_id=device.get("group_id"),
            registration_id=w.registration, seq_number=w.seq, time_ms=w.time, data=w.data, ack=w.ack,
            duplicates=duplicates, rinfos=rinfos, lqi=LQI_NAMES[quality], link_quality=quality,
            computed_location=location, operator_name="Backhaul", country_code=device.get("country_code") or "000",
            deadline_ms=_ms(w.deadline),
            fixed_position=(device["lat"], device["lng"]) if device.get("lat") is not None else None)

    def com_state(self, device: str, now: float | None = None) -> tuple[int, int]:
        """Communication status (Sigfox comState code, missed keep-alive periods)."""
        now = self.clock() if now is None else now
        st = self.states.get(device)
        config = self.config.devices.get(device) or {}
        if config.get("token_state", 0) != 0:
            return 4, 0                                  # NA: no valid token
        if st is None or st.last_seen is None:
            return 5, 0                                  # NOT_SEEN
        keep_alive = self._keep_alive(config)
        if not keep_alive:
            return 0, 0                                  # NO keep-alive
        if st.breached_at is None:
            return 1, 0                                  # OK
        return 3, int((now - st.last_seen) // keep_alive)  # KO, periods missed  # pragma: no mutate (/ is the same)


def _subject(st: DeviceState, device: dict) -> Subject:
    """Whom the device's events are about: the device, its configuration and its current registration."""
    return Subject(st.device, device.get("device_type_id"), device.get("group_id"), st.registration)


def _ms(epoch_s: float) -> int:
    """Epoch milliseconds, the broker's resolution (rounded: 1700000000.123 * 1000 is 1700000000122.99...)."""
    return round(epoch_s * 1000)


def _reached(at: float, deadline: float) -> bool:
    """True when broker time `at` is at or past `deadline`, to the millisecond, so that float
    rounding never decides which side of a deadline a copy falls on."""
    return _ms(at) >= _ms(deadline)


def _avg_snr(st: DeviceState) -> float | str:
    """Mean SNR of the device's last 25 messages, "N/A" below 15 (as Sigfox)."""
    return round(sum(st.snrs) / len(st.snrs), 2) if len(st.snrs) >= AVG_SNR_MIN else "N/A"


def _fmt(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "never"  # pragma: no mutate (only while never seen: no keep-alive then)
    return _time.strftime("%Y-%m-%d %H:%M:%S UTC", _time.gmtime(epoch_s))

"""One measured load step: drive the network at a rate, wait for the callbacks, account for them.

The single run is one step; `--find-max` is a series of steps on the same
pipeline. A step ends when every message it sent has both its DATA and its
DATA_ADVANCED callback, or `window + grace` seconds after its last frame,
whichever comes first; what has not arrived by then is lost.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from bench.accounting import Ledger, percentiles
from bench.cpu import CpuMeter, PidSource
from bench.lag import LagProbe
from bench.load import Networks, drive, first_frames
from bench.progress import Progress
from bench.receiver import ADVANCED, DATA, Arrival, InProcessReceiver, SubprocessReceiver
from bench.series import per_second
from program.supervised import WorkerProcess
from schemas.frames import FrameRecord

POLL_S = 0.5
LAG_EVERY_S = 2.0


@dataclass
class Rig:
    """What every step shares: the network, a producer, the receiver and the processes to watch."""

    networks: Networks
    producer: object
    receiver: InProcessReceiver | SubprocessReceiver
    cpu_sources: dict[str, PidSource]
    window_s: float
    grace_s: float
    max_stations: int
    progress: Progress
    lag: LagProbe | None = None
    workers: list[WorkerProcess] = field(default_factory=list)
    arrivals_seen: int = 0
    steps: int = 0
    last_record: list[FrameRecord] = field(default_factory=list)

    async def new_arrivals(self) -> list[Arrival]:
        arrivals = await self.receiver.arrivals(self.arrivals_seen)
        self.arrivals_seen += len(arrivals)
        return arrivals


class LagSeries:
    """Consumer-group lag sampled every LAG_EVERY_S seconds during a step."""

    def __init__(self, probe: LagProbe | None, t0: float) -> None:
        self.probe = probe
        self.t0 = t0
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._next = 0.0

    async def maybe_sample(self) -> None:
        now = time.time()
        if self.probe is None or now < self._next:
            return
        self._next = now + LAG_EVERY_S
        try:
            self.samples.append((round(now - self.t0, 1), await self.probe.sample()))
        except Exception:  # diagnostics only: never fail a step because of them
            self.probe = None

    def series(self) -> dict:
        groups = sorted({g for _, lags in self.samples for g in lags})
        return {"second": [t for t, _ in self.samples],
                "groups": {g: [lags.get(g) for _, lags in self.samples] for g in groups},
                "max": {g: max((lags.get(g) or 0) for _, lags in self.samples) for g in groups}}


async def parked(workers: list[WorkerProcess]) -> dict[str, float]:
    """Deliveries parked untried so far (`backhaul_deliveries_parked_total`), by reason, over the workers."""
    total: dict[str, float] = {}
    for w in workers:
        with contextlib.suppress(Exception):  # diagnostics only: a worker that does not answer adds nothing
            for family in text_string_to_metric_families(await w.metrics()):
                if family.name == "backhaul_deliveries_parked":
                    for sample in family.samples:
                        if sample.name.endswith("_total"):
                            reason = sample.labels["reason"]
                            total[reason] = total.get(reason, 0.0) + sample.value
    return total


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


async def run_step(rig: Rig, *, rate: float, duration: float, label: str = "run", warmup: float = 0.0,
                   grace: float | None = None) -> dict:
    """Drive the network at `rate` messages/s for `warmup + duration` s and account for every message.

    A message still without its callbacks `grace` seconds (default: the rig's) after the last
    frame plus the window counts as lost.

    Loss and duplicates count every message; the `steadyLatencyMs` percentiles only count
    messages sent after `warmup` seconds, once DATA_ADVANCED callbacks (one window
    after the first messages) add to the DATA ones.
    """
    duration = warmup + duration
    rig.steps += 1
    record: list[FrameRecord] = []
    early: list[Arrival] = []
    meter = CpuMeter(rig.cpu_sources)
    parked_before = await parked(rig.workers)
    t0 = time.time()
    meter.start(t0)
    sim = asyncio.create_task(drive(rig.networks.full, rate=rate, duration=duration,
                                    max_stations=rig.max_stations, seed=rig.steps + 1,
                                    producer=rig.producer, record=record))
    counts = {DATA: 0, ADVANCED: 0}
    lag = LagSeries(rig.lag, t0)
    while not sim.done():
        await asyncio.wait([sim], timeout=POLL_S)
        await lag.maybe_sample()
        for a in await rig.new_arrivals():
            early.append(a)
            counts[a[0]] = counts.get(a[0], 0) + 1
        el = time.time() - t0
        rig.progress.update(f"{label}: {el:5.1f}/{duration:.0f} s  sent {len(record):,} frames "
                            f"({len(record) / max(el, 1e-9):,.0f}/s)  received {counts[DATA]:,} DATA "
                            f"{counts[ADVANCED]:,} DATA_ADVANCED")
    sent = sim.result()
    load_cpu = meter.sample(time.time())
    # The last frame's own time, not the simulator's return (which includes its final pacing sleep).
    t_sent = max((f["time"] for f in record), default=t0 * 1000) / 1000

    first = first_frames(record)
    ledger = Ledger(first, rig.window_s)
    ledger.add(early)
    deadline = t_sent + rig.window_s + (rig.grace_s if grace is None else grace)
    n = len(first)
    while not ledger.complete() and time.time() < deadline:
        await asyncio.sleep(POLL_S)
        await lag.maybe_sample()
        ledger.add(await rig.new_arrivals())
        rig.progress.update(f"{label}: waiting for callbacks  DATA {len(ledger.arrived[DATA]):,}/{n:,}  "
                            f"DATA_ADVANCED {len(ledger.arrived[ADVANCED]):,}/{n:,}  "
                            f"{max(0.0, deadline - time.time()):.0f} s left")
    ledger.add(await rig.new_arrivals())
    step_cpu = meter.sample(time.time())
    cpu = {"load": load_cpu, "step": step_cpu, "cpuMsPerMessage": {
        k: round(v * 1000 / max(1, len(first)), 3) for k, v in step_cpu["cpuSeconds"].items()}}
    rig.last_record = record
    summary = ledger.summary()
    rig.progress.done(f"{label}: {n:,} messages, {summary['lostMessages']} lost, "
                      f"{summary['duplicates']} duplicates")
    result = _result(label, rate, duration, sent, record, ledger, summary, cpu, t0, t_sent, rig)
    result["warmupS"] = warmup
    result["steadyLatencyMs"] = percentiles(ledger.latencies_ms(since_ms=(t0 + warmup) * 1000))
    result["lag"] = lag.series()
    parked_after = await parked(rig.workers)
    result["parked"] = {k: int(v - parked_before.get(k, 0.0)) for k, v in parked_after.items()}
    return result


def _result(label: str, rate: float, duration: float, sent: dict, record: list[FrameRecord], ledger: Ledger,
            summary: dict, cpu: dict, t0: float, t_sent: float, rig: Rig) -> dict:
    n_messages, n_frames = len(ledger.first_ms), len(record)
    unregistered = sum(1 for device, _ in ledger.first_ms if device in rig.networks.unregistered)
    data_at = ledger.arrived[DATA].values()
    adv_at = ledger.arrived[ADVANCED].values()
    data_span = (max(data_at) - t0) if data_at else 0.0
    adv_span = (max(adv_at) - t0 - rig.window_s) if adv_at else 0.0
    send_s = t_sent - t0
    return {
        "label": label,
        "startedAt": round(t0, 3),
        "targetMessagesPerS": rate,
        "durationS": duration,
        "sent": {"messages": n_messages, "frames": n_frames, "unregisteredMessages": unregistered,
                 "framesPerMessage": round(n_frames / max(1, n_messages), 2), "seconds": round(send_s, 2),
                 "simulator": sent},
        "offered": {"messagesPerS": _rate(n_messages, send_s), "framesPerS": _rate(n_frames, send_s)},
        "throughput": {
            # first frame sent -> last DATA callback received
            "framesPerS": _rate(n_frames, data_span), "messagesPerS": _rate(n_messages, data_span),
            # DATA and DATA_ADVANCED callbacks, each over its own span
            "deliveriesPerS": round(_rate(len(data_at), data_span) + _rate(len(adv_at), adv_span), 1),
        },
        "latencyMs": percentiles(ledger.latencies_ms()),
        "advancedLatenessMs": percentiles(ledger.lateness_ms()),
        "accounting": summary,
        "cpu": cpu,
        "series": per_second(record, ledger, t0),
    }


def sustainable(result: dict, p99_limit_ms: float) -> bool:
    """No message lost and the steady-state DATA p99 within the limit."""
    p99 = result["steadyLatencyMs"]["p99"]
    return result["accounting"]["lostMessages"] == 0 and p99 is not None and p99 <= p99_limit_ms

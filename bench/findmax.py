"""Step load: raise the rate until p99 exceeds the limit or a message is lost; then overload.

After the highest sustainable step, `overload` offers a multiple of its rate (1.5 by
default) for as long as a step: graceful saturation means the pipeline keeps
delivering at about the sustainable rate while overloaded (no collapse) and
drains the backlog afterwards (nothing lost).
"""
from __future__ import annotations

from bench.step import Rig, run_step, sustainable

HOLDS_WITHIN = 0.10  # overloaded, the delivered rate stays within 10 % of the sustainable rate
DRAIN_MARGIN = 2.0   # the backlog is given twice the time it takes at the sustainable rate to drain


async def find_max(rig: Rig, *, start_rate: float, factor: float, duration: float, p99_limit_ms: float,
                   max_steps: int) -> tuple[list[dict], dict | None]:
    """Run steps at start_rate, start_rate*factor, ... ; returns every step and the best sustainable one.

    Each step first runs one DATA_ADVANCED window as a warm-up, so that its `duration`
    seconds carry both callback flows, as a network does in steady state; the p99
    verdict is taken over those seconds.
    """
    steps: list[dict] = []
    best: dict | None = None
    rate = start_rate
    for i in range(max_steps):
        result = await run_step(rig, rate=rate, duration=duration, warmup=rig.window_s,
                                label=f"step {i + 1} @ {rate:,.0f} msg/s")
        result["sustainable"] = sustainable(result, p99_limit_ms)
        steps.append(result)
        if not result["sustainable"]:
            break
        best = result
        rate = round(rate * factor, 1)
    return steps, best


async def overload(rig: Rig, best: dict, *, factor: float, duration: float) -> dict:
    """Offer `factor` x the best step's rate for `duration` s (after a warm-up window), waiting long
    enough afterwards for the backlog to drain; the step carries its `saturation` verdict."""
    rate = round(best["targetMessagesPerS"] * factor, 1)
    backlog_s = duration * (factor - 1)  # seconds of work left at the sustainable rate when the load stops
    result = await run_step(rig, rate=rate, duration=duration, warmup=rig.window_s,
                            label=f"overload x{factor:g} @ {rate:,.0f} msg/s",
                            grace=rig.grace_s + DRAIN_MARGIN * backlog_s)
    result["sustainable"] = False
    result["saturation"] = saturation(result, best)
    return result


def saturation(step: dict, best: dict) -> dict:
    """How an overload step held against the best sustainable one: DATA callbacks a second while
    loaded (after its warm-up) over the sustainable messages a second, and whether the backlog
    drained (nothing lost), how long after the last frame the last DATA callback came."""
    series = step["series"]
    start, end = int(step["warmupS"]), max(int(step["warmupS"]) + 1, int(step["sent"]["seconds"]))
    loaded = series["dataReceived"][start:end]
    delivered = sum(loaded) / max(1, len(loaded))
    advanced = series["advancedReceived"][start:end]
    deliveries = sum(loaded) + sum(advanced)
    rate = best["offered"]["messagesPerS"]
    last_data = max((i for i, n in enumerate(series["dataReceived"]) if n), default=0)
    ratio = round(delivered / rate, 3) if rate else 0.0
    drained = step["accounting"]["lostMessages"] == 0
    return {"offeredMessagesPerS": step["offered"]["messagesPerS"], "sustainableMessagesPerS": rate,
            "dataPerSWhileLoaded": round(delivered, 1),
            "deliveriesPerSWhileLoaded": round(deliveries / max(1, len(loaded)), 1),
            "ratio": ratio, "drained": drained, "drainS": max(0, last_data + 1 - int(step["sent"]["seconds"])),
            "holds": drained and ratio >= 1 - HOLDS_WITHIN}

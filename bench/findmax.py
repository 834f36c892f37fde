"""Step load: raise the rate until p99 exceeds the limit or a message is lost."""
from __future__ import annotations

from bench.step import Rig, run_step, sustainable


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

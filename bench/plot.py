"""The PNG: throughput and latency over time (matplotlib, Agg backend; the optional `bench` extra)."""
from __future__ import annotations

from pathlib import Path


def plot(result: dict, path: Path) -> Path | None:
    """Draw every step's per-second series on one time axis; None if matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (used through matplotlib.ticker)

    steps = result["steps"]
    origin = steps[0]["startedAt"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for i, s in enumerate(steps):
        series = s["series"]
        x = [s["startedAt"] - origin + sec for sec in series["second"]]
        first = i == 0
        top.plot(x, series["framesSent"], color="tab:blue", label="frames sent/s" if first else None)
        top.plot(x, series["dataReceived"], color="tab:green", label="DATA callbacks/s" if first else None)
        top.plot(x, series["advancedReceived"], color="tab:orange", label="DATA_ADVANCED callbacks/s" if first else None)
        bottom.plot(x, series["latencyP50Ms"], color="tab:green", label="p50" if first else None)
        bottom.plot(x, series["latencyP99Ms"], color="tab:red", label="p99" if first else None)
    top.set_ylabel("per second")
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    bottom.set_ylabel("first frame -> DATA callback (ms)")
    bottom.set_xlabel("seconds since start")
    bottom.set_yscale("log")
    bottom.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    bottom.legend(loc="upper right")
    bottom.grid(alpha=0.3, which="both")
    fig.suptitle(result["title"])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

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
    fig, (top, bottom, lag) = plt.subplots(3, 1, figsize=(11, 9), sharex=True,
                                           gridspec_kw={"height_ratios": [3, 3, 2]})
    colors: dict[str, str] = {}  # consumer group -> line color
    for i, s in enumerate(steps):
        series = s["series"]
        x = [s["startedAt"] - origin + sec for sec in series["second"]]
        first = i == 0
        top.plot(x, series["framesSent"], color="tab:blue", label="frames sent/s" if first else None)
        top.plot(x, series["dataReceived"], color="tab:green", label="DATA callbacks/s" if first else None)
        top.plot(x, series["advancedReceived"], color="tab:orange", label="DATA_ADVANCED callbacks/s" if first else None)
        bottom.plot(x, series["latencyP50Ms"], color="tab:green", label="p50" if first else None)
        bottom.plot(x, series["latencyP99Ms"], color="tab:red", label="p99" if first else None)
        lags = s.get("lag") or {}
        lx = [s["startedAt"] - origin + sec for sec in lags.get("second", [])]
        for group, values in lags.get("groups", {}).items():
            new = group not in colors
            color = colors.setdefault(group, f"C{len(colors)}")
            lag.plot(lx, [v or 0 for v in values], color=color, label=group if new else None)
    top.set_ylabel("per second")
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    bottom.set_ylabel("first frame -> DATA callback (ms)")
    lag.set_ylabel("consumer lag (records)")
    lag.set_xlabel("seconds since start")
    lag.grid(alpha=0.3)
    if colors:
        lag.legend(loc="upper right", fontsize="small")
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

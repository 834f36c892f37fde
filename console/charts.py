"""Server-drawn SVG: a device's radio over time (RSSI, SNR, LQI); maps are console/map_view.py's.

Drawn here, not in the browser: no chart library, no script, and the CSP allows no inline style (the
look is in console.css, by class).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from markupsafe import Markup

from console.device_columns import LQIS, when

WIDTH, PANEL, GAP, LEFT, RIGHT = 900, 110, 26, 84, 16


@dataclass(frozen=True)
class Sample:
    """A message's radio: when, its best RSSI and SNR among the stations that heard it, its LQI (4: not known)."""

    time: int
    rssi: float | None
    snr: float | None
    lqi: int | None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def sample_of(message: Mapping[str, Any]) -> Sample:
    """The `Sample` of a message as GET /v2/devices/{id}/messages answers it (rssi, snr: decimal strings)."""
    rinfos = message.get("rinfos") or []
    rssis = [v for v in (_number(r.get("rssi")) for r in rinfos) if v is not None]
    snrs = [v for v in (_number(r.get("snr")) for r in rinfos) if v is not None]
    lqi = message.get("lqi")
    return Sample(int(message["time"]), max(rssis) if rssis else None, max(snrs) if snrs else None,
                  lqi if isinstance(lqi, int) and lqi in (0, 1, 2, 3) else None)


def _bounds(values: Sequence[float], pad: float) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < pad:
        lo, hi = lo - pad, hi + pad
    return lo, hi


def radio_chart(samples: Sequence[Sample]) -> Markup:
    """Three panels sharing the time axis: RSSI (dBm), SNR (dB), LQI; one circle per sample in each panel
    that has a value (class `point rssi|snr|lqi`), joined by a line, with its value in a <title>."""
    ordered = sorted(samples, key=lambda s: s.time)
    height = 3 * PANEL + 2 * GAP + 30
    parts = [f'<svg class="chart radio" viewBox="0 0 {WIDTH} {height}" role="img" '
             f'aria-label="RSSI, SNR and LQI of the {len(ordered)} messages shown, over time" '
             f'xmlns="http://www.w3.org/2000/svg">']
    if not ordered:
        parts.append('<text x="10" y="20">No message to chart.</text></svg>')
        return Markup("".join(parts))
    t0, t1 = ordered[0].time, ordered[-1].time
    span = max(1, t1 - t0)

    def x(t: int) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * ((t - t0) / span if t1 > t0 else 0.5)

    series: tuple[tuple[str, str, Any, float], ...] = (
        ("rssi", "RSSI (dBm)", lambda s: s.rssi, 5.0), ("snr", "SNR (dB)", lambda s: s.snr, 2.0),
        ("lqi", "LQI", lambda s: s.lqi, 0.0))
    for n, (key, label, value_of, pad) in enumerate(series):
        top = n * (PANEL + GAP) + 6
        points = [(s, float(value_of(s))) for s in ordered if value_of(s) is not None]
        lo, hi = (0.0, 3.0) if key == "lqi" else _bounds([v for _, v in points] or [0.0], pad)

        def y(v: float) -> float:
            return top + PANEL - (PANEL - 8) * (v - lo) / (hi - lo) - 4  # noqa: B023 (used in this loop only)

        parts.append(f'<g class="panel {key}"><rect class="frame" x="{LEFT}" y="{top}" '
                     f'width="{WIDTH - LEFT - RIGHT}" height="{PANEL}"/>')
        parts.append(f'<text class="label" x="{LEFT + 6}" y="{top + 14}">{escape(label)}</text>')
        ticks = [(v, LQIS[int(v)]) for v in (0, 1, 2, 3)] if key == "lqi" else [(lo, f"{lo:.0f}"), (hi, f"{hi:.0f}")]
        for v, text in ticks:
            parts.append(f'<text class="tick" x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{escape(text)}</text>')
        if len(points) > 1:
            line = " ".join(f"{x(s.time):.1f},{y(v):.1f}" for s, v in points)
            parts.append(f'<polyline class="line {key}" points="{line}"/>')
        for s, v in points:
            shown = LQIS[int(v)] if key == "lqi" else f"{v:g}"
            parts.append(f'<circle class="point {key}" cx="{x(s.time):.1f}" cy="{y(v):.1f}" r="3">'
                         f'<title>{escape(when(s.time))} UTC: {escape(shown)}</title></circle>')
        parts.append("</g>")
    bottom = 3 * PANEL + 2 * GAP + 22
    parts.append(f'<text class="tick" x="{LEFT}" y="{bottom}">{escape(when(t0))}</text>')
    parts.append(f'<text class="tick" x="{WIDTH - RIGHT}" y="{bottom}" text-anchor="end">{escape(when(t1))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))

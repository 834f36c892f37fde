"""`backhaul bench-coverage`: the coverage prediction's rate and the tile render time, in CPU time.

    backhaul bench-coverage [--stations 20,200] [--points 200000] [--tiles 60] [--seed 13] [--out DIR]

For each network size, stations are spread over a 160 × 160 km square around Paris (environments mixed:
40 % urban, 30 % suburban, 20 % rural, 10 % dense-urban; antenna heights 25 to 60 m). Then:

- **prediction**: `radio.predict.predict` of `--points` random points of the square (RC1, outdoor, class
  0U), timed with `time.process_time` (CPU seconds of this process, every thread counted): points per
  CPU-second, which is points per second per core;
- **tiles**: `oss.coverage_tiles.render_tile` of `--tiles` tiles per zoom level 6, 8, 10, 12 and 14 drawn
  at random among the tiles of the square, each installation (outdoor, indoor, underground) in turn and
  the coverage view (the redundancy view costs the same: only the palette differs): CPU ms per tile,
  p50, p95 and max, per zoom and overall.

No database and no network: the prediction alone. Figures go to the terminal and to a JSON file in --out;
bench/README.md "Coverage prediction and tiles" shows them.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from backhaul.settings import PROJECT_ROOT
from oss.coverage_tiles import TILE_PX, Layer, lat_to_px, lng_to_px, render_tile
from radio.link_budget import RADIO_CONFIGURATIONS
from radio.predict import Sites, StationSite, predict

CENTRE = (48.8566, 2.3522)
HALF_SIDE_DEG = (0.72, 1.09)   # about 80 km either way at Paris' latitude
ENVIRONMENTS = ("urban", "suburban", "rural", "dense-urban")
ENVIRONMENT_SHARES = (0.4, 0.3, 0.2, 0.1)
ZOOMS = (6, 8, 10, 12, 14)
INSTALLATIONS = ("outdoor", "indoor", "underground")


@dataclass
class PredictionRate:
    stations: int
    points: int
    cpu_s: float
    points_per_cpu_s: float


@dataclass
class TileTimes:
    stations: int
    zoom: str          # a zoom level, or "all"
    tiles: int
    p50_ms: float
    p95_ms: float
    max_ms: float


def network(count: int, rng: np.random.Generator) -> Sites:
    return Sites.of(StationSite(
        id=f"{i:04X}", lat=CENTRE[0] + rng.uniform(-1, 1) * HALF_SIDE_DEG[0],
        lng=CENTRE[1] + rng.uniform(-1, 1) * HALF_SIDE_DEG[1], antenna_height_m=float(rng.uniform(25, 60)),
        environment=str(rng.choice(ENVIRONMENTS, p=ENVIRONMENT_SHARES))) for i in range(count))


def prediction_rate(sites: Sites, points: int, rng: np.random.Generator) -> PredictionRate:
    lat = CENTRE[0] + rng.uniform(-1, 1, points) * HALF_SIDE_DEG[0]
    lng = CENTRE[1] + rng.uniform(-1, 1, points) * HALF_SIDE_DEG[1]
    rc = RADIO_CONFIGURATIONS["RC1"]
    predict(sites, lat[:1000], lng[:1000], rc)   # warm-up
    started = time.process_time()
    predict(sites, lat, lng, rc, installation="OUTDOOR")
    cpu = time.process_time() - started
    return PredictionRate(len(sites), points, round(cpu, 3), round(points / cpu))


def tiles_of_square(z: int) -> tuple[range, range]:
    xs = [int(lng_to_px(CENTRE[1] + s * HALF_SIDE_DEG[1], z) // TILE_PX) for s in (-1, 1)]
    ys = [int(lat_to_px(CENTRE[0] + s * HALF_SIDE_DEG[0], z) // TILE_PX) for s in (1, -1)]
    return range(xs[0], xs[1] + 1), range(ys[0], ys[1] + 1)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def tile_times(sites: Sites, per_zoom: int, rng: np.random.Generator) -> list[TileTimes]:
    rc = RADIO_CONFIGURATIONS["RC1"]
    xs, ys = tiles_of_square(10)
    render_tile(sites, 10, xs[0], ys[0], Layer(), rc)   # warm-up
    every: list[float] = []
    out = []
    for z in ZOOMS:
        xs, ys = tiles_of_square(z)
        times = []
        for i in range(per_zoom):
            x, y = int(rng.choice(xs)), int(rng.choice(ys))
            layer = Layer(installation=INSTALLATIONS[i % len(INSTALLATIONS)])
            started = time.process_time()
            render_tile(sites, z, x, y, layer, rc)
            times.append((time.process_time() - started) * 1000)
        every += times
        out.append(summary(len(sites), str(z), times))
    out.append(summary(len(sites), "all", every))
    return out


def summary(stations: int, zoom: str, times: list[float]) -> TileTimes:
    return TileTimes(stations, zoom, len(times), round(statistics.median(times), 1), round(percentile(times, 95), 1),
                     round(max(times), 1))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="backhaul bench-coverage", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", default="20,200", help="network sizes, comma-separated")
    p.add_argument("--points", type=int, default=200_000)
    p.add_argument("--tiles", type=int, default=60, help="tiles per zoom level")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rates, tiles = [], []
    for count in (int(n) for n in args.stations.split(",")):
        rng = np.random.default_rng(args.seed)
        sites = network(count, rng)
        rate = prediction_rate(sites, args.points, rng)
        rates.append(rate)
        print(f"{count} stations: {rate.points:,} points in {rate.cpu_s:.2f} CPU s = "
              f"{rate.points_per_cpu_s:,} points per CPU-second")
        for t in tile_times(sites, args.tiles, rng):
            tiles.append(t)
            print(f"  tiles z={t.zoom:>3}: {t.tiles} tiles, CPU p50 {t.p50_ms} ms, p95 {t.p95_ms}, max {t.max_ms}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"coverage-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "seed": args.seed,
                                "prediction": [asdict(r) for r in rates], "tiles": [asdict(t) for t in tiles]},
                               indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

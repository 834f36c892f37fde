"""Coverage tiles: web-mercator arithmetic, rendering (transparent where nothing is heard) and the cache."""
from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from oss.coverage_kmz import rows_by_latitude
from oss.coverage_tiles import (
    LEGEND,
    TILE_PX,
    Bounds,
    Layer,
    TileCache,
    class_indexes,
    coverage_bounds,
    encode_png,
    lat_to_px,
    lng_to_px,
    px_to_lat,
    px_to_lng,
    ranges_km,
    render_tile,
    tile_bounds,
    tile_png,
    tiles_covering,
)
from radio.link_budget import RADIO_CONFIGURATIONS
from radio.predict import Sites, StationSite, margins_db, predict

RC1 = RADIO_CONFIGURATIONS["RC1"]
PARIS = StationSite(id="A001", lat=48.8566, lng=2.3522)


def tile_of(lat: float, lng: float, z: int) -> tuple[int, int]:
    return int(lng_to_px(lng, z) // TILE_PX), int(lat_to_px(lat, z) // TILE_PX)


def alpha(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.size == (TILE_PX, TILE_PX)
    return np.asarray(image.convert("RGBA"))[..., 3]


@given(st.floats(min_value=-85.05, max_value=85.05), st.floats(min_value=-180, max_value=180),
       st.integers(min_value=0, max_value=20))
def test_mercator_round_trips(lat, lng, z):
    assert px_to_lat(lat_to_px(lat, z), z) == pytest.approx(lat, abs=1e-9)
    assert px_to_lng(lng_to_px(lng, z), z) == pytest.approx(lng, abs=1e-9)


def test_mercator_known_values_and_arrays():
    assert (lng_to_px(0.0, 0), lat_to_px(0.0, 0)) == pytest.approx((128.0, 128.0))
    assert lat_to_px(85.0511287798, 0) == pytest.approx(0.0, abs=1e-6)
    assert lng_to_px(-180.0, 3) == 0.0 and lng_to_px(180.0, 3) == 8 * TILE_PX
    assert px_to_lat(np.array([0.0, 256.0]), 1) == pytest.approx([85.0511287798, 0.0])
    # Paris is in tile 10/518/352 (OpenStreetMap's numbering)
    assert tile_of(PARIS.lat, PARIS.lng, 10) == (518, 352)


def test_tile_bounds():
    assert tile_bounds(0, 0, 0) == Bounds(west=-180.0, south=pytest.approx(-85.0511287798),
                                          east=180.0, north=pytest.approx(85.0511287798))
    b = tile_bounds(1, 1, 0)
    assert (b.west, b.east, b.south) == (0.0, 180.0, pytest.approx(0.0))
    with pytest.raises(ValueError, match="^x: 2 is not between 0 and 1 at zoom 1"):
        tile_bounds(1, 2, 0)
    with pytest.raises(ValueError, match="^y: -1"):
        tile_bounds(1, 0, -1)


def test_layer_parse_names_the_field():
    assert Layer.parse("INDOOR", "Redundancy", "true") == Layer("indoor", "redundancy", True)
    assert Layer.parse(None, None, None) == Layer()
    for args, field in ((("cellar", None, None), "installation"), ((None, "heat", None), "view"),
                        ((None, None, "maybe"), "forecast")):
        with pytest.raises(ValueError, match=f"^{field}: "):
            Layer.parse(*args)
    assert [label for label, _ in LEGEND["coverage"]] == ["Excellent", "Good", "Average", "Limit"]
    assert [label for label, _ in LEGEND["redundancy"]] == ["3+ stations", "2 stations", "1 station"]


def exact_classes(sites: Sites, z: int, x: int, y: int, layer: Layer) -> np.ndarray:
    """What every pixel centre's own prediction says (palette index), to compare the rendering with."""
    centres = np.arange(TILE_PX) + 0.5
    lat, lng = np.meshgrid(px_to_lat(y * TILE_PX + centres, z), px_to_lng(x * TILE_PX + centres, z), indexing="ij")
    margins = predict(sites, lat.ravel(), lng.ravel(), RC1, installation=layer.installation.upper()).margins
    return class_indexes(np.maximum(margins, -500.0), layer, RC1).reshape(TILE_PX, TILE_PX)


def test_a_tile_far_from_any_station_is_transparent_and_one_on_a_station_is_not():
    sites = Sites.of([PARIS])
    assert not alpha(render_tile(sites, 10, *tile_of(-33.9, 18.4, 10), Layer(), RC1)).any()   # Cape Town
    assert not alpha(render_tile(Sites.of([]), 0, 0, 0, Layer(), RC1)).any()
    assert alpha(render_tile(sites, 13, *tile_of(PARIS.lat, PARIS.lng, 13), Layer(), RC1)).all()   # 3 km around
    on_station = alpha(render_tile(sites, 10, *tile_of(PARIS.lat, PARIS.lng, 10), Layer(), RC1))
    assert 0 < on_station.astype(bool).mean() < 1   # a 10 km disc on a 25 km tile


STATIONS = [PARIS, StationSite(id="A002", lat=48.87, lng=2.40), StationSite(id="A003", lat=48.83, lng=2.30),
            StationSite(id="A004", lat=48.95, lng=2.20, environment="rural", antenna_height_m=60.0),
            StationSite(id="A005", lat=48.60, lng=2.60, environment="suburban", offset_db=-4.0, slope_db=2.0)]


@pytest.mark.parametrize("z", [6, 8, 10, 12])
@pytest.mark.parametrize("layer", [Layer(), Layer(view="redundancy"), Layer(installation="indoor"),
                                   Layer(installation="underground", view="redundancy")])
@pytest.mark.parametrize("north", [0.0, 20.7])   # around Paris, and the same network moved to 69.6° N
def test_the_rendering_agrees_with_the_prediction_at_every_pixel_but_near_the_edges(z, layer, north):
    sites = Sites.of([dataclasses.replace(s, lat=s.lat + north) for s in STATIONS])
    x, y = tile_of(PARIS.lat + north, PARIS.lng, z)
    rendered = np.asarray(Image.open(io.BytesIO(render_tile(sites, z, x, y, layer, RC1))))
    exact = exact_classes(sites, z, x, y, layer)
    assert exact.any()
    assert (rendered == exact).mean() > 0.99


def test_the_coverage_shrinks_indoors_and_underground():
    sites = Sites.of([PARIS])
    z = 9
    x, y = tile_of(PARIS.lat, PARIS.lng, z)
    covered = {inst: int(alpha(render_tile(sites, z, x, y, Layer(installation=inst), RC1)).astype(bool).sum())
               for inst in ("outdoor", "indoor", "underground")}
    assert covered["outdoor"] > covered["indoor"] > covered["underground"] > 0


class FakeDb:
    """The two queries tile_png makes: the coverage version and the stations."""

    def __init__(self, stations: list[StationSite]) -> None:
        self.stations = stations
        self.changed = datetime(2026, 12, 4, tzinfo=timezone.utc)

    async def fetchrow(self, query: str, *args):
        return {"n": len(self.stations), "s": self.changed, "m": 0, "c": None}

    async def fetch(self, query: str, states):
        return [{"id": s.id, "lat": s.lat, "lng": s.lng, "antenna_height_m": s.antenna_height_m,
                 "antenna_gain_dbi": s.antenna_gain_dbi, "cable_loss_db": s.cable_loss_db,
                 "environment": s.environment, "offset_db": None, "slope_db": None, "receptions": None}
                for s in self.stations]


def test_the_cache_serves_the_same_tile_until_the_coverage_version_changes():
    db = FakeDb([PARIS])
    cache = TileCache(max_tiles=2)
    z, (x, y) = 9, tile_of(PARIS.lat, PARIS.lng + 0.5, 9)

    async def scenario():
        first = await tile_png(db, cache, Layer(), z, x, y, RC1)
        again = await tile_png(db, cache, Layer(), z, x, y, RC1)
        assert again.body == first.body and again.etag == first.etag and cache.renders == 1
        db.stations = [PARIS, StationSite(id="A002", lat=PARIS.lat, lng=PARIS.lng + 0.5)]
        db.changed = datetime(2026, 12, 4, 1, tzinfo=timezone.utc)
        changed = await tile_png(db, cache, Layer(), z, x, y, RC1)
        assert cache.renders == 2 and changed.etag != first.etag
        for layer in (Layer(view="redundancy"), Layer(installation="indoor")):
            await tile_png(db, cache, layer, z, x, y, RC1)
        assert len(cache) == 2 and cache.renders == 4   # bounded: the least recently used went

    asyncio.run(scenario())


def test_a_station_range_bounds_where_it_is_heard():
    sites = Sites.of(STATIONS)
    for installation in ("outdoor", "indoor", "underground"):
        reach = ranges_km(sites, Layer(installation=installation), RC1)
        for j, station in enumerate(STATIONS):
            one = Sites.of([station])
            at = [station.lat + reach[j] / 111.2, station.lat + reach[j] / 1.06 / 111.2]
            margins = margins_db(one, at, [station.lng] * 2, RC1, installation=installation.upper())[:, 0]
            assert margins[0] < 0 <= margins[1], (installation, station.id, reach[j], margins)


def test_bench_coverage_runs_and_writes_its_figures(tmp_path):
    from bench.coverage import main
    assert main(["--stations", "3", "--points", "2000", "--tiles", "2", "--out", str(tmp_path)]) == 0
    [written] = tmp_path.glob("coverage-*.json")
    figures = json.loads(written.read_text())
    assert figures["prediction"][0]["stations"] == 3 and figures["prediction"][0]["points_per_cpu_s"] > 0
    assert [t["zoom"] for t in figures["tiles"]] == ["6", "8", "10", "12", "14", "all"]


def test_kmz_tiles_are_resampled_to_even_latitudes():
    z, y = 3, 2   # 41° N to 66.5° N: mercator rows are far from even in latitude there
    bands = np.repeat(np.arange(1, 5, dtype=np.uint8), 64)[:, None].repeat(TILE_PX, axis=1)
    moved = np.asarray(Image.open(io.BytesIO(rows_by_latitude(encode_png(bands, "coverage"), z, y))))
    b = tile_bounds(z, 0, y)
    for mercator_row in (64, 128, 192):   # where a band starts in the mercator tile
        lat = px_to_lat(float(y * TILE_PX + mercator_row), z)
        even_row = (b.north - lat) / (b.north - b.south) * TILE_PX
        first = int(np.argmax(moved[:, 0] == bands[mercator_row, 0]))
        assert abs(first - even_row) <= 1, (mercator_row, first, even_row)
    assert abs(int(np.argmax(moved[:, 0] == 2)) - 64) > 10   # the bands did move


def test_tiles_covering_a_box():
    assert tiles_covering(1, 90, -90, -180, 180) == [(0, 0), (1, 0), (0, 1), (1, 1)]   # clamped to 85.05°
    assert tiles_covering(1, 10, 5, 0, 10) == [(1, 0)]    # a box ending on a tile edge stays in its tile
    assert tiles_covering(10, PARIS.lat + 0.001, PARIS.lat, PARIS.lng, PARIS.lng + 0.001) == \
        [tile_of(PARIS.lat, PARIS.lng, 10)]
    assert len(tiles_covering(5, 60, 40, -10, 20)) == 3 * 4


def test_coverage_bounds_hold_every_range():
    rc = RC1
    sites = Sites.of(STATIONS)
    b = coverage_bounds(sites, Layer(), rc)
    reach = ranges_km(sites, Layer(), rc)
    for station, r in zip(STATIONS, reach, strict=True):
        assert b.south <= station.lat - r / 111.2 < station.lat + r / 111.2 <= b.north
    assert b.north - 48.95 == pytest.approx(reach[3] / 111.2, rel=0.01)   # the rural station reaches farthest
    assert coverage_bounds(Sites.of([]), Layer(), rc) is None

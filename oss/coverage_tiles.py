"""Public-coverage map tiles: web-mercator `z/x/y` PNGs of the predicted coverage, rendered and cached.

A tile is 256 × 256 pixels of the web-mercator ("slippy map") grid. `render_tile` predicts the coverage
(radio.predict) on a coarse grid of corners spread over the tile (33 × 33, every 8 px) and interpolates the three
best margins bilinearly to every pixel: the margins vary smoothly with distance, so a tile renders in tens of
milliseconds instead of predicting 65,536 points. A station whose range is only a few pixels wide on the tile
(low zoom, indoor, underground) is predicted at every pixel of its range instead.

Layers (`Layer`): the installation type (extra loss of radio.link_budget), the view (coverage: the link
quality class of radio.quality where at least one station hears; redundancy: 1, 2, 3+ stations at or above
0 dB) and the forecast (planned stations switched on). Pixels where no station hears are transparent.

`tile_png` is the one place tiles are served from (the API and the console): it caches the PNGs in a
`TileCache` keyed by `oss.storage.base_stations.coverage_version`, so a station or a calibration that changes
makes every tile render again on its next request.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from oss.coverage_sites import SitesCache
from oss.storage.base_stations import coverage_version
from oss.storage.sql import Executor
from radio.link_budget import INSTALLATION_LOSS_DB, RadioConfiguration, device_eirp_dbm, installation_loss_db
from radio.predict import EARTH_RADIUS_KM, Sites, link_quality_array, margins_db, predict, received_dbm
from radio.quality import LQI_NAMES

TILE_PX: Final = 256
MAX_TILE_ZOOM: Final = 18         # served tiles: z 0..18 (a few metres a pixel)
MAX_KMZ_ZOOM: Final = 11          # KMZ exports: the reference's bound
MAX_LATITUDE: Final = 85.0511287798066   # the web-mercator square's edge: y = 0 at zoom 0
INSTALLATIONS: Final = tuple(name.lower() for name in INSTALLATION_LOSS_DB)   # outdoor, indoor, underground
VIEWS: Final = ("coverage", "redundancy")
# Colour opacity of a covered pixel: the base map stays readable under the layer.
OPACITY: Final = 170
# Margins below this are "no station" (−inf in the prediction; a finite value interpolates).
NO_STATION_DB: Final = -500.0

Coordinate = TypeVar("Coordinate", float, NDArray[np.float64])


def world_px(z: int) -> int:
    """The width (and height) of the world in pixels at zoom `z`."""
    return TILE_PX << z


def lng_to_px(lng: Coordinate, z: int) -> Coordinate:
    """Global pixel x of a longitude (degrees) at zoom `z`."""
    return (lng + 180.0) / 360.0 * world_px(z)


def lat_to_px(lat: Coordinate, z: int) -> Coordinate:
    """Global pixel y of a latitude (degrees) at zoom `z` (0 at the north edge, 85.0511°)."""
    phi = np.radians(lat)
    return (0.5 - np.log(np.tan(np.pi / 4 + phi / 2)) / (2 * np.pi)) * world_px(z)  # type: ignore[no-any-return]


def px_to_lng(x: Coordinate, z: int) -> Coordinate:
    """Longitude (degrees) of a global pixel x at zoom `z`."""
    return x / world_px(z) * 360.0 - 180.0


def px_to_lat(y: Coordinate, z: int) -> Coordinate:
    """Latitude (degrees) of a global pixel y at zoom `z`."""
    return np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * y / world_px(z)))))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Bounds:
    """A tile's edges in degrees."""

    west: float
    south: float
    east: float
    north: float


def check_tile(z: int, x: int, y: int) -> None:
    """ValueError naming `x` or `y` when the tile is outside the zoom level's grid (or `z` is negative)."""
    if z < 0:
        raise ValueError(f"z: {z} is negative")
    n = 1 << z
    for name, value in (("x", x), ("y", y)):
        if not 0 <= value < n:
            raise ValueError(f"{name}: {value} is not between 0 and {n - 1} at zoom {z}")


def tile_bounds(z: int, x: int, y: int) -> Bounds:
    """The west, south, east and north edges of tile `z/x/y`."""
    check_tile(z, x, y)
    return Bounds(west=float(px_to_lng(float(x * TILE_PX), z)), south=float(px_to_lat(float((y + 1) * TILE_PX), z)),
                  east=float(px_to_lng(float((x + 1) * TILE_PX), z)), north=float(px_to_lat(float(y * TILE_PX), z)))


def tiles_covering(z: int, north: float, south: float, west: float, east: float) -> list[tuple[int, int]]:
    """The (x, y) of the tiles of zoom `z` that the box overlaps, row by row from the north-west (latitudes are
    clamped to the web-mercator square)."""
    last = (1 << z) - 1

    def index(px: float) -> int:
        return min(last, max(0, int(px // TILE_PX)))

    north, south = (min(MAX_LATITUDE, max(-MAX_LATITUDE, v)) for v in (north, south))
    xs = range(index(lng_to_px(west, z)), index(np.nextafter(lng_to_px(east, z), -np.inf)) + 1)
    ys = range(index(lat_to_px(north, z)), index(np.nextafter(lat_to_px(south, z), -np.inf)) + 1)
    return [(x, y) for y in ys for x in xs]


@dataclass(frozen=True)
class Layer:
    """What a tile shows: installation type, view and whether planned stations count (forecast)."""

    installation: str = "outdoor"   # outdoor | indoor | underground
    view: str = "coverage"          # coverage | redundancy
    forecast: bool = False          # True: planned stations switched on

    def __post_init__(self) -> None:
        if self.installation not in INSTALLATIONS:
            raise ValueError(f"installation: {self.installation!r} is not one of {', '.join(INSTALLATIONS)}")
        if self.view not in VIEWS:
            raise ValueError(f"view: {self.view!r} is not one of {', '.join(VIEWS)}")

    @classmethod
    def parse(cls, installation: str | None = None, view: str | None = None,
              forecast: bool | str | None = None) -> Layer:
        """A layer from request values (case-insensitive; None: the default); ValueError naming the field."""
        return cls(installation=(installation or "outdoor").strip().lower(),
                   view=(view or "coverage").strip().lower(), forecast=parse_flag("forecast", forecast))


def parse_flag(field: str, value: bool | str | None) -> bool:
    """A boolean from a query value (true/false, 1/0, yes/no; None: False)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    text = value.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ValueError(f"{field}: {value!r} is not true or false")


# Palette index of each class: 0 is transparent (not covered).
COVERAGE_COLOURS: Final = ("#d7301f", "#fc8d59", "#78c679", "#238443")   # link quality 0..3
REDUNDANCY_COLOURS: Final = ("#9ecae1", "#4292c6", "#08519c")             # 1, 2, 3+ stations
LEGEND: Final[dict[str, list[tuple[str, str]]]] = {
    "coverage": [(LQI_NAMES[q], COVERAGE_COLOURS[q]) for q in reversed(range(len(LQI_NAMES)))],
    "redundancy": [("3+ stations", REDUNDANCY_COLOURS[2]), ("2 stations", REDUNDANCY_COLOURS[1]),
                   ("1 station", REDUNDANCY_COLOURS[0])],
}


def _rgb(colour: str) -> list[int]:
    return [int(colour[i:i + 2], 16) for i in (1, 3, 5)]


def _palette(colours: tuple[str, ...]) -> tuple[list[int], bytes]:
    rgb = [0, 0, 0] + [c for colour in colours for c in _rgb(colour)]
    return rgb, bytes([0] + [OPACITY] * len(colours))


PALETTES: Final = {"coverage": _palette(COVERAGE_COLOURS), "redundancy": _palette(REDUNDANCY_COLOURS)}


STEP_PX: Final = 8                # predicted corners every 8 px: 33 × 33 per tile
# A station whose range spans fewer pixels than this is predicted at every pixel of its range's square
# instead: interpolated from corners 8 px apart, a smaller disc would lose its shape (or vanish).
INTERPOLATED_RANGE_PX: Final = 4 * STEP_PX
# A range in pixels is taken at the station's latitude; the mercator scale grows poleward of it (by 2 % over
# 70 km at 60° N), so a range's square is drawn 5 % wider.
RANGE_SLACK: Final = 1.05
# Pixel i (its centre at i + 0.5 px) lies between corners LOW[i] and LOW[i] + 1, FRAC[i] of the way.
_AT: Final = (np.arange(TILE_PX) + 0.5) / STEP_PX
LOW: Final = np.minimum(_AT.astype(int), TILE_PX // STEP_PX - 1)
FRAC: Final = _AT - LOW


def interpolate(at_corners: NDArray[np.float64]) -> NDArray[np.float64]:
    """Bilinear interpolation of corner values (33, 33, k) to every pixel (256, 256, k), one axis at a time.

    (Gathers, not matrix products: OpenBLAS's threads cost more CPU than such small products.)"""
    f = FRAC[None, :, None]
    columns = at_corners[:, LOW] * (1 - f) + at_corners[:, LOW + 1] * f
    f = FRAC[:, None, None]
    return np.asarray(columns[LOW] * (1 - f) + columns[LOW + 1] * f)


RANGE_DISTANCES_KM: Final = np.geomspace(0.01, 1000.0, 400)


def ranges_km(sites: Sites, layer: Layer, configuration: RadioConfiguration) -> NDArray[np.float64]:
    """Per station, a distance beyond which a device of `layer`'s installation is not heard (0: heard nowhere):
    the sampled distance just after the farthest one heard (samples 3 % apart, from 10 m to 1,000 km)."""
    d = np.repeat(RANGE_DISTANCES_KM[:, None], len(sites), axis=1)
    rssi = received_dbm(sites, d, configuration, device_eirp_dbm(configuration))
    heard = rssi - installation_loss_db(layer.installation.upper()) >= configuration.sensitivity_dbm
    last = len(RANGE_DISTANCES_KM) - 1
    beyond = np.minimum(last - np.argmax(heard[::-1], axis=0) + 1, last)
    return np.asarray(np.where(heard.any(axis=0), RANGE_DISTANCES_KM[beyond], 0.0), dtype=float)


def subset(sites: Sites, idx: NDArray[np.intp]) -> Sites:
    """The stations at indexes `idx`."""
    env = tuple(sites.environment[i] for i in idx)
    return Sites(ids=tuple(sites.ids[i] for i in idx), lat_rad=sites.lat_rad[idx], lng_rad=sites.lng_rad[idx],
                 height_m=sites.height_m[idx], gain_db=sites.gain_db[idx], offset_db=sites.offset_db[idx],
                 slope_db=sites.slope_db[idx], environment=env,
                 groups={e: np.flatnonzero(np.array([x == e for x in env], dtype=bool)) for e in set(env)})


def coverage_bounds(sites: Sites, layer: Layer, configuration: RadioConfiguration) -> Bounds | None:
    """The box around every station's range for `layer`'s installation (None without stations heard anywhere)."""
    reach = ranges_km(sites, layer, configuration)
    heard = reach > 0
    if not heard.any():
        return None
    lat, lng = np.degrees(sites.lat_rad[heard]), np.degrees(sites.lng_rad[heard])
    dlat = np.degrees(reach[heard] / EARTH_RADIUS_KM)
    dlng = dlat / np.maximum(np.cos(sites.lat_rad[heard]), 1e-6)
    return Bounds(west=float(max(-180.0, (lng - dlng).min())), south=float(max(-90.0, (lat - dlat).min())),
                  east=float(min(180.0, (lng + dlng).max())), north=float(min(90.0, (lat + dlat).max())))


def class_indexes(margins: NDArray[np.float64], layer: Layer, configuration: RadioConfiguration) -> NDArray[np.uint8]:
    """Palette index per point from its three best margins (…, 3): 0 not covered, then the view's class + 1."""
    heard = (margins >= 0).sum(axis=-1)
    if layer.view == "redundancy":
        return np.asarray(np.minimum(heard, 3), dtype=np.uint8)
    quality = link_quality_array(margins[..., 0] + configuration.sensitivity_dbm, heard)
    return np.asarray(np.where(heard >= 1, quality.astype(np.uint8) + 1, 0), dtype=np.uint8)


def encode_png(indexes: NDArray[np.uint8], view: str) -> bytes:
    """A palette PNG of class indexes, index 0 transparent."""
    image = Image.fromarray(indexes, mode="P")
    palette, alpha = PALETTES[view]
    image.putpalette(palette)
    out = io.BytesIO()
    image.save(out, format="PNG", transparency=alpha)
    return out.getvalue()


def _top_margins(sites: Sites, lat: NDArray[np.float64], lng: NDArray[np.float64], layer: Layer,
                 configuration: RadioConfiguration) -> NDArray[np.float64]:
    margins = predict(sites, lat, lng, configuration, installation=layer.installation.upper()).margins
    return np.maximum(margins, NO_STATION_DB)


def _merge(top: NDArray[np.float64], margins: NDArray[np.float64]) -> NDArray[np.float64]:
    """The three best of each row's three best (…, 3) and one more margin (…)."""
    both = np.concatenate([top, margins[..., None]], axis=-1)
    return np.asarray(-np.sort(-both, axis=-1)[..., :3])


def render_tile(sites: Sites, z: int, x: int, y: int, layer: Layer, configuration: RadioConfiguration) -> bytes:
    """The PNG of tile `z/x/y` of `layer`.

    Only the stations whose range reaches the tile count. Those whose range spans at least
    INTERPOLATED_RANGE_PX pixels are predicted on corners every 8 px, their three best margins interpolated
    to every pixel; each of the others (low zoom, indoor, underground) is predicted at every pixel of its
    range's square and merged in. A pixel's classes come from its three best margins.
    """
    check_tile(z, x, y)
    empty = np.zeros((TILE_PX, TILE_PX), dtype=np.uint8)
    if len(sites) == 0:
        return encode_png(empty, layer.view)
    reach = ranges_km(sites, layer, configuration)
    # Station positions in this tile's pixels, and their ranges in pixels (mercator scale at their latitude).
    sx = lng_to_px(np.degrees(sites.lng_rad), z) - x * TILE_PX
    sy = lat_to_px(np.degrees(sites.lat_rad), z) - y * TILE_PX
    reach_px = reach / (2 * np.pi * EARTH_RADIUS_KM * np.cos(sites.lat_rad) / world_px(z)) * RANGE_SLACK
    near = (reach > 0) & (sx + reach_px >= 0) & (sx - reach_px <= TILE_PX) & (sy + reach_px >= 0) \
        & (sy - reach_px <= TILE_PX)
    if not near.any():
        return encode_png(empty, layer.view)
    large = np.flatnonzero(near & (reach_px >= INTERPOLATED_RANGE_PX))
    top = np.full((TILE_PX, TILE_PX, 3), NO_STATION_DB)
    if large.size:
        corners = np.arange(0, TILE_PX + 1, STEP_PX, dtype=float)
        grid_lat, grid_lng = np.meshgrid(px_to_lat(y * TILE_PX + corners, z), px_to_lng(x * TILE_PX + corners, z),
                                         indexing="ij")
        at_corners = _top_margins(subset(sites, large), grid_lat.ravel(), grid_lng.ravel(), layer, configuration)
        top = interpolate(at_corners.reshape(corners.size, corners.size, 3))
    centres = np.arange(TILE_PX, dtype=float) + 0.5
    pixel_lat, pixel_lng = px_to_lat(y * TILE_PX + centres, z), px_to_lng(x * TILE_PX + centres, z)
    for j in np.flatnonzero(near & (reach_px < INTERPOLATED_RANGE_PX)):
        rows = slice(max(0, int(sy[j] - reach_px[j])), max(0, int(np.ceil(sy[j] + reach_px[j])) + 1))
        cols = slice(max(0, int(sx[j] - reach_px[j])), max(0, int(np.ceil(sx[j] + reach_px[j])) + 1))
        lat, lng = np.meshgrid(pixel_lat[rows], pixel_lng[cols], indexing="ij")
        if lat.size == 0:
            continue
        one = subset(sites, np.array([j]))
        margins = margins_db(one, lat.ravel(), lng.ravel(), configuration, installation=layer.installation.upper())
        top[rows, cols] = _merge(top[rows, cols], margins[:, 0].reshape(lat.shape))
    return encode_png(class_indexes(top, layer, configuration), layer.view)


@dataclass(frozen=True)
class TilePng:
    """A rendered tile and its entity tag (a digest of the PNG)."""

    body: bytes
    etag: str


TileKey = tuple[str, str, Layer, int, int, int]   # coverage version, radio configuration, layer, z, x, y


class TileCache:
    """The last `max_tiles` tiles rendered (least recently used evicted), keyed by coverage version, radio
    configuration, layer and z/x/y; the stations come from `stations` (the API's SitesCache)."""

    def __init__(self, max_tiles: int = 4096, stations: SitesCache | None = None) -> None:
        self.max_tiles = max_tiles
        self._tiles: OrderedDict[TileKey, TilePng] = OrderedDict()
        self.stations = stations or SitesCache()
        self.renders = 0   # tiles rendered (cache misses), for tests and metrics

    def get(self, key: TileKey) -> TilePng | None:
        tile = self._tiles.get(key)
        if tile is not None:
            self._tiles.move_to_end(key)
        return tile

    def put(self, key: TileKey, tile: TilePng) -> None:
        self._tiles[key] = tile
        self._tiles.move_to_end(key)
        while len(self._tiles) > self.max_tiles:
            self._tiles.popitem(last=False)

    def __len__(self) -> int:
        return len(self._tiles)

    async def sites(self, db: Executor, version: str, forecast: bool) -> Sites:
        """The stations of `version` (planned ones too when `forecast`), loaded once per version."""
        return await self.stations.get(db, forecast=forecast, version=version)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


async def tile_png(db: Executor, cache: TileCache, layer: Layer, z: int, x: int, y: int,
                   configuration: RadioConfiguration) -> TilePng:
    """Tile `z/x/y` of `layer` from `cache`, or rendered (off the event loop) from the stations and cached."""
    check_tile(z, x, y)
    # The version is read before the stations: a change between the two is cached under the old version,
    # which no later request asks for.
    version = await coverage_version(db)
    key: TileKey = (version, configuration.id, layer, z, x, y)
    tile = cache.get(key)
    if tile is None:
        stations = await cache.sites(db, version, layer.forecast)
        body = await asyncio.to_thread(render_tile, stations, z, x, y, layer, configuration)
        tile = TilePng(body=body, etag=etag_of(body))
        cache.renders += 1
        cache.put(key, tile)
    return tile

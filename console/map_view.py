"""The console's slippy map, as pure geometry: a view (centre, zoom, size in pixels), the 256 px tiles that
cover it, where places fall in it, the graticule lines for its zoom, and the views one pan or zoom away.

Positions are web-mercator pixels of `oss.coverage_tiles` (the one place that maths lives): the map the
console draws and the coverage tiles it lays on it agree to the pixel.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from oss.coverage_tiles import MAX_LATITUDE as MAX_LAT
from oss.coverage_tiles import TILE_PX, lat_to_px, lng_to_px, px_to_lat, px_to_lng, world_px

WIDTH: Final = 768
HEIGHT: Final = 512
# From zoom 2 the world (1024 px) is wider than the view: it never shows twice side by side.
MIN_ZOOM: Final = 2
MAX_ZOOM: Final = 18
# Fitted to its places, a view zooms in no further than this (a lone station's coverage still shows).
FIT_MAX_ZOOM: Final = 11
FIT_MARGIN_PX: Final = 64
# A graticule step is the smallest of these (degrees) that keeps lines at least this far apart.
GRID_STEPS_DEG: Final = (45.0, 30.0, 20.0, 10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002,
                         0.001, 0.0005)
GRID_MIN_GAP_PX: Final = 110
NO_PLACE_CENTRE: Final = (20.0, 0.0, MIN_ZOOM)   # lat, lng, zoom of a map with nothing to show


def normal_lng(lng: float) -> float:
    """`lng` in -180 ≤ lng < 180."""
    return (lng + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class View:
    """What the map shows: `width` × `height` pixels at zoom `z`, centred on (`lat`, `lng`)."""

    lat: float
    lng: float
    z: int
    width: int = WIDTH
    height: int = HEIGHT

    @classmethod
    def at(cls, lat: float, lng: float, z: int, width: int = WIDTH, height: int = HEIGHT) -> View:
        """A view with its centre brought onto the map (latitude within mercator's, longitude -180..180)
        and its zoom within MIN_ZOOM..MAX_ZOOM."""
        return cls(max(-MAX_LAT, min(MAX_LAT, lat)), normal_lng(lng), max(MIN_ZOOM, min(MAX_ZOOM, z)), width,
                   height)

    @property
    def left(self) -> int:
        """Global pixel x of the view's left edge (whole pixels: tiles meet without seams)."""
        return math.floor(float(lng_to_px(self.lng, self.z)) - self.width / 2)

    @property
    def top(self) -> int:
        """Global pixel y of the view's top edge."""
        return math.floor(float(lat_to_px(self.lat, self.z)) - self.height / 2)

    def to_screen(self, lat: float, lng: float) -> tuple[float, float]:
        """Where (`lat`, `lng`) falls in the view, in its pixels from the top-left corner; of the
        world's copies side by side, the one nearest the centre."""
        world = world_px(self.z)
        x = float(lng_to_px(lng, self.z)) - self.left
        x -= world * round((x - self.width / 2) / world)
        return x, float(lat_to_px(max(-MAX_LAT, min(MAX_LAT, lat)), self.z)) - self.top

    def shows(self, x: float, y: float, margin: float = 0.0) -> bool:
        return -margin <= x <= self.width + margin and -margin <= y <= self.height + margin

    def panned(self, right: float, down: float) -> View:
        """The view moved by `right` and `down` view widths and heights (a fraction: ½ is half a view)."""
        x = float(lng_to_px(self.lng, self.z)) + right * self.width
        y = float(lat_to_px(self.lat, self.z)) + down * self.height
        y = max(0.0, min(float(world_px(self.z)), y))
        return View.at(float(px_to_lat(y, self.z)), float(px_to_lng(x % world_px(self.z), self.z)), self.z,
                       self.width, self.height)

    def zoomed(self, step: int) -> View:
        """The same centre, `step` zoom levels in (negative: out)."""
        return View.at(self.lat, self.lng, self.z + step, self.width, self.height)


@dataclass(frozen=True)
class TilePlace:
    """One tile of the view: its address (z, x, y; x wrapped around the world) and its top-left corner in
    the view's pixels."""

    z: int
    x: int
    y: int
    left: int
    top: int


def tiles(view: View) -> list[TilePlace]:
    """The tiles that cover the view, row by row; none above or below the world (it does not repeat north
    and south), repeated east and west as the world is."""
    count = 2 ** view.z
    first_x, last_x = math.floor(view.left / TILE_PX), math.floor((view.left + view.width - 1) / TILE_PX)
    first_y, last_y = math.floor(view.top / TILE_PX), math.floor((view.top + view.height - 1) / TILE_PX)
    return [TilePlace(view.z, tx % count, ty, tx * TILE_PX - view.left, ty * TILE_PX - view.top)
            for ty in range(max(0, first_y), min(count - 1, last_y) + 1)
            for tx in range(first_x, last_x + 1)]


@dataclass(frozen=True)
class Place:
    """Something to mark on the map: its label, position and kind (a CSS class: a station's state...)."""

    label: str
    lat: float
    lng: float
    kind: str
    ident: str = ""


@dataclass(frozen=True)
class Marker:
    """A place where the view draws it (pixels from the view's top-left corner)."""

    place: Place
    x: float
    y: float


def markers(view: View, places: Iterable[Place], margin: float = 8.0) -> list[Marker]:
    """The places the view shows (within `margin` pixels of its edges), placed."""
    placed = []
    for place in places:
        x, y = view.to_screen(place.lat, place.lng)
        if view.shows(x, y, margin):
            placed.append(Marker(place, x, y))
    return placed


def fit(points: Sequence[tuple[float, float]], width: int = WIDTH, height: int = HEIGHT, *,
        max_zoom: int = FIT_MAX_ZOOM, margin: float = FIT_MARGIN_PX) -> View:
    """The closest view (up to `max_zoom`) that shows every (lat, lng) of `points` at least `margin`
    pixels inside its edges, centred on them; without points, the world."""
    if not points:
        lat, lng, z = NO_PLACE_CENTRE
        return View.at(lat, lng, z, width, height)
    lats = [max(-MAX_LAT, min(MAX_LAT, p[0])) for p in points]
    lngs = [p[1] for p in points]
    for z in range(max_zoom, MIN_ZOOM - 1, -1):
        xs = [float(lng_to_px(v, z)) for v in lngs]
        ys = [float(lat_to_px(v, z)) for v in lats]
        if (max(xs) - min(xs) <= width - 2 * margin and max(ys) - min(ys) <= height - 2 * margin) or z <= MIN_ZOOM:
            cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
            return View.at(float(px_to_lat(cy, z)), float(px_to_lng(cx, z)), z, width, height)
    raise AssertionError("unreachable: the smallest zoom always fits")


@dataclass(frozen=True)
class GridLine:
    """A graticule line: a meridian (`axis` "lng": vertical, at x = `at`) or a parallel ("lat":
    horizontal, at y = `at`), with its label."""

    axis: str
    degrees: float
    at: float
    label: str


def grid_step(z: int) -> float:
    """Degrees between graticule lines at zoom `z`: the finest step that keeps lines GRID_MIN_GAP_PX apart."""
    degrees_per_px = 360.0 / world_px(z)
    fitting = [s for s in GRID_STEPS_DEG if s / degrees_per_px >= GRID_MIN_GAP_PX]
    return fitting[-1] if fitting else GRID_STEPS_DEG[0]


def degrees_label(value: float, axis: str) -> str:
    """`value` in degrees with its hemisphere, no needless zeros: 45.5° N, 0°, 1.25° W, 180°."""
    text = f"{abs(value):.6f}".rstrip("0").rstrip(".")
    if text in ("0", "180"):
        return f"{text}°"
    return f"{text}° {('N' if value > 0 else 'S') if axis == 'lat' else ('E' if value > 0 else 'W')}"


def graticule(view: View) -> list[GridLine]:
    """The meridians and parallels crossing the view, every `grid_step(view.z)` degrees."""
    step = grid_step(view.z)
    world = world_px(view.z)
    lines = []
    half_degrees = view.width / 2 * 360.0 / world
    for n in range(math.floor((view.lng - half_degrees) / step), math.ceil((view.lng + half_degrees) / step) + 1):
        degrees = round(normal_lng(n * step), 9)
        x = (float(lng_to_px(degrees, view.z)) - view.left) % world
        if x <= view.width:
            lines.append(GridLine("lng", degrees, x, degrees_label(degrees, "lng")))
    north = float(px_to_lat(max(0.0, view.top), view.z))
    south = float(px_to_lat(min(float(world), view.top + view.height), view.z))
    for n in range(math.floor(south / step), math.ceil(north / step) + 1):
        degrees = round(n * step, 9)
        y = float(lat_to_px(max(-MAX_LAT, min(MAX_LAT, degrees)), view.z)) - view.top
        if abs(degrees) <= MAX_LAT and 0 <= y <= view.height:
            lines.append(GridLine("lat", degrees, y, degrees_label(degrees, "lat")))
    return lines


def checked_base_url(template: str) -> str:
    """A base-layer URL template (BACKHAUL_MAP_BASE_URL) as it is, once it is an http(s) URL holding
    {z}, {x} and {y}; ValueError naming the setting and what is wrong."""
    if not template:
        return template
    scheme, _, rest = template.partition("://")
    if scheme not in ("http", "https") or not rest.split("/", 1)[0]:
        raise ValueError(f"BACKHAUL_MAP_BASE_URL: {template!r} is not an http:// or https:// URL")
    missing = [p for p in ("{z}", "{x}", "{y}") if p not in template]
    if missing:
        raise ValueError(f"BACKHAUL_MAP_BASE_URL: {template!r} lacks {', '.join(missing)}")
    try:
        template.format(z=0, x=0, y=0)
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"BACKHAUL_MAP_BASE_URL: {template!r} holds braces other than {{z}}, {{x}} and "
                         f"{{y}}") from None
    return template


def base_origin(template: str) -> str:
    """The scheme and host of a base-layer template (what the page's Content-Security-Policy allows)."""
    scheme, _, rest = template.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def base_tile_url(template: str, tile: TilePlace) -> str:
    return template.format(z=tile.z, x=tile.x, y=tile.y)


@dataclass(frozen=True)
class Picture:
    """Everything a map draws, bottom to top: the base layer (its tiles with their URLs, or the graticule
    when there is no base layer), the overlay's tiles (the coverage layer) and the markers."""

    view: View
    base_tiles: list[tuple[str, TilePlace]]
    grid: list[GridLine]
    overlay_tiles: list[tuple[str, TilePlace]]
    markers: list[Marker]


def picture(view: View, places: Iterable[Place], *, base_url: str = "",
            overlay: Callable[[TilePlace], str] | None = None) -> Picture:
    """The map of `view`: base tiles from the `base_url` template (none: a graticule), overlay tiles at the
    URLs `overlay` gives, and the `places` in view."""
    covering = tiles(view)
    return Picture(view, [(base_tile_url(base_url, t), t) for t in covering] if base_url else [],
                   [] if base_url else graticule(view),
                   [(overlay(t), t) for t in covering] if overlay else [], markers(view, places))

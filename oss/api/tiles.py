"""/tiles/public-coverage: the predicted coverage as map tiles and as a KMZ (Sigfox API v2 shapes).

- `GET /tiles/public-coverage`: the reference's `tilesResponse`: where our tiles are (`tmsTemplateUrl`,
  carrying the layer asked: `installation`, `view`, `forecast`) and the box the coverage lies in.
- `GET /tiles/public-coverage/{z}/{x}/{y}.png`: one 256 px web-mercator tile (z 0 to 18), transparent where
  no station hears; ETag and `If-None-Match` (304). Tiles come from `oss.coverage_tiles.tile_png`, cached
  until a station or a calibration changes (`coverage_version`).
- `GET /tiles/public-coverage/kmz/tiles.kmz?zoom&north&south&west&east`: the tiles of the box at `zoom`
  (0 to 11, as the reference) in a KMZ, at most 256 tiles.

Layer (Backhaul extensions, on every route): `installation` outdoor (default), indoor or underground;
`view` coverage (link quality classes, default) or redundancy (1, 2, 3+ stations); `forecast` true switches
the planned stations on. Any API user may read the public coverage (every profile reads its groups:
`groups:read`), as the coverage API.
"""
from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from oss.auth import caller
from oss.context import RADIO, TILES, pool
from oss.coverage_kmz import KMZ_CONTENT_TYPE, MAX_KMZ_TILES, KmzTile, kmz
from oss.coverage_tiles import (
    MAX_KMZ_ZOOM,
    MAX_TILE_ZOOM,
    Layer,
    coverage_bounds,
    tile_png,
    tiles_covering,
)
from oss.errors import BadRequest, FieldError, json_response
from oss.params import path_int, q_float, q_int, q_str
from oss.storage import base_stations

routes = web.RouteTableDef()
BASE: Final = "/v2/tiles/public-coverage"
# Browsers keep a tile a minute, then ask again with If-None-Match (a 304 while nothing changed).
CACHE_CONTROL: Final = "private, max-age=60"


def layer_of(request: web.Request) -> Layer:
    """The layer of the query string (`installation`, `view`, `forecast`, case-insensitive); 400 naming a bad
    one."""
    try:
        return Layer.parse(q_str(request, "installation", max_length=20), q_str(request, "view", max_length=20),
                           q_str(request, "forecast", max_length=20))
    except ValueError as exc:
        field, _, reason = str(exc).partition(": ")
        raise BadRequest(FieldError(field, reason, "query")) from None


def layer_query(layer: Layer) -> dict[str, str]:
    """The query string of a layer, its defaults left out."""
    out = {}
    if layer.installation != Layer.installation:
        out["installation"] = layer.installation
    if layer.view != Layer.view:
        out["view"] = layer.view
    if layer.forecast:
        out["forecast"] = "true"
    return out


@routes.get(BASE)
async def public_coverage(request: web.Request) -> web.Response:
    caller(request).require("groups")
    layer = layer_of(request)
    db = pool(request)
    cache = request.app[TILES]
    sites = await cache.sites(db, await base_stations.coverage_version(db), layer.forecast)
    base = request.url.with_path(BASE).with_query(None)
    query = "&".join(f"{k}={v}" for k, v in layer_query(layer).items())
    body: dict[str, Any] = {"baseImgUrl": str(base),
                            "tmsTemplateUrl": f"{base}/{{z}}/{{x}}/{{y}}.png" + (f"?{query}" if query else "")}
    bounds = coverage_bounds(sites, layer, request.app[RADIO])
    if bounds is not None:
        body["bounds"] = {"sw": {"lat": bounds.south, "lng": bounds.west},
                          "ne": {"lat": bounds.north, "lng": bounds.east}}
    return json_response(body)


@routes.get(BASE + "/{z}/{x}/{y}.png")
async def tile(request: web.Request) -> web.Response:
    caller(request).require("groups")
    z = path_int(request, "z", lo=0, hi=MAX_TILE_ZOOM)
    x = path_int(request, "x", lo=0, hi=(1 << z) - 1)
    y = path_int(request, "y", lo=0, hi=(1 << z) - 1)
    layer = layer_of(request)
    png = await tile_png(pool(request), request.app[TILES], layer, z, x, y, request.app[RADIO])
    headers = {"ETag": png.etag, "Cache-Control": CACHE_CONTROL}
    if png.etag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        return web.Response(status=304, headers=headers)
    return web.Response(body=png.body, content_type="image/png", headers=headers)


def _bound(request: web.Request, name: str, limit: float) -> float:
    value = q_float(request, name, lo=-limit, hi=limit)
    if value is None:
        raise BadRequest(FieldError(name, "is required", "query"))
    return value


@routes.get(BASE + "/kmz/tiles.kmz")
async def kmz_file(request: web.Request) -> web.Response:
    caller(request).require("groups")
    zoom = q_int(request, "zoom", lo=0, hi=MAX_KMZ_ZOOM)
    if zoom is None:
        raise BadRequest(FieldError("zoom", "is required", "query"))
    north, south = _bound(request, "north", 90), _bound(request, "south", 90)
    west, east = _bound(request, "west", 180), _bound(request, "east", 180)
    if south >= north:
        raise BadRequest(FieldError("south", f"must be below north ({south:g} >= {north:g})", "query"))
    if west >= east:
        raise BadRequest(FieldError("east", f"must be east of west ({east:g} <= {west:g}); a box across the "
                                            "antimeridian is asked as two", "query"))
    layer = layer_of(request)
    positions = tiles_covering(zoom, north, south, west, east)
    if len(positions) > MAX_KMZ_TILES:
        raise BadRequest(FieldError("zoom", f"the box holds {len(positions):,} tiles at zoom {zoom}, more than "
                                            f"{MAX_KMZ_TILES}: lower the zoom or ask a smaller box", "query"))
    db, cache, configuration = pool(request), request.app[TILES], request.app[RADIO]
    tiles = [KmzTile(zoom, x, y, (await tile_png(db, cache, layer, zoom, x, y, configuration)).body)
             for x, y in positions]
    return web.Response(body=kmz(layer, tiles), content_type=KMZ_CONTENT_TYPE,
                        headers={"Content-Disposition": 'attachment; filename="tiles.kmz"'})

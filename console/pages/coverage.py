"""The service map: the network's predicted coverage on a slippy map, with the stations, the choice of
installation type, view (coverage or redundancy) and forecast, and the margins at a specific place.

The map is drawn by the server (console/map_view.py): an SVG of 256 px tiles for a centre and zoom, the
base layer (tiles from BACKHAUL_MAP_BASE_URL, else a graticule), the coverage layer (tiles of
`/console/coverage/tiles/{z}/{x}/{y}.png`, rendered and cached by `oss.coverage_tiles.tile_png`, the API's
tiles' one source) and the stations. Panning and zooming are links: no script.

Who sees what: every user sees the enabled stations and the coverage they give; an operator (a session in
a group of type 0) also sees the disabled stations and may switch the forecast on (planned stations
counted and shown). The query holds everything (`installation`, `view`, `forecast`, the place's `lat`
and `lng`, the view's centre `clat`, `clng` and zoom `z`): a map can be bookmarked and shared.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web
from yarl import URL

from console import map_view
from console.context import console_settings, session_of
from console.headers import allow_images_from
from console.map_controls import map_links, parse_view, view_query
from console.map_view import Place, TilePlace
from console.place_margins import PlaceError, PlaceReport, parse_coordinate, place_report
from console.render import render
from oss.context import POOL, RADIO, TILES
from oss.coverage_tiles import INSTALLATIONS, LEGEND, VIEWS, Layer, TileCache, tile_png
from oss.storage import base_stations, groups
from oss.storage.operators import OPERATOR_GROUP_TYPE

routes = web.RouteTableDef()
PAGE = "/console/coverage"
# The query's keys: the layer, the place looked up, the view (centre and zoom).
LAYER_KEYS = ("installation", "view", "forecast")
PLACE_KEYS = ("lat", "lng")
STATE_LABELS = {"enabled": "Enabled", "disabled": "Disabled", "planned": "Planned"}
INSTALLATION_LABELS = {"outdoor": "Outdoor", "indoor": "Indoor", "underground": "Underground"}
VIEW_LABELS = {"coverage": "Coverage (link quality)", "redundancy": "Redundancy (stations hearing)"}


async def is_operator(request: web.Request) -> bool:
    """Whether the session works in an operator's group (type 0): only they see disabled and planned stations."""
    kind = await groups.type_of(request.config_dict[POOL], session_of(request).caller.group_id)
    return kind == OPERATOR_GROUP_TYPE


def tile_cache(request: web.Request) -> TileCache:
    """The API's tile cache: the console's tiles are the API's public-coverage tiles, rendered once."""
    return request.config_dict[TILES]


def kept(query: Mapping[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    return {k: query[k] for k in keys if query.get(k, "") != ""}


def tile_href(layer: Layer) -> Callable[[TilePlace], str]:
    """The console URL of one coverage tile of `layer`."""
    layer_query = {"installation": layer.installation, "view": layer.view,
                   **({"forecast": "true"} if layer.forecast else {})}

    def href(tile: TilePlace) -> str:
        return str(URL(f"{PAGE}/tiles/{tile.z}/{tile.x}/{tile.y}.png").with_query(layer_query))
    return href


def parse_layer(query: Mapping[str, str], errors: dict[str, str]) -> Layer:
    try:
        return Layer.parse(query.get("installation"), query.get("view"), query.get("forecast"))
    except ValueError as bad:
        errors[str(bad).split(":", 1)[0]] = str(bad)
        return Layer()


def place_of(query: Mapping[str, str], errors: dict[str, str]) -> tuple[float, float] | None:
    """The place to look up, None when the form left it empty."""
    if not any(query.get(k, "").strip() for k in PLACE_KEYS):
        return None
    found = []
    for field, limit in (("lat", 90), ("lng", 180)):
        try:
            found.append(parse_coordinate(field, query.get(field, ""), limit))
        except PlaceError as bad:
            errors[bad.field] = str(bad)
    return (found[0], found[1]) if len(found) == 2 else None


@routes.get("/coverage")
async def service_map(request: web.Request) -> web.Response:
    query, pool, conf = request.query, request.config_dict[POOL], console_settings(request)
    operator = await is_operator(request)
    errors: dict[str, str] = {}
    layer = parse_layer(query, errors)
    forbidden = layer.forecast and not operator
    if forbidden:
        errors["forecast"] = "forecast: only an operator's users may switch the planned stations on"
        layer = Layer(layer.installation, layer.view)
    states = (base_stations.WITH_PLANNED if layer.forecast else base_stations.SERVING) + \
        (("disabled",) if operator else ())
    stations = await base_stations.on_map(pool, states)
    places = [Place(f"{s['id']} {s['name'] or ''}".strip(), s["lat"], s["lng"], s["state"], s["id"])
              for s in stations]
    view = parse_view(query, errors) or map_view.fit([(p.lat, p.lng) for p in places])
    place = place_of(query, errors)
    report: PlaceReport | None = None
    if place is not None:
        # The stations the coverage layer's tiles are drawn from (loaded once per coverage version).
        sites = await tile_cache(request).sites(pool, await base_stations.coverage_version(pool), layer.forecast)
        names = {s["id"]: s["name"] or s["id"] for s in stations}
        report = place_report(sites, names, place[0], place[1], request.config_dict[RADIO], layer.installation)
        places.append(Place("Place looked up", place[0], place[1], "place"))
    picture = map_view.picture(view, places, base_url=conf.map_base_url, overlay=tile_href(layer))
    status = 403 if forbidden else 400 if errors else 200
    response = render(request, "coverage.html", {
        "picture": picture, "layer": layer, "legend": LEGEND[layer.view], "operator": operator,
        "installations": [(k, INSTALLATION_LABELS.get(k, k)) for k in INSTALLATIONS],
        "views": [(k, VIEW_LABELS.get(k, k)) for k in VIEWS], "query": query, "errors": errors,
        "view_fields": view_query(view), "report": report,
        "links": map_links(PAGE, {**kept(query, LAYER_KEYS), **kept(query, PLACE_KEYS)}, view, "Fit to the stations"),
        "stations": stations, "state_labels": STATE_LABELS, "grid_step": map_view.grid_step(view.z),
    }, status=status)
    if conf.map_base_url:
        allow_images_from(response, map_view.base_origin(conf.map_base_url))
    return response


@routes.get(r"/coverage/tiles/{z:\d{1,2}}/{x:\d{1,9}}/{y:\d{1,9}}.png")
async def coverage_tile(request: web.Request) -> web.Response:
    """One coverage tile of the layer the query names (PNG), from `oss.coverage_tiles.tile_png`."""
    try:
        layer = Layer.parse(request.query.get("installation"), request.query.get("view"),
                            request.query.get("forecast"))
        z, x, y = (int(request.match_info[k]) for k in ("z", "x", "y"))
        if z > map_view.MAX_ZOOM:
            raise ValueError(f"z: {z} is not a zoom level (0..{map_view.MAX_ZOOM})")
        if layer.forecast and not await is_operator(request):
            raise web.HTTPForbidden(reason="forecast: only an operator's users may switch the planned stations on")
        tile = await tile_png(request.config_dict[POOL], tile_cache(request), layer, z, x, y,
                              request.config_dict[RADIO])
    except ValueError as bad:
        raise web.HTTPBadRequest(reason=str(bad)) from None
    # The tile changes with the stations and their calibration: the browser asks again each time, and an
    # unchanged tile costs a 304.
    headers = {"ETag": tile.etag, "Cache-Control": "private, no-cache"}
    if tile.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=tile.body, content_type="image/png", headers=headers)

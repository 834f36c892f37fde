"""The service map's geometry (console/map_view.py) and its specific-place report (console/place_margins.py)."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console import map_view as mv
from console.place_margins import NOT_COVERED, PlaceError, parse_coordinate, place_report
from oss.coverage_tiles import TILE_PX, lat_to_px, lng_to_px
from radio.link_budget import INSTALLATION_LOSS_DB, radio_configuration
from radio.predict import Sites, StationSite

lats = st.floats(-80, 80)
lngs = st.floats(-180, 179.999)
zooms = st.integers(mv.MIN_ZOOM, mv.MAX_ZOOM)
RC1 = radio_configuration("RC1")


@given(lats, lngs, zooms)
def test_the_centre_of_a_view_is_the_middle_of_the_picture(lat, lng, z):
    view = mv.View.at(lat, lng, z)
    x, y = view.to_screen(lat, lng)
    assert abs(x - view.width / 2) <= 1 and abs(y - view.height / 2) <= 1


@given(lats, lngs, zooms)
def test_tiles_cover_the_view_on_the_tile_grid(lat, lng, z):
    view = mv.View.at(lat, lng, z)
    placed = mv.tiles(view)
    count = 2 ** z
    assert placed and all(t.z == z and 0 <= t.x < count and 0 <= t.y < count for t in placed)
    # Each tile sits where the web-mercator grid has it: its corner is a multiple of 256 global pixels.
    assert all((t.left + view.left) % TILE_PX == 0 and (t.top + view.top) % TILE_PX == 0 for t in placed)
    assert all(-TILE_PX < t.left < view.width and -TILE_PX < t.top < view.height for t in placed)
    # Every pixel of the view inside the world is under exactly one tile.
    world_top, world_bottom = -view.top, mv.world_px(z) - view.top
    for px, py in ((0, 0), (view.width - 1, 0), (view.width // 2, view.height // 2), (0, view.height - 1),
                   (view.width - 1, view.height - 1)):
        under = [t for t in placed if t.left <= px < t.left + TILE_PX and t.top <= py < t.top + TILE_PX]
        assert len(under) == (1 if world_top <= py < world_bottom else 0)


def test_tiles_wrap_around_the_antimeridian_and_stop_at_the_poles():
    east = mv.View.at(0, 179.9, 3)
    assert sorted({t.x for t in mv.tiles(east)}) == [0, 1, 6, 7]
    north = mv.View.at(85.0, 0, 2)
    assert min(t.y for t in mv.tiles(north)) == 0 and all(t.top >= -TILE_PX for t in mv.tiles(north))


@given(lats, lngs, st.integers(mv.MIN_ZOOM + 1, mv.MAX_ZOOM - 1))
def test_panning_there_and_back_and_zooming_in_and_out_keep_the_centre(lat, lng, z):
    view = mv.View.at(lat, lng, z)
    back = view.panned(0.5, 0).panned(-0.5, 0)
    assert back.to_screen(lat, lng)[0] == pytest.approx(view.width / 2, abs=1.5)
    east = view.panned(0.5, 0)
    assert east.to_screen(lat, lng)[0] == pytest.approx(view.width / 2 - view.width / 2, abs=1.5)
    assert view.zoomed(1).z == z + 1 and view.zoomed(1).zoomed(-1) == view
    assert mv.View.at(lat, lng, mv.MAX_ZOOM).zoomed(1).z == mv.MAX_ZOOM


def test_panning_north_stops_at_the_edge_of_the_world():
    view = mv.View.at(80, 10, 2)
    assert view.panned(0, -5).lat == pytest.approx(mv.MAX_LAT)


@settings(max_examples=60)
@given(st.lists(st.tuples(st.floats(30, 60), st.floats(-10, 30)), min_size=1, max_size=6))
def test_fit_shows_every_point_inside_its_margin_at_the_closest_zoom_that_does(points):
    view = mv.fit(points)
    for lat, lng in points:
        x, y = view.to_screen(lat, lng)
        assert mv.FIT_MARGIN_PX - 1 <= x <= view.width - mv.FIT_MARGIN_PX + 1
        assert mv.FIT_MARGIN_PX - 1 <= y <= view.height - mv.FIT_MARGIN_PX + 1
    if view.z < mv.FIT_MAX_ZOOM:   # one zoom closer does not hold them all
        closer = view.z + 1
        xs = [lng_to_px(p[1], closer) for p in points]
        ys = [lat_to_px(p[0], closer) for p in points]
        assert (max(xs) - min(xs) > view.width - 2 * mv.FIT_MARGIN_PX
                or max(ys) - min(ys) > view.height - 2 * mv.FIT_MARGIN_PX)


def test_fit_of_one_station_is_the_closest_fit_zoom_and_of_nothing_the_world():
    assert mv.fit([(43.6, 1.44)]).z == mv.FIT_MAX_ZOOM
    nothing = mv.fit([])
    assert (nothing.lat, nothing.lng, nothing.z) == mv.NO_PLACE_CENTRE


@given(lats, lngs, zooms)
def test_graticule_lines_are_in_view_evenly_spaced_and_labelled(lat, lng, z):
    view = mv.View.at(lat, lng, z)
    lines = mv.graticule(view)
    step = mv.grid_step(z)
    meridians = sorted(g.at for g in lines if g.axis == "lng")
    assert meridians, "a view is wider than the step: some meridian crosses it"
    assert all(0 <= x <= view.width for x in meridians)
    gaps = [b - a for a, b in zip(meridians, meridians[1:], strict=False)]
    assert all(g == pytest.approx(step / 360 * mv.world_px(z), rel=1e-6) for g in gaps)
    assert all(g >= mv.GRID_MIN_GAP_PX or step == mv.GRID_STEPS_DEG[0] for g in gaps)
    for g in lines:
        assert math.isclose(g.degrees / step, round(g.degrees / step), abs_tol=1e-6)
        assert g.label.endswith(("°", " N", " S", " E", " W"))
        if g.axis == "lat":
            assert 0 <= g.at <= view.height


def test_grid_step_grows_finer_with_zoom_and_labels_read_well():
    steps = [mv.grid_step(z) for z in range(mv.MIN_ZOOM, mv.MAX_ZOOM + 1)]
    assert steps == sorted(steps, reverse=True) and steps[0] == 45 and steps[-1] == 0.001
    assert mv.grid_step(10) == 0.2
    assert [mv.degrees_label(v, a) for v, a in ((43.6, "lat"), (-1.25, "lng"), (0, "lat"), (-180, "lng"),
                                                (1.0, "lng"), (-33.9, "lat"))] == \
        ["43.6° N", "1.25° W", "0°", "180°", "1° E", "33.9° S"]


def test_markers_outside_the_view_are_left_out():
    view = mv.View.at(43.6, 1.44, 12)
    places = [mv.Place("here", 43.6, 1.44, "enabled", "0A1B"), mv.Place("far", 48.85, 2.35, "planned")]
    shown = mv.markers(view, places)
    assert [m.place.label for m in shown] == ["here"]
    assert (shown[0].x, shown[0].y) == pytest.approx((view.width / 2, view.height / 2), abs=1)


def test_a_picture_draws_base_tiles_from_the_template_or_else_the_graticule():
    view = mv.View.at(43.6, 1.44, 10)
    with_base = mv.picture(view, [], base_url="https://tile.example/{z}/{x}/{y}.png",
                           overlay=lambda t: f"/c/{t.z}/{t.x}/{t.y}.png")
    assert [href for href, _ in with_base.base_tiles][0] == "https://tile.example/10/514/372.png"
    assert with_base.grid == [] and len(with_base.overlay_tiles) == len(with_base.base_tiles) == 12
    plain = mv.picture(view, [])
    assert plain.base_tiles == [] and plain.overlay_tiles == [] and plain.grid == mv.graticule(view)


@pytest.mark.parametrize("template, problem", [
    ("ftp://tile.example/{z}/{x}/{y}.png", "is not an http:// or https:// URL"),
    ("https:///{z}/{x}/{y}", "is not an http:// or https:// URL"),
    ("https://tile.example/{z}/{x}.png", "lacks {y}"),
    ("https://tile.example/{z}/{x}/{y}/{s}.png", "holds braces other than"),
])
def test_a_bad_base_url_is_refused_naming_the_setting(template, problem):
    with pytest.raises(ValueError, match=r"^BACKHAUL_MAP_BASE_URL: .*" + problem.replace("{", r"\{")):
        mv.checked_base_url(template)


def test_a_good_base_url_is_kept_and_its_origin_allowed():
    template = "https://tile.example:8443/osm/{z}/{x}/{y}.png"
    assert mv.checked_base_url(template) == template and mv.checked_base_url("") == ""
    assert mv.base_origin(template) == "https://tile.example:8443"


@pytest.mark.parametrize("text, limit, message", [
    ("abc", 90, "lat: 'abc' is not a number"), ("91", 90, "lat: 91 is not a latitude (-90..90)"),
    ("nan", 90, "lat: nan is not a latitude (-90..90)"), ("-180.5", 180, "lat: -180.5 is not a longitude"),
])
def test_a_place_that_is_not_one_names_the_field(text, limit, message):
    with pytest.raises(PlaceError, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as bad:
        parse_coordinate("lat", text, limit)
    assert bad.value.field == "lat"
    assert parse_coordinate("lng", " -1.5 ", 180) == -1.5


def test_the_place_report_lists_margins_best_first_with_distances_and_counts_the_stations_that_hear():
    stations = Sites.of([StationSite("0A01", 43.60, 1.44), StationSite("0A02", 43.65, 1.44),
                         StationSite("0A03", 45.0, 1.44)])
    outdoor = place_report(stations, {"0A01": "Capitole"}, 43.60, 1.44, RC1, "outdoor")
    assert [m.id for m in outdoor.margins] == ["0A01", "0A02", "0A03"]
    assert [m.name for m in outdoor.margins] == ["Capitole", "0A02", "0A03"]
    assert outdoor.margins[0].distance_km == pytest.approx(0, abs=1e-6)
    assert outdoor.margins[1].distance_km == pytest.approx(5.56, abs=0.02)
    margins = [m.margin_db for m in outdoor.margins]
    assert margins == sorted(margins, reverse=True) and margins[0] > 20 and margins[2] < 0
    assert outdoor.stations_hearing == sum(m.hears for m in outdoor.margins) == 2
    assert outdoor.link_quality in ("Good", "Excellent")
    indoor = place_report(stations, {}, 43.60, 1.44, RC1, "indoor")
    assert [m.margin_db for m in indoor.margins] == pytest.approx(
        [m - INSTALLATION_LOSS_DB["INDOOR"] for m in margins])
    far = place_report(stations, {}, 10.0, 1.44, RC1, "outdoor")
    assert far.stations_hearing == 0 and far.link_quality == NOT_COVERED
    assert place_report(Sites.of([]), {}, 10.0, 1.44, RC1, "outdoor").margins == []


def test_the_view_in_a_query_is_checked_and_its_links_keep_the_rest_of_the_query():
    from console.map_controls import map_links, parse_view, view_query
    errors: dict[str, str] = {}
    assert parse_view({}, errors) is None and errors == {}
    view = parse_view({"clat": "43.6", "clng": "1.44", "z": "12"}, errors, 640, 320)
    assert view is not None and (view.lat, view.z, view.width, view.height) == (43.6, 12, 640, 320)
    assert view.lng == pytest.approx(1.44)
    for bad, field in (({"clat": "x", "clng": "1", "z": "3"}, "clat"), ({"clat": "1", "clng": "200", "z": "3"}, "clng"),
                       ({"clat": "1", "clng": "1", "z": "19"}, "z"), ({"clat": "1", "clng": "1"}, "z")):
        errors = {}
        assert parse_view(bad, errors) is None and list(errors) == [field] and errors[field].startswith(f"{field}: ")
    links = {link.id: link for link in map_links("/console/coverage", {"installation": "indoor"}, view, "Fit")}
    assert links["fit"].href == "/console/coverage?installation=indoor"
    assert links["zoom-in"].href == "/console/coverage?installation=indoor&clat=43.600000&clng=1.440000&z=13"
    east = parse_view(dict(part.split("=") for part in links["pan-east"].href.split("?")[1].split("&")), {})
    assert east is not None and east.lng > view.lng and east.lat == pytest.approx(view.lat)
    top = mv.View.at(0, 0, mv.MAX_ZOOM)
    assert {link.id: link.href for link in map_links("/p", {}, top, "Fit")}["zoom-in"] is None
    assert view_query(top) == {"clat": "0.000000", "clng": "0.000000", "z": "18"}


def test_a_base_layer_host_is_allowed_for_images_only():
    from aiohttp import web

    from console.headers import SECURITY_HEADERS, allow_images_from
    response = web.Response()
    allow_images_from(response, "https://tile.example")
    policy = response.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://tile.example;" in policy
    assert policy.replace(" https://tile.example", "") == SECURITY_HEADERS["Content-Security-Policy"]

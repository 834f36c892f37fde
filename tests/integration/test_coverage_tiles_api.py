"""/v2/tiles/public-coverage: the tiles document, PNG tiles (ETag, 304, invalidated when a station or a
calibration changes) and the KMZ export, on the real API and PostgreSQL, answers held to the reference."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ElementTree
import zipfile

import pytest
from PIL import Image

from oss.coverage_tiles import TILE_PX, lat_to_px, lng_to_px, tile_bounds, tiles_covering
from oss.profiles import PROFILES
from tests.api_support import check, make_tenant, running_api
from tests.reference_support import answer_errors

pytestmark = pytest.mark.integration

PARIS = (48.8566, 2.3522)
BASE = "/v2/tiles/public-coverage"
VIEWER = next(p.id for p in PROFILES.values() if p.name == "DEVICE MANAGER [R]")
KML = "{http://www.opengis.net/kml/2.2}"


def fits(route: str, status: int, body) -> None:
    judge, misfits = answer_errors("GET", route, status, body)
    assert not misfits, f"{route} {status} does not fit the {judge} document: {misfits}"


def tile_of(lat: float, lng: float, z: int) -> tuple[int, int]:
    return int(lng_to_px(lng, z) // TILE_PX), int(lat_to_px(lat, z) // TILE_PX)


async def add_station(pool, station_id: str, lat: float, lng: float, state: str = "enabled") -> None:
    await pool.execute("INSERT INTO base_stations (id, name, lat, lng, state) VALUES ($1, $1, $2, $3, $4)",
                       station_id, lat, lng, state)


def covered_pixels(png: bytes) -> int:
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.size) == ("PNG", (TILE_PX, TILE_PX))
    return int((Image.open(io.BytesIO(png)).convert("RGBA").getchannel("A").point(lambda a: a > 0)).histogram()[1])


async def test_tiles_document_and_tiles_follow_the_stations(isolated):
    async with running_api() as (api, _root):
        customer = (await make_tenant(api, "customer", profiles=(VIEWER,))).client
        await add_station(api.pool, "7A01", *PARIS)

        info = check(await customer.get("/tiles/public-coverage"), 200)
        fits(BASE, 200, info)
        assert info["baseImgUrl"] == api.base + "/tiles/public-coverage"
        assert info["tmsTemplateUrl"] == api.base + "/tiles/public-coverage/{z}/{x}/{y}.png"
        sw, ne = info["bounds"]["sw"], info["bounds"]["ne"]
        assert sw["lat"] < PARIS[0] < ne["lat"] and sw["lng"] < PARIS[1] < ne["lng"]
        assert 0.05 < ne["lat"] - PARIS[0] < 0.2   # an urban station's outdoor range: about 10 km
        indoor = check(await customer.get("/tiles/public-coverage", params={"installation": "indoor",
                                                                             "forecast": "true"}), 200)
        assert indoor["tmsTemplateUrl"].endswith("/{z}/{x}/{y}.png?installation=indoor&forecast=true")
        assert indoor["bounds"]["ne"]["lat"] < ne["lat"]

        z = 11
        x, y = tile_of(*PARIS, z)
        url = info["tmsTemplateUrl"].format(z=z, x=x, y=y)
        first = await customer.get(url)
        assert first.status == 200 and first.headers["Content-Type"] == "image/png", first.body
        fits(BASE + "/{z}/{x}/{y}.png", 200, first.body)
        assert covered_pixels(first.body) > 0
        etag = first.headers["ETag"]
        assert first.headers["Cache-Control"].startswith("private")
        unchanged = await customer.get(url, headers={"If-None-Match": etag})
        assert (unchanged.status, unchanged.body, unchanged.headers["ETag"]) == (304, b"", etag)
        fits(BASE + "/{z}/{x}/{y}.png", 304, None)
        far = await customer.get(info["tmsTemplateUrl"].format(z=z, x=0, y=0))
        assert far.status == 200 and covered_pixels(far.body) == 0

        # Underground (1.5 km ranges) the tile is partly covered: a station added in it covers more.
        west, south, east, north = (getattr(tile_bounds(z, x, y), k) for k in ("west", "south", "east", "north"))
        under = {"installation": "underground"}
        before = await customer.get(url, params=under)
        await add_station(api.pool, "7A02", north - (north - south) / 4, east - (east - west) / 4)
        more = await customer.get(url, params=under, headers={"If-None-Match": before.headers["ETag"]})
        assert more.status == 200 and more.headers["ETag"] != before.headers["ETag"]
        assert covered_pixels(more.body) > covered_pixels(before.body)
        # A planned station shows in the forecast only.
        await add_station(api.pool, "7A03", south + (north - south) / 4, west + (east - west) / 4, state="planned")
        serving = await customer.get(url, params=under)
        assert serving.headers["ETag"] == more.headers["ETag"]   # same coverage: same tile, same tag
        forecast = await customer.get(url, params={**under, "forecast": "true"})
        assert covered_pixels(forecast.body) > covered_pixels(serving.body)
        # A calibration of enough receptions (−10 dB) shrinks the station's coverage.
        await api.pool.execute(
            "INSERT INTO station_calibrations (station_id, offset_db, slope_db, receptions, held_out) "
            "VALUES ('7A02', -10, 0, 400, 100)")
        calibrated = await customer.get(url, params=under)
        assert calibrated.headers["ETag"] != serving.headers["ETag"]
        assert 0 < covered_pixels(calibrated.body) < covered_pixels(serving.body)

        redundancy = await customer.get(url, params={"view": "redundancy", "installation": "UNDERGROUND"})
        assert redundancy.status == 200 and covered_pixels(redundancy.body) == covered_pixels(calibrated.body)
        assert redundancy.body != calibrated.body   # the same pixels, classed by station count

        for path, params, field in ((f"{BASE}/19/0/0.png", None, "z"), (f"{BASE}/2/4/0.png", None, "x"),
                                    (f"{BASE}/2/0/-1.png", None, "y"), (url, {"installation": "cellar"},
                                                                        "installation"),
                                    (url, {"view": "heat"}, "view"), (url, {"forecast": "maybe"}, "forecast")):
            bad = await customer.get(path.removeprefix("/v2"), params=params)
            assert bad.status == 400 and bad.body["errors"][0]["field"] == field, (path, params, bad.body)


async def test_kmz_export_lists_the_tiles_and_refuses_too_many(isolated):
    async with running_api() as (api, _root):
        customer = (await make_tenant(api, "customer", profiles=(VIEWER,))).client
        await add_station(api.pool, "7B01", *PARIS)
        box = {"zoom": "9", "north": "49.1", "south": "48.6", "west": "2.0", "east": "2.7"}
        reply = await customer.get("/tiles/public-coverage/kmz/tiles.kmz", params=box)
        assert reply.status == 200, reply.body
        assert reply.headers["Content-Type"] == "application/vnd.google-earth.kmz"
        fits(BASE + "/kmz/tiles.kmz", 200, reply.body)
        expected = tiles_covering(9, 49.1, 48.6, 2.0, 2.7)
        archive = zipfile.ZipFile(io.BytesIO(reply.body))
        names = archive.namelist()
        assert names == ["doc.kml", *(f"tiles/9/{x}/{y}.png" for x, y in expected)]
        kml = ElementTree.fromstring(archive.read("doc.kml"))
        overlays = kml.findall(f".//{KML}GroundOverlay")
        assert [o.find(f"{KML}Icon/{KML}href").text for o in overlays] == names[1:]
        box_of = {o.find(f"{KML}Icon/{KML}href").text: float(o.find(f"{KML}LatLonBox/{KML}north").text)
                  for o in overlays}
        paris_tile = "tiles/9/{}/{}.png".format(*tile_of(*PARIS, 9))
        assert box_of[paris_tile] > PARIS[0]
        assert sum(covered_pixels(archive.read(n)) > 0 for n in names[1:]) >= 1
        assert covered_pixels(archive.read(paris_tile)) > 0

        too_many = await customer.get("/tiles/public-coverage/kmz/tiles.kmz",
                                      params={**box, "zoom": "11", "north": "51", "south": "42", "west": "-5",
                                              "east": "8"})
        assert too_many.status == 400 and too_many.body["errors"][0]["field"] == "zoom", too_many.body
        assert "more than 256" in too_many.body["message"]
        for change, field in (({"south": "49.2"}, "south"), ({"east": "1"}, "east"), ({"zoom": "12"}, "zoom"),
                              ({"north": "91"}, "north"), ({"west": None}, "west")):
            params = {k: v for k, v in {**box, **change}.items() if v is not None}
            bad = await customer.get("/tiles/public-coverage/kmz/tiles.kmz", params=params)
            assert bad.status == 400 and bad.body["errors"][0]["field"] == field, (change, bad.body)

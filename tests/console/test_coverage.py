"""The service map in a real browser: three stations (one planned) on the map, coverage tiles that load as PNG
and follow the layer chosen, the forecast for operators only, the specific-place lookup and its errors, and
the map moved with the keyboard."""
from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import aiohttp
import pytest
from PIL import Image
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from oss.profiles import ADMIN
from tests.console.harness import Browser, Site

# Around Toulouse: two enabled stations 6 km apart and a planned one east of them.
STATIONS = (("7C01", "Capitole", 43.6045, 1.4440, "enabled"), ("7C02", "Blagnac", 43.6350, 1.3900, "enabled"),
            ("7C03", "Balma", 43.6110, 1.5150, "planned"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def stations(site: Site) -> None:
    async def insert() -> None:
        await site.env.pool.executemany(
            "INSERT INTO base_stations(id, name, lat, lng, state) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (id) DO NOTHING", STATIONS)
    site.run(insert())


@pytest.fixture
def disabled_station(site: Site, stations: None) -> Iterator[None]:
    """A disabled station (the operator's concern only), for one test."""
    site.run(site.env.pool.execute("INSERT INTO base_stations(id, name, lat, lng, state) VALUES "
                                   "('7C04', 'Colomiers', 43.6110, 1.3350, 'disabled')"))
    yield
    site.run(site.env.pool.execute("DELETE FROM base_stations WHERE id = '7C04'"))


def marker_ids(browser: Browser) -> dict[str, str]:
    return {m.get_attribute("data-id"): m.get_attribute("data-kind")
            for m in browser.finds("#service-map g.marker[data-id]")}


def tile_urls(browser: Browser) -> list[str]:
    return [i.get_attribute("href") for i in browser.finds("#service-map image.coverage-tile")]


def fetched(browser: Browser, url: str) -> tuple[int, str, bytes]:
    """GET `url` from the page (its session cookie): status, content type and body."""
    status, kind, body = browser.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {credentials: 'same-origin'}).then(async r => {
          const bytes = new Uint8Array(await r.arrayBuffer());
          let text = ''; for (const b of bytes) text += String.fromCharCode(b);
          done([r.status, r.headers.get('Content-Type') || '', btoa(text)]);
        }).catch(e => done([0, String(e), '']));""", url)
    return int(status), str(kind), base64.b64decode(body)


def loaded_tiles(browser: Browser) -> dict[str, int]:
    """The coverage tiles the browser itself loaded for the page, with their HTTP status."""
    wanted = len(tile_urls(browser))

    def entries() -> dict[str, int] | None:
        found = browser.driver.execute_script(
            "return performance.getEntriesByType('resource').filter(e => e.name.includes('/coverage/tiles/'))"
            ".map(e => [e.name, e.responseStatus])")
        return {name: status for name, status in found} if len(found) >= wanted else None
    return browser.wait(entries, 15, "the coverage tiles to load")


def test_the_service_map_shows_stations_coverage_layers_forecast_and_the_margins_at_a_place(site, browser, stations):
    browser.login(site.person([(site.env.root_group, ADMIN)]))   # the root group is the operator's (type 0)
    browser.open("/console/")
    browser.submit("nav.side a[href='/console/coverage']")
    assert browser.text("h1") == "Service map"
    browser.check_plain()
    # Fitted to the stations: the enabled ones are shown, the planned one only with the forecast.
    assert marker_ids(browser) == {"7C01": "enabled", "7C02": "enabled"}
    zoom = int(browser.find("#service-map").get_attribute("data-zoom"))
    assert 8 <= zoom <= 11
    # The coverage tiles: loaded by the browser with 200, PNGs, and the one under a station is coloured.
    urls = tile_urls(browser)
    assert len(urls) >= 6 and all("installation=outdoor" in u and "view=coverage" in u for u in urls)
    assert set(loaded_tiles(browser).values()) == {200}
    painted = 0
    for url in urls:
        status, kind, body = fetched(browser, url)
        assert (status, kind, body[:8]) == (200, "image/png", PNG_SIGNATURE)
        image = Image.open(io.BytesIO(body)).convert("RGBA")
        assert image.size == (256, 256)
        painted += image.getextrema()[3][1] > 0
    assert painted >= 1, "no tile shows any coverage around two stations"
    legend = browser.text("#legend")
    assert "Excellent" in legend and "Limit" in legend
    # Indoor: other tiles (the layer is in their URL).
    Select(browser.find("#m-installation")).select_by_value("indoor")
    browser.submit("#map-apply")
    indoor = tile_urls(browser)
    assert indoor and all("installation=indoor" in u for u in indoor) and set(indoor).isdisjoint(urls)
    assert set(loaded_tiles(browser).values()) == {200}
    # Redundancy view: its own legend.
    Select(browser.find("#m-view")).select_by_value("redundancy")
    browser.submit("#map-apply")
    assert "2 stations" in browser.text("#legend") and all("view=redundancy" in u for u in tile_urls(browser))
    # The forecast switches the planned station on: on the map, in the tiles' layer.
    Select(browser.find("#m-view")).select_by_value("coverage")
    Select(browser.find("#m-installation")).select_by_value("outdoor")
    browser.find("#m-forecast").click()
    browser.submit("#map-apply")
    assert marker_ids(browser) == {"7C01": "enabled", "7C02": "enabled", "7C03": "planned"}
    assert all("forecast=true" in u for u in tile_urls(browser))
    # A specific place 2.7 km south of the Capitole station: every station's margin, best first (the
    # stations' antennas are alike: the nearest is the best).
    browser.find("#m-lat").send_keys("43.5800")
    browser.find("#m-lng").send_keys("1.4400")
    browser.submit("#map-apply")
    rows = browser.finds("#place-margins tr.margin")
    assert [r.get_attribute("data-id") for r in rows] == ["7C01", "7C03", "7C02"]
    distances = [float(r.find_element("css selector", "td.distance").text) for r in rows]
    assert distances == sorted(distances) and 2.6 < distances[0] < 2.9
    margins = [float(r.get_attribute("data-margin")) for r in rows]
    assert margins == sorted(margins, reverse=True) and margins[0] > 10
    heard = int(browser.text("#place-heard"))
    assert heard == sum(m >= 0 for m in margins) >= 2
    assert browser.text("#place-quality") in ("Excellent", "Good")
    assert len(browser.finds("#service-map g.marker.place")) == 1
    browser.check_plain()
    browser.shot("service-map")
    # Moved with the keyboard: the zoom-in link takes Enter, the place and layer stay.
    zoom = int(browser.find("#service-map").get_attribute("data-zoom"))
    old = browser.find("html")
    browser.find("#zoom-in").send_keys(Keys.ENTER)
    browser.wait(lambda: old != browser.find("html") and int(browser.find("#service-map").get_attribute("data-zoom"))
                 == zoom + 1, what="the map zoomed in")
    assert browser.finds("#place-margins") and browser.find("#m-forecast").is_selected()
    browser.submit("#pan-east")
    assert float(browser.find("#service-map").get_attribute("data-lng")) > 1.44
    # A latitude that is not one: refused, naming the field.
    browser.find("#m-lat").clear()
    browser.find("#m-lat").send_keys("95")
    browser.submit("#map-apply")
    assert "lat: 95 is not a latitude (-90..90)" in browser.text("#map-errors")
    assert browser.find("#m-lat").get_attribute("aria-invalid") == "true" and not browser.finds("#place-margins")


def test_a_customer_sees_the_serving_network_without_the_forecast(site, browser, stations, disabled_station):
    customer = site.tenant("Map customer")
    browser.login(site.person([(customer.group, ADMIN)]))
    browser.open("/console/coverage")
    assert not browser.finds("#m-forecast"), "only operators may switch the planned stations on"
    assert marker_ids(browser) == {"7C01": "enabled", "7C02": "enabled"}
    assert [r.get_attribute("data-id") for r in browser.finds("#stations tr.station")] == ["7C01", "7C02"]
    assert set(loaded_tiles(browser).values()) == {200}
    # Asked for anyway: refused, on the page and for the tiles.
    browser.open("/console/coverage?forecast=true")
    assert "forecast: only an operator's users" in browser.text("#map-errors")
    assert "7C03" not in marker_ids(browser)
    forecast_tile = tile_urls(browser)[0] + "&forecast=true"
    assert fetched(browser, forecast_tile)[0] == 403
    # Tiles need a session; an unchanged tile is a 304 to the browser that has it.
    tile = tile_urls(browser)[0]
    cookie = browser.driver.get_cookie("bh_console")["value"]

    async def get(cookies: dict[str, str], headers: dict[str, str]) -> tuple[int, str, str]:
        async with aiohttp.ClientSession(cookies=cookies) as http:
            async with http.get(site.base + tile, headers=headers, allow_redirects=False) as resp:
                return resp.status, resp.headers.get("Location", ""), resp.headers.get("ETag", "")
    status, where, _ = site.run(get({}, {}))
    assert status == 303 and where.startswith("/console/login")
    status, _, etag = site.run(get({"bh_console": cookie}, {}))
    assert status == 200 and etag
    assert site.run(get({"bh_console": cookie}, {"If-None-Match": etag}))[0] == 304
    # The lookup works for customers, over the serving stations.
    browser.find("#m-lat").send_keys("43.6350")
    browser.find("#m-lng").send_keys("1.3900")
    browser.submit("#map-apply")
    assert [r.get_attribute("data-id") for r in browser.finds("#place-margins tr.margin")] == ["7C02", "7C01"]
    browser.find("#m-lng").clear()
    browser.find("#m-lng").send_keys("east")
    browser.submit("#map-apply")
    assert "lng: 'east' is not a number" in browser.text("#map-errors")
    browser.open("/console/coverage?installation=attic&view=coverage")
    assert "installation: 'attic' is not one of outdoor, indoor, underground" in browser.text("#map-errors")
    browser.logout()
    browser.login(site.person([(site.env.root_group, ADMIN)]))
    browser.open("/console/coverage")
    assert marker_ids(browser) == {"7C01": "enabled", "7C02": "enabled", "7C04": "disabled"}
    assert "Disabled" in browser.text("#stations tr[data-id='7C04']")

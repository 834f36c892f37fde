"""The console's test bench: the real API + console on 127.0.0.1 (in a thread of its own, so Selenium's blocking
calls never stall it), a fresh database, and Debian's Chromium driven through chromedriver.

Tests are plain functions: they drive the browser and prepare data with `site.run(coroutine)`, which runs on
the server's loop (the API client, the pool).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
from aiohttp import web
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from backhaul.db import create_pool
from console.app import mount
from console.passwords import hash_password
from oss.app import bootstrap_root, create_app
from oss.login_throttle import LoginPolicy
from oss.storage import console_sessions
from tests.api_support import TEST_LIMITS, ApiEnv, Client, Tenant, check, dsn_for, fresh_database, make_tenant
from tests.conftest import LOOPBACK_RECEIVERS

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BACKHAUL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BACKHAUL_CHROMEDRIVER", "/usr/bin/chromedriver")
# Screenshots go to docs/console when BACKHAUL_SCREENSHOTS=1 (README "Console": how they are made), else to a
# temporary folder (they are taken either way, so the code that takes them is exercised in CI).
SHOTS = ROOT / "docs" / "console"
PASSWORD = "correct horse battery"


def browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is not installed (apt-get install chromium chromium-driver; .ci/run does it)"
    return None


@dataclass
class Person:
    id: str
    email: str
    password: str


class Site:
    """The API and console on a port of 127.0.0.1, served from a thread with its own event loop."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="console-site", daemon=True)
        self.thread.start()
        self.env: ApiEnv = self.run(self._start())
        self.base = self.env.base.removesuffix("/v2")

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> ApiEnv:
        dsn = await fresh_database(self.database)
        pool = await create_pool(dsn, min_size=2, max_size=10)
        app = create_app(pool, rate_limits=TEST_LIMITS, keepalive_min_s=60, auth_cache_s=5, bulk_chunk=1000,
                         callback_allow_networks=LOOPBACK_RECEIVERS,
                         login_policy=LoginPolicy(address_free_failures=0, first_lock_s=60.0))
        mount(app)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        group, login, token = await bootstrap_root(pool, "Backhaul")
        base = f"http://127.0.0.1:{port}/v2"
        self.session = aiohttp.ClientSession()
        return ApiEnv(pool, None, base, group, Client(self.session, base, login, token), app)  # type: ignore[arg-type]

    def close(self) -> None:
        async def stop() -> None:
            await self.session.close()
            await self.runner.cleanup()
            await self.env.pool.close()
            admin = await asyncpg.connect(dsn_for("postgres"))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await admin.close()
        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # Data, made through the API as the root API user (or straight in storage for what the API lacks).

    def tenant(self, name: str, *, parent: str | None = None) -> Tenant:
        return self.run(make_tenant(self.env, name, parent=parent))

    def person(self, roles: list[tuple[str, str]], *, email: str | None = None, password: str = PASSWORD,
               terms: bool = True, first: str = "Ada", last: str = "Lovelace") -> Person:
        """A user holding `roles` [(group id, profile id)], with a console password (and terms accepted)."""
        email = email or f"{uuid.uuid4().hex[:8]}@example.com"

        async def make() -> str:
            body = {"firstName": first, "lastName": last, "email": email, "timezone": "Europe/Paris",
                    "userRoles": [{"groupId": g, "profileId": p} for g, p in roles]}
            user_id = check(await self.env.root.post("/users/", body), 201)["id"]
            hashed = await asyncio.to_thread(hash_password, password)
            await console_sessions.set_password(self.env.pool, user_id, hashed, 0)
            if terms:
                await console_sessions.accept_terms(self.env.pool, user_id, 0)
            return str(user_id)

        return Person(self.run(make()), email, password)


def start_browser(downloads: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--window-size=1280,800", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


class Browser:
    """A Chromium window on the site, with the steps tests repeat."""

    def __init__(self, driver: WebDriver, site: Site, downloads: Path, shots: Path) -> None:
        self.driver, self.site, self.downloads, self.shots = driver, site, downloads, shots

    def open(self, path: str) -> None:
        self.driver.get(self.site.base + path)

    def find(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str = "main") -> str:
        return str(self.find(css).text)

    def wait(self, predicate, timeout: float = 10.0, what: str = "the page") -> Any:
        # A page being replaced makes elements stale or absent for a moment: keep polling through it.
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05,
                             ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
            lambda d: predicate(), message=f"waiting for {what}")

    def wait_css(self, css: str, timeout: float = 10.0):
        return self.wait(lambda: (self.finds(css) or [None])[0], timeout, css)

    def submit(self, css: str, timeout: float = 15.0) -> None:
        """Click a control that loads a new page, and wait until the new page replaced the old one."""
        for attempt in range(3):
            try:
                self.wait(lambda: self.driver.execute_script("return document.readyState") == "complete", timeout,
                          "the page to load")
                old = self.find("html")
                self.find(css).click()
                break
            except WebDriverException as exc:
                # A page still being replaced (a redirect landing, an htmx swap) detaches the node clicked: retry.
                if attempt == 2 or not (isinstance(exc, StaleElementReferenceException)
                                        or "does not belong to the document" in str(exc)):
                    raise
                time.sleep(0.2)

        def replaced() -> bool:
            try:
                old.is_enabled()
                return False
            except StaleElementReferenceException:
                return True
            except WebDriverException as exc:  # chromedriver's other way of saying the node left the document
                if "does not belong to the document" in str(exc):
                    return True
                raise

        WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            lambda d: replaced(), message=f"waiting for the page after clicking {css}")
        self.wait(lambda: self.driver.execute_script("return document.readyState") == "complete", timeout,
                  "the new page to load")

    def login(self, person: Person) -> None:
        self.open("/console/login")
        self.find("#email").send_keys(person.email)
        self.find("#password").send_keys(person.password)
        self.submit("#login")
        self.wait_css("#logout")

    def logout(self) -> None:
        self.submit("#logout")
        self.wait_css("#login")

    def shot(self, name: str) -> Path:
        """A screenshot of the whole page (docs/console/<name>.png with BACKHAUL_SCREENSHOTS=1)."""
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, max(800, min(int(height), 2400)))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1280, 800)
        return path

    def unlabeled_controls(self) -> list[str]:
        """Visible form controls without a label (<label for>, a wrapping <label>, aria-label or
        aria-labelledby): every control must have one."""
        return list(self.driver.execute_script("""
            const out = [];
            for (const el of document.querySelectorAll('input, select, textarea, button')) {
              if (el.type === 'hidden' || el.offsetParent === null) continue;
              if (el.tagName === 'BUTTON' || el.type === 'submit' || el.type === 'button') {
                if (!(el.textContent.trim() || el.getAttribute('aria-label') || el.value)) out.push(el.outerHTML);
                continue;
              }
              const labelled = (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]'))
                || el.closest('label') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
              if (!labelled) out.push(el.outerHTML.slice(0, 200));
            }
            return out;"""))

    def check_plain(self) -> None:
        """What every page must be: no horizontal scroll at 1280x800, a label on every control."""
        assert self.horizontal_overflow() <= 0, f"{self.driver.current_url} scrolls sideways by " \
                                                f"{self.horizontal_overflow()} px at 1280x800"
        assert self.unlabeled_controls() == [], f"controls without a label: {self.unlabeled_controls()}"

    def horizontal_overflow(self) -> int:
        """How many pixels the page is wider than the window (0: no horizontal scroll)."""
        return int(self.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"))


@contextlib.contextmanager
def browser_on(site: Site, tmp_path: Path) -> Iterator[Browser]:
    downloads = tmp_path / "downloads"
    downloads.mkdir(exist_ok=True)
    shots = SHOTS if os.environ.get("BACKHAUL_SCREENSHOTS") == "1" else tmp_path / "shots"
    driver = start_browser(downloads)
    try:
        yield Browser(driver, site, downloads, shots)
    finally:
        driver.quit()

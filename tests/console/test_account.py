"""Signing in and out of the console in a real browser: terms at first login, wrong passwords and throttling,
logout (then the back button shows nothing), password change and links, CSRF and cookie flags."""
from __future__ import annotations

import os
import subprocess

import aiohttp
from selenium.webdriver.common.keys import Keys

from console.context import ConsoleSettings
from console.links import INVITE, issue
from oss.profiles import ADMIN, PROFILES
from tests.api_support import dsn_for
from tests.console.harness import PASSWORD, ROOT, Person

CUSTOMER_R = next(p.id for p in PROFILES.values() if p.name == "CUSTOMER [R]")


def test_first_login_asks_for_the_terms_then_shows_the_home_page(site, browser):
    tenant = site.tenant("Terms Co")
    person = site.person([(tenant.group, ADMIN)], terms=False)
    browser.open("/console/login")
    browser.check_plain()
    browser.shot("login")
    browser.find("#email").send_keys(person.email)
    browser.find("#password").send_keys(person.password)
    browser.submit("#login")
    browser.wait(lambda: browser.driver.current_url.endswith("/console/terms"), what="the terms page")
    browser.check_plain()
    browser.shot("terms")
    browser.open("/console/devices")  # nothing else opens before the terms are accepted
    assert browser.driver.current_url.endswith("/console/terms")
    browser.find("#accept").click()
    browser.submit("#accept-terms")
    browser.wait_css("#logout")
    assert "Terms Co" in browser.text("header")
    # Accepted once: the next login goes straight in.
    browser.logout()
    browser.login(person)
    assert not browser.driver.current_url.endswith("/terms")


def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_login(site, browser):
    tenant = site.tenant("Lock Co")
    person = site.person([(tenant.group, ADMIN)])
    wrong = Person(person.id, person.email, "not the password")
    statuses = []
    for _ in range(7):
        browser.open("/console/login")
        browser.find("#email").send_keys(wrong.email)
        browser.find("#password").send_keys(wrong.password)
        browser.submit("#login")
        statuses.append(browser.text("#login-error"))
    assert statuses[0] == "Wrong e-mail or password."
    assert any(s.startswith("Too many failed logins") for s in statuses[5:]), statuses
    # Even the right password waits while the login is locked.
    browser.open("/console/login")
    browser.find("#email").send_keys(person.email)
    browser.find("#password").send_keys(person.password)
    browser.submit("#login")
    assert browser.text("#login-error").startswith("Too many failed logins")


def test_after_logout_the_back_button_shows_nothing(site, browser):
    tenant = site.tenant("Back Co")
    person = site.person([(tenant.group, ADMIN)])
    browser.login(person)
    browser.open("/console/password")
    assert "Change your password" in browser.text()
    browser.check_plain()
    browser.shot("password")
    browser.logout()
    assert "You are logged out" in browser.text()
    browser.driver.back()
    browser.wait_css("#login")  # the page is asked again (no-store) and the server sends it to the login
    assert "Change your password" not in browser.driver.page_source
    assert browser.driver.get_cookie("bh_console") is None


def test_the_session_cookie_is_httponly_secure_and_strict(site, browser):
    tenant = site.tenant("Cookie Co")
    browser.login(site.person([(tenant.group, ADMIN)]))
    cookie = browser.driver.get_cookie("bh_console")
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["secure"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    assert browser.driver.execute_script("return document.cookie").find("bh_console") == -1


def test_a_change_without_the_csrf_token_is_refused(site, browser):
    tenant = site.tenant("Csrf Co")
    person = site.person([(tenant.group, ADMIN)])
    browser.login(person)
    cookie = browser.driver.get_cookie("bh_console")["value"]

    async def post(headers: dict[str, str]) -> int:
        async with aiohttp.ClientSession(cookies={"bh_console": cookie}) as http:
            async with http.post(f"{site.base}/console/password", data={"current": PASSWORD, "new": "x" * 12,
                                                                        "again": "x" * 12},
                                 headers=headers, allow_redirects=False) as resp:
                return resp.status

    assert site.run(post({})) == 403
    assert site.run(post({"X-CSRF-Token": "forged"})) == 403


def test_password_change_then_login_with_the_new_one(site, browser):
    tenant = site.tenant("Change Co")
    person = site.person([(tenant.group, ADMIN)])
    browser.login(person)
    browser.open("/console/password")
    browser.find("#current").send_keys(person.password)
    browser.find("#new").send_keys("short")
    browser.find("#again").send_keys("short")
    browser.submit("button[type=submit]:not(#logout)")
    assert "New password must be at least 10 characters" in browser.text()
    browser.find("#current").send_keys(person.password)
    browser.find("#new").send_keys("a much better secret")
    browser.find("#again").send_keys("a much better secret")
    browser.submit("button[type=submit]:not(#logout)")
    browser.wait(lambda: "Your password is changed" in browser.text())
    browser.logout()
    browser.login(Person(person.id, person.email, "a much better secret"))


def test_an_invitation_link_sets_the_password_once(site, browser):
    tenant = site.tenant("Invite Co")
    person = site.person([(tenant.group, CUSTOMER_R)], password="unused-0000")
    conf = ConsoleSettings(1800, 3600, 3600, True, 10, "")
    link = site.run(issue(site.env.pool, person.id, INVITE, conf, site.base))
    browser.driver.get(link)
    browser.shot("set-password")
    browser.find("#new").send_keys("my own password 1")
    browser.find("#again").send_keys("my own password 1")
    browser.submit("#set-password")
    browser.wait(lambda: "Your password is set" in browser.text())
    browser.login(Person(person.id, person.email, "my own password 1"))
    browser.logout()
    browser.driver.get(link)  # spent
    assert "This link is not valid" in browser.text()


def test_the_cli_prints_an_invitation_link_that_works(site, browser):
    tenant = site.tenant("Cli Co")
    person = site.person([(tenant.group, CUSTOMER_R)], password="unused-0000", terms=False)
    env = {**os.environ, "BACKHAUL_DATABASE_URL": dsn_for(site.database), "BACKHAUL_CONSOLE_PUBLIC_URL": site.base}
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "backhaul"), "console", "invite", person.email.upper()],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip()
    assert link.startswith(f"{site.base}/console/password/set?token=")
    browser.driver.get(link)
    browser.find("#new").send_keys("from the command line")
    browser.find("#again").send_keys("from the command line")
    browser.submit("#set-password")
    browser.wait(lambda: "Your password is set" in browser.text())
    browser.open("/console/login")
    browser.find("#email").send_keys(person.email)
    browser.find("#password").send_keys("from the command line")
    browser.submit("#login")
    browser.wait(lambda: browser.driver.current_url.endswith("/console/terms"), what="the terms page")
    unknown = subprocess.run([str(ROOT / ".venv" / "bin" / "backhaul"), "console", "invite", "nobody@example.com"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1 and "no user has the e-mail" in unknown.stderr


def test_the_console_is_usable_with_the_keyboard_alone(site, browser):
    """Log in, skip to the content, reach the device list's filter and submit it: keys only, no mouse."""
    tenant = site.tenant("Keys Co")
    person = site.person([(tenant.group, ADMIN)])
    browser.open("/console/login")
    active = browser.driver.switch_to.active_element
    assert active.get_attribute("id") == "email"  # the form has the focus when the page opens
    active.send_keys(person.email, Keys.TAB)
    browser.driver.switch_to.active_element.send_keys(person.password, Keys.ENTER)
    browser.wait_css("#logout")
    browser.open("/console/devices")
    body = browser.find("body")
    body.send_keys(Keys.TAB)  # the first stop is the skip link
    skip = browser.driver.switch_to.active_element
    assert skip.text == "Skip to content"
    seen = []
    for _ in range(60):  # tab on until the list's id filter has the focus
        browser.driver.switch_to.active_element.send_keys(Keys.TAB)
        focused = browser.driver.switch_to.active_element
        seen.append(focused.get_attribute("id") or focused.tag_name)
        if focused.get_attribute("name") == "id":
            break
    assert browser.driver.switch_to.active_element.get_attribute("name") == "id", seen
    # The focused control shows it (the stylesheet's :focus-visible outline).
    assert browser.driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle") == "solid"
    browser.driver.switch_to.active_element.send_keys("ABC", Keys.ENTER)
    browser.wait(lambda: "id=ABC" in browser.driver.current_url, what="the filtered list")

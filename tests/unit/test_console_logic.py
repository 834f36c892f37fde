"""The console's pure rules: where a login may send you, password rules, session expiry, the menu by rights."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from console.navigation import navigation
from console.pages.account import safe_next
from console.passwords import hash_password, password_problem, verify_password
from console.sessions import RoleGroup, Session, expired, token_hash
from oss.profiles import ADMIN, PROFILES

DEVICE_R = next(p.id for p in PROFILES.values() if p.name == "DEVICE MANAGER [R]")


def session(*profiles: str) -> Session:
    group = RoleGroup("a" * 24, "Acme", tuple(profiles))
    return Session("h", "u" * 24, "ada@example.com", "Ada", "csrf-token", group, (group,), True, 0, 0)


def test_after_login_only_console_paths_are_followed():
    assert safe_next("/console/devices?groupIds=x") == "/console/devices?groupIds=x"
    for bad in ("https://evil.example/", "//evil.example/console/", "/v2/devices", "/console\\..\\x", "", None,
                "javascript:alert(1)"):
        assert safe_next(bad) == "/console/"


@given(st.text(max_size=200))
def test_safe_next_never_leaves_the_console(value):
    target = safe_next(value)
    assert target.startswith("/console/") and not target.startswith("//")


def test_password_rules_name_the_reason():
    assert password_problem("short", 10) == "must be at least 10 characters"
    assert password_problem("aaaaaaaaaaaa", 10) == "must use at least 4 different characters"
    assert password_problem("Ada@Example.com", 10, "ada@example.com") == "must not be the e-mail address"
    assert password_problem("x" * 1025, 10) == "must be at most 1024 characters"
    assert password_problem("correct horse battery", 10) is None


def test_argon2id_hash_verifies_only_its_password():
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("anything", None)  # no password yet: never matches
    assert not verify_password("anything", "not a hash")


def test_a_session_ends_when_idle_or_too_old():
    minute = 60_000
    assert not expired(0, 29 * minute, 30 * minute, idle_s=1800, max_s=3600)
    assert expired(0, 0, 30 * minute + 1, idle_s=1800, max_s=3600)  # idle past 30 min
    assert expired(0, 59 * minute, 60 * minute + 1, idle_s=1800, max_s=3600)  # active, but past the maximum
    assert not expired(0, 60 * minute, 60 * minute, idle_s=1800, max_s=3600)


def test_the_csrf_token_must_match_exactly():
    s = session(ADMIN)
    assert s.csrf_matches("csrf-token")
    assert not s.csrf_matches("csrf-toke") and not s.csrf_matches("") and not s.csrf_matches(None)


def test_tokens_are_stored_hashed():
    assert token_hash("abc") != "abc" and len(token_hash("abc")) == 64


def test_the_menu_shows_what_the_profile_may_read():
    admin = [e.label for e in navigation(session(ADMIN), "/console/")]
    assert admin == ["Home", "Devices", "Device types", "Error log", "Users", "Groups", "API access", "Contracts",
                     "Service map"]
    reader = [e.label for e in navigation(session(DEVICE_R), "/console/devices/ABC")]
    assert "Users" not in reader and "API access" not in reader and "Devices" in reader
    current = [e.label for e in navigation(session(DEVICE_R), "/console/devices/ABC") if e.current]
    assert current == ["Devices"]

"""Credentials, the credential cache's lifetime on an injected clock, rights and profiles, and the scope
rule's SQL: the parts of the API's auth that need no database (the route-by-profile matrix runs on the
real API and PostgreSQL in tests/security)."""
from __future__ import annotations

import base64

import pytest

from oss import auth
from oss.auth import Caller, CredentialCache, credentials_of, hash_secret, unknown_login_hash, verify_secret
from oss.errors import BadRequest, Forbidden, Unauthorized
from oss.profiles import ADMIN, PERM_CODES, PROFILES, RESOURCES, ROLES, grantable, perms_of, profile_body
from oss.storage.scope import in_groups, in_subtree, subtree
from tests.clock import FakeClock

LOGIN = "5f" * 12


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


# Credentials ----------------------------------------------------------------------------------

def test_basic_credentials_are_read_with_a_colon_in_the_secret():
    assert credentials_of(basic(f"{LOGIN}:se:cret")) == (LOGIN, "se:cret")
    assert credentials_of("basic " + base64.b64encode(f"{LOGIN}:x".encode()).decode()) == (LOGIN, "x")
    assert credentials_of(basic(f"{LOGIN}:")) == (LOGIN, "")


REQUIRED = "Authentication required: HTTP Basic with an API user's id and access token"
NOT_BASIC = "Authorization header is not valid Basic credentials"


@pytest.mark.parametrize("header, message", [
    ("", REQUIRED), ("Bearer abc", REQUIRED), ("Basic", REQUIRED), ("Basic ", REQUIRED),
    ("Bearer " + base64.b64encode(f"{LOGIN}:x".encode()).decode(), REQUIRED),  # a valid token, another scheme
    ("Basic !!!", NOT_BASIC), ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), NOT_BASIC),
    (basic(f"{LOGIN}:x") + " trailing", NOT_BASIC),
    (basic(LOGIN), "Invalid credentials"), (basic("not-an-id:secret"), "Invalid credentials"),
])
def test_anything_else_is_refused_with_401(header, message):
    with pytest.raises(Unauthorized) as refused:
        credentials_of(header)
    assert refused.value.status == 401 and refused.value.message == message
    assert refused.value.headers == {"WWW-Authenticate": 'Basic realm="backhaul"'}


def test_a_new_secret_is_32_random_hex_digits():
    a, b = auth.new_secret(), auth.new_secret()
    assert a != b and len(a) == 32 and int(a, 16) >= 0


def test_secrets_are_stored_as_scrypt_and_only_the_right_one_verifies():
    stored = hash_secret("s3cret")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p, len(salt), len(digest)) == ("scrypt", str(2**14), "8", "1", 32, 64)
    assert stored != hash_secret("s3cret")  # salted
    assert verify_secret("s3cret", stored) and not verify_secret("s3cret ", stored)
    assert not verify_secret("s3cret", stored.replace("scrypt$", "bcrypt$", 1))
    assert not verify_secret("s3cret", stored.rsplit("$", 1)[0] + "$" + "00" * 32)
    assert not verify_secret("s3cret", "scrypt$x$8$1$00$00") and not verify_secret("s3cret", "")
    assert not verify_secret("", unknown_login_hash()) and unknown_login_hash() == unknown_login_hash()


def test_the_cache_keeps_a_caller_until_its_ttl_to_the_millisecond_and_not_after():
    clock = FakeClock()
    cache = CredentialCache(ttl=30, clock=clock)
    key = cache.key(LOGIN, "s3cret")
    assert len(key) == 64 and "s3cret" not in key and key != cache.key(LOGIN, "other")
    caller = Caller(LOGIN, "g", frozenset({"devices:read"}))
    cache.put(key, caller)
    clock.advance(30)
    assert cache.get(key) is caller  # exactly at the ttl: still good
    clock.advance(0.001)
    assert cache.get(key) is None
    cache.put(key, caller)  # verified again: a fresh ttl
    clock.advance(29.999)
    assert cache.get(key) is caller
    assert cache.get(cache.key(LOGIN, "other")) is None


def test_forgetting_an_api_user_drops_all_its_entries_and_only_those():
    cache = CredentialCache(ttl=30, clock=FakeClock())
    mine, other = Caller(LOGIN, "g", frozenset()), Caller("6a" * 12, "g", frozenset())
    cache.put("k1", mine)
    cache.put("k2", mine)
    cache.put("k3", other)
    cache.forget(LOGIN)
    assert (cache.get("k1"), cache.get("k2"), cache.get("k3")) == (None, None, other)


def test_a_full_cache_drops_what_has_expired_when_it_takes_another(monkeypatch):
    monkeypatch.setattr(auth, "MAX_CACHED", 3)
    clock = FakeClock()
    cache = CredentialCache(ttl=10, clock=clock)
    caller = Caller(LOGIN, "g", frozenset())
    for k in ("a", "b", "c", "d"):
        cache.put(k, caller)
    clock.advance(10.001)
    cache.put("fresh", caller)  # over the bound: the four expired entries go
    assert set(cache._entries) == {"fresh"}
    cache.put("e", caller)
    assert set(cache._entries) == {"fresh", "e"}  # under the bound: nothing is swept


# Rights and profiles --------------------------------------------------------------------------

def test_a_caller_can_what_its_permissions_name_and_is_refused_the_rest_with_403():
    caller = Caller(LOGIN, "g", frozenset({"devices:read", "callbacks:write"}))
    assert caller.can("devices") and not caller.can("devices", write=True)
    assert caller.can("callbacks", write=True) and not caller.can("callbacks")
    caller.require("devices")
    with pytest.raises(Forbidden) as refused:
        caller.require("devices", write=True)
    assert refused.value.status == 403 and refused.value.message == "You are not allowed to write devices."
    with pytest.raises(Forbidden, match="You are not allowed to read groups."):
        caller.require("groups")


def test_read_profiles_hold_no_write_and_admin_holds_every_right():
    for profile in PROFILES.values():
        assert {"groups:read", "contracts:read"} <= profile.perms
        if profile.name.endswith("[R]"):
            assert not any(p.endswith(":write") for p in profile.perms), profile.name
    assert perms_of([ADMIN]) == {f"{r}:{a}" for r in RESOURCES for a in ("read", "write")}
    device_r = perms_of(["5a0000000000000000000001"])
    assert device_r == {"groups:read", "contracts:read", "device-types:read", "devices:read", "callbacks:read",
                        "messages:read"}
    user_w = perms_of(["5a0000000000000000000004"])
    assert user_w == {"groups:read", "contracts:read", "users:read", "users:write", "api-users:read",
                      "api-users:write", "groups:write"}
    assert perms_of(["5a0000000000000000000001", "5a0000000000000000000003"]) == \
        perms_of(["5a0000000000000000000005"])  # CUSTOMER [R] is both managers' reads
    assert perms_of(["nope"]) == frozenset() and perms_of([]) == frozenset()


def test_permission_codes_are_stable_and_distinct():
    assert PERM_CODES["groups:read"] == 11 and PERM_CODES["groups:write"] == 12
    assert PERM_CODES["messages:read"] == 81 and PERM_CODES["messages:write"] == 82
    assert len(set(PERM_CODES.values())) == len(PERM_CODES) == 2 * len(RESOURCES)


def test_only_profiles_whose_rights_the_caller_holds_can_be_granted_each_once():
    held = perms_of(["5a0000000000000000000006"])  # CUSTOMER [W]
    wanted = ["5a0000000000000000000002", "5a0000000000000000000001", "5a0000000000000000000002"]
    assert grantable(held, wanted, "profileIds") == ["5a0000000000000000000002", "5a0000000000000000000001"]
    with pytest.raises(Forbidden) as refused:
        grantable(held, [ADMIN], "profileIds")  # the contract manager's rights are not held
    assert refused.value.message == "You cannot grant rights you do not hold."
    with pytest.raises(BadRequest) as bad:
        grantable(perms_of([ADMIN]), ["5a0000000000000000000001", "ffffffffffffffffffffffff"], "profiles")
    assert [(e.field, e.message) for e in bad.value.errors] == [
        ("profiles[1]", "profile ffffffffffffffffffffffff does not exist")]
    assert grantable(frozenset(), [], "profileIds") == []


def test_a_profile_reads_as_its_v2_shape_with_role_details_on_request():
    profile = PROFILES["5a0000000000000000000001"]
    assert profile_body(profile, None, {}) == {
        "id": profile.id, "name": "DEVICE MANAGER [R]",
        "roles": [{"id": "5b0000000000000000000001"}, {"id": "5b0000000000000000000002"}]}
    body = profile_body(profile, {"id": "g"}, {"roles": {}})
    assert body["group"] == {"id": "g"}
    viewer = body["roles"][0]
    assert viewer == {"id": "5b0000000000000000000001", "name": "GROUP VIEWER",
                      "perms": [{"code": 41, "name": "contracts:read"}, {"code": 11, "name": "groups:read"}]}
    assert ROLES["5b0000000000000000000005"].perms >= {"groups:write", "users:write"}


# The scope rule in SQL ------------------------------------------------------------------------

def test_the_scope_is_the_group_and_every_group_below_it():
    assert subtree("$1") == "(SELECT id FROM groups WHERE id = $1 OR path @> ARRAY[$1]::text[])"
    assert in_subtree("d.group_id", "$2") == \
        "d.group_id IN (SELECT id FROM groups WHERE id = $2 OR path @> ARRAY[$2]::text[])"
    assert in_groups("group_id", "$3", deep=False) == "group_id = ANY($3)"
    assert in_groups("group_id", "$3", deep=True) == \
        "(group_id = ANY($3) OR group_id IN (SELECT id FROM groups WHERE path && $3::text[]))"

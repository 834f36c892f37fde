"""The permission matrix: every API route x every kind of caller, one real request per cell.

The routes come from the application's route table (method + canonical path, the slash-less
aliases of collection routes included; HEAD and OPTIONS left out), so a route added later has
a cell for every caller at once, and fails until `permission_table.NEEDS` says which right it
needs. The callers are one API user of the target group T per predefined profile, the
administrator of a sibling group S (another subtree), a request without credentials and one with
a wrong secret. The expected status of a cell is computed from the tables in
`permission_table` (the right a route needs, the rights a profile grants, the reference's
success statuses), never read from the code:

- no credentials, wrong credentials: 401 (WWW-Authenticate), on every route but the public
  OpenAPI document;
- a route of an operator-only resource (base stations): 403 for every caller of T and S (customer
  groups) whatever its profile; the operator's callers (API users of the root group, an operator
  group, one per base-station profile) answer as their profile says, on every route;
- a profile of T: the route's success status when the profile grants the right, else 403;
- S's administrator: 404 (as if absent) when the request names T's objects in its path, its
  query or a scoped body field (`groupId`, `parentId`, `deviceTypeId`); a bulk operation that
  names T's devices only in its rows is accepted, and every row is refused "device not found",
  as for ids that do not exist; a list without T's ids answers 200 without any of T's ids; the
  predefined profiles are shared (200).

Every cell sends a valid request with the ids of real objects (made once; destructive writes
on throwaway objects, made again after each write that consumed one). A write that is allowed
must have happened (read back in SQL); a refused one must leave the row exactly as it was.
Login throttling is off in this API (every wrong secret must reach the credential check; the
throttle is `test_login.py`'s subject).

A failure names the cell: `<caller> <METHOD> <route>: expected ..., got ...` and the answer.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from backhaul.db import create_pool
from oss.app import bootstrap_root, create_app
from oss.context import COVERAGE_JOBS, JOBS
from oss.login_throttle import LoginPolicy
from oss.profiles import PROFILES
from oss.registry import load_registry, parse_registry
from tests.api_support import TEST_LIMITS, ApiEnv, Client, Reply, check, fresh_database
from tests.conftest import LOOPBACK_RECEIVERS
from tests.security.permission_table import NEEDS, OPERATOR_ONLY, PROFILE_RIGHTS, PUBLIC, resource_of, success

pytestmark = pytest.mark.integration

DATABASE = "backhaul_test_permissions"
OTHER_GROUP = "other group (S admin)"
NO_CREDENTIALS = "no credentials"
WRONG_CREDENTIALS = "wrong credentials"
PROFILE_ID = {p.name: p.id for p in PROFILES.values()}
# The operator's callers (root group, type 0): the caller's name -> its profile.
OPERATOR_CALLERS = {f"operator {name}": name for name in ("BASE STATION MANAGER [R]", "BASE STATION MANAGER [W]")}
CALLERS = (*PROFILE_RIGHTS, *OPERATOR_CALLERS, OTHER_GROUP, NO_CREDENTIALS, WRONG_CREDENTIALS)
USER_R, USER_W, ADMIN = PROFILE_ID["USER MANAGER [R]"], PROFILE_ID["USER MANAGER [W]"], PROFILE_ID["ADMIN [W]"]
PAC = "0" * 16
FAR_FUTURE = 4_102_444_800_000  # 2100-01-01, in ms

Target = dict[str, str]  # a path parameter ("devices", "callbackId"...) -> the id of one of T's objects
SHARED_IDS = ("profiles", "product-certificate", "modem-certificate")


@dataclass
class World:
    """The API, the target group T with one object of each kind, and the callers."""

    env: ApiEnv
    owner: Client  # T's own administrator: makes every object of T
    ids: Target  # path parameters -> the shared object of T they name
    jobs: dict[str, str]
    callers: dict[str, Client]
    numbers: Any = field(default_factory=itertools.count)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.env.pool

    @property
    def group(self) -> str:
        return self.ids["groups"]

    def marker(self) -> str:
        return f"pm{next(self.numbers):05d}"

    def device_id(self) -> str:
        return f"{0x5E000000 + next(self.numbers):08X}"

    def station_id(self) -> str:
        return f"{0xC000 + next(self.numbers):04X}"

    def foreign_ids(self, target: Target) -> set[str]:
        """Every id of T's objects (the predefined profiles and the registry's certificates are everyone's)."""
        return {v for k, v in {**self.ids, **target}.items() if k not in SHARED_IDS} | set(self.jobs.values())

    # Objects of T, made by its administrator.
    async def new_group(self) -> Target:
        return {"groups": check(await self.owner.post("/groups/", {"name": self.marker(), "parentId": self.group}),
                                201)["id"]}

    async def new_user(self, *groups: str) -> Target:
        roles = [{"groupId": g, "profileId": USER_R} for g in (groups or (self.group,))]
        m = self.marker()
        body = {"firstName": "Matrix", "lastName": m, "email": f"{m}@example.com", "userRoles": roles}
        return {"users": check(await self.owner.post("/users/", body), 201)["id"]}

    async def new_api_user(self, *profiles: str) -> Target:
        body = {"groupId": self.group, "name": self.marker(), "profileIds": list(profiles or (USER_R,))}
        return {"api-users": check(await self.owner.post("/api-users/", body), 201)["id"]}

    async def new_contract(self) -> Target:
        body = {"name": self.marker(), "groupId": self.group, "maxTokens": 0, "tokenDuration": 12}
        return {"contract-infos": check(await self.owner.post("/contract-infos/", body), 201)["id"]}

    async def new_device_type(self) -> Target:
        body = {"name": self.marker(), "groupId": self.group, "contractId": self.ids["contract-infos"]}
        return {"device-types": check(await self.owner.post("/device-types/", body), 201)["id"]}

    async def new_callback(self, subtype: int = 2) -> Target:
        body = {"channel": "URL", "callbackType": 0, "callbackSubtype": subtype, "enabled": True,
                "url": callback_url(self.marker()), "httpMethod": "GET"}
        path = f"/device-types/{self.ids['device-types']}/callbacks"
        return {"callbackId": check(await self.owner.post(path, body), 201)["id"]}

    async def new_device(self, *, activable: bool = True, device_type: str | None = None) -> Target:
        ident = self.device_id()
        body = {"id": ident, "name": ident, "pac": PAC, "deviceTypeId": device_type or self.ids["device-types"],
                "activable": activable}
        check(await self.owner.post("/devices/", body), 201)
        return {"devices": ident}

    async def new_station(self) -> Target:
        """A base station, registered by the operator (the root's administrator): T cannot make one."""
        ident = self.station_id()
        body = {"id": ident, "name": self.marker(), "position": {"lat": 43.6, "lng": 1.44}}
        check(await self.env.root.post("/base-stations/", body), 201)
        return {"base-stations": ident}

    async def wait_jobs(self) -> None:
        await self.env.app[JOBS].wait()
        await self.env.app[COVERAGE_JOBS].wait()


def callback_url(m: str) -> str:
    return f"http://127.0.0.1:9/{m}"  # loopback is allowed in tests (LOOPBACK_RECEIVERS); nothing is sent


# What a write changes, read in SQL: a row as JSON (None once gone), or a count.
async def row(world: World, table: str, ident: str) -> dict[str, Any] | None:
    return await world.pool.fetchval(f"SELECT to_jsonb(t) FROM {table} t WHERE id = $1", ident)


async def count(world: World, table: str, column: str, value: str) -> int:
    return await world.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", value)


async def roles(world: World, user: str) -> list[str]:
    rows = await world.pool.fetch("SELECT group_id, profile_id FROM user_roles WHERE user_id = $1 "
                                  "ORDER BY 1, 2", user)
    return [f"{r['group_id']}/{r['profile_id']}" for r in rows]


Probe = Callable[[World, Target, str], Awaitable[Any]]
Done = Callable[[Any, Any, str], bool]  # (before, after, marker) -> the write happened


@dataclass(frozen=True)
class Write:
    """One valid write of a route, and how to read whether it happened.

    `fresh` makes the throwaway objects the write acts on (made again after every allowed write);
    without it the write acts on the shared objects of T. `foreign` says where the request names
    T's objects when no path parameter does: "body" (a scoped id field) or "rows" (device ids).
    """

    probe: Probe
    done: Done
    body: Callable[[World, Target, str], Any] = lambda w, t, m: None
    query: Callable[[World, Target, str], dict[str, str] | None] = lambda w, t, m: None
    fresh: Callable[[World], Awaitable[Target]] | None = None
    foreign: str = "path"


def created(table: str, column: str) -> Probe:
    return lambda w, t, m: count(w, table, column, m)


def row_of(table: str, key: str) -> Probe:
    return lambda w, t, m: row(w, table, t.get(key) or w.ids[key])


def gone(before: Any, after: Any, m: str) -> bool:
    return before is not None and after is None


def one_more(before: Any, after: Any, m: str) -> bool:
    return (before, after) == (0, 1)


def changed(before: Any, after: Any, m: str) -> bool:
    return after is not None and after != before


async def operator_row(world: World) -> dict[str, Any] | None:
    """T's operator's settings row (None until its first update)."""
    return await world.pool.fetchval("SELECT to_jsonb(o) FROM operators o WHERE group_id = $1",
                                     world.ids["operators"])


def tracker_url(m: str) -> str:
    return f"https://tracker.example.com/{m}"


MARKER = object()  # stands for the cell's marker in an expected value


def column_is(name: str, value: Any) -> Done:
    return lambda before, after, m: after is not None and after[name] == (m if value is MARKER else value)


def column_set(name: str) -> Done:
    return lambda before, after, m: None not in (before, after) and before[name] is None and after[name] is not None


async def coverage_jobs(world: World) -> int:
    return await world.pool.fetchval("SELECT count(*) FROM coverage_jobs")


def coverage_request(w: World) -> dict[str, Any]:
    """Two locations, for T's group (`groupId`: another group's caller is answered 404)."""
    return {"locations": [{"lat": 43.6, "lng": 1.44}, {"lat": 45.0, "lng": 2.0}], "groupId": w.group}


async def suspended_device(w: World) -> Target:
    target = await w.new_device()
    check(await w.owner.post("/devices/bulk/suspend", {"data": [target["devices"]]}), 201)
    await w.wait_jobs()
    assert (await row(w, "devices", target["devices"]))["state"] == 6
    return target


async def type_with_device(w: World, *, activable: bool = True) -> Target:
    device_type = await w.new_device_type()
    return {**device_type, **await w.new_device(activable=activable, device_type=device_type["device-types"])}


async def replaceable_pair(w: World) -> Target:
    source, spare = await w.new_device(), await w.new_device(activable=False)
    return {"devices": source["devices"], "spare": spare["devices"]}


WRITES: dict[tuple[str, str], Write] = {
    ("POST", "/v2/groups/"): Write(created("groups", "name"), one_more, foreign="body",
                                   body=lambda w, t, m: {"name": m, "parentId": w.group}),
    ("PUT", "/v2/groups/{id}"): Write(row_of("groups", "groups"), column_is("name", MARKER),
                                      fresh=lambda w: w.new_group(), body=lambda w, t, m: {"name": m}),
    ("DELETE", "/v2/groups/{id}"): Write(row_of("groups", "groups"), gone, fresh=lambda w: w.new_group()),
    ("PUT", "/v2/operators/{id}"): Write(lambda w, t, m: operator_row(w), lambda before, after, m: after is not None
                                         and after["request_tracker_base_url"] == tracker_url(m),
                                         body=lambda w, t, m: {"requestTrackerBaseUrl": tracker_url(m)}),
    ("POST", "/v2/users/"): Write(created("users", "last_name"), one_more, foreign="body", body=lambda w, t, m: {
        "firstName": "Matrix", "lastName": m, "email": f"{m}@example.com",
        "userRoles": [{"groupId": w.group, "profileId": USER_R}]}),
    ("PUT", "/v2/users/{id}"): Write(row_of("users", "users"), column_is("first_name", MARKER),
                                     body=lambda w, t, m: {"firstName": m}),
    ("PUT", "/v2/users/{id}/profiles"): Write(
        lambda w, t, m: roles(w, t["users"]), changed, fresh=lambda w: w.new_user(),
        body=lambda w, t, m: {"userRoles": [{"groupId": w.ids["sub"], "profileId": USER_R}]}),
    ("DELETE", "/v2/users/{id}/profiles/{profileId}"): Write(
        lambda w, t, m: roles(w, t["users"]), changed, fresh=lambda w: w.new_user(w.group, w.ids["sub"]),
        query=lambda w, t, m: {"groupId": w.ids["sub"]}),
    ("DELETE", "/v2/users/{id}"): Write(row_of("users", "users"), gone, fresh=lambda w: w.new_user()),
    ("POST", "/v2/api-users/"): Write(created("api_users", "name"), one_more, foreign="body",
                                      body=lambda w, t, m: {"groupId": w.group, "name": m, "profileIds": [USER_R]}),
    ("PUT", "/v2/api-users/{id}"): Write(row_of("api_users", "api-users"), column_is("name", MARKER),
                                         body=lambda w, t, m: {"name": m}),
    ("PUT", "/v2/api-users/{id}/profiles"): Write(row_of("api_users", "api-users"), column_is("profile_ids",
                                                                                              [USER_R, USER_W]),
                                                  fresh=lambda w: w.new_api_user(),
                                                  body=lambda w, t, m: {"profileId": [USER_W]}),
    ("DELETE", "/v2/api-users/{id}/profiles/{profileId}"): Write(
        row_of("api_users", "api-users"), column_is("profile_ids", []), fresh=lambda w: w.new_api_user()),
    ("DELETE", "/v2/api-users/{id}"): Write(row_of("api_users", "api-users"), gone,
                                            fresh=lambda w: w.new_api_user()),
    ("PUT", "/v2/api-users/{id}/renew-credential"): Write(row_of("api_users", "api-users"), changed),
    ("POST", "/v2/contract-infos/"): Write(created("contract_infos", "name"), one_more, foreign="body",
                                           body=lambda w, t, m: {"name": m, "groupId": w.group}),
    ("PUT", "/v2/contract-infos/{id}"): Write(row_of("contract_infos", "contract-infos"), column_is("name", MARKER),
                                              body=lambda w, t, m: {"name": m}),
    ("DELETE", "/v2/contract-infos/{id}"): Write(row_of("contract_infos", "contract-infos"), gone,
                                                 fresh=lambda w: w.new_contract()),
    # A restart gives a token to a device without one (a live token is left alone).
    ("POST", "/v2/contract-infos/{id}/bulk/restart"): Write(row_of("devices", "devices"), column_is("token_state", 0),
                                                            fresh=lambda w: w.new_device(activable=False)),
    ("POST", "/v2/device-types/"): Write(created("device_types", "name"), one_more, foreign="body",
                                         body=lambda w, t, m: {"name": m, "groupId": w.group,
                                                               "contractId": w.ids["contract-infos"]}),
    ("PUT", "/v2/device-types/{id}"): Write(row_of("device_types", "device-types"), column_is("name", MARKER),
                                            body=lambda w, t, m: {"name": m}),
    ("DELETE", "/v2/device-types/{id}"): Write(row_of("device_types", "device-types"), gone,
                                               fresh=lambda w: w.new_device_type()),
    ("PUT", "/v2/device-types/{id}/disengage"): Write(row_of("devices", "devices"), column_set("disengaged_at"),
                                                      fresh=type_with_device),
    ("POST", "/v2/device-types/{id}/bulk/restart"): Write(row_of("devices", "devices"),
                                                          column_is("token_state", 0),
                                                          fresh=lambda w: type_with_device(w, activable=False)),
    ("POST", "/v2/device-types/{id}/callbacks"): Write(
        lambda w, t, m: count(w, "callbacks", "url", callback_url(m)), one_more,
        body=lambda w, t, m: {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
                              "url": callback_url(m), "httpMethod": "GET"}),
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}"): Write(
        row_of("callbacks", "callbackId"), lambda before, after, m: after["url"] == callback_url(m),
        body=lambda w, t, m: {"url": callback_url(m)}),
    ("DELETE", "/v2/device-types/{id}/callbacks/{callbackId}"): Write(row_of("callbacks", "callbackId"), gone,
                                                                      fresh=lambda w: w.new_callback()),
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}/enable"): Write(
        row_of("callbacks", "callbackId"), column_is("enabled", False), fresh=lambda w: w.new_callback(),
        query=lambda w, t, m: {"enabled": "false"}),
    ("PUT", "/v2/device-types/{id}/callbacks/{callbackId}/downlink"): Write(
        row_of("callbacks", "callbackId"), column_is("downlink_hook", True), fresh=lambda w: w.new_callback(3)),
    # Backhaul's test send and replay store nothing of their own (a test is sent and forgotten; the world holds
    # no undelivered entry to replay): the matrix holds them to their rights and scope only.
    ("POST", "/v2/device-types/{id}/callbacks/{callbackId}/test"): Write(
        row_of("callbacks", "callbackId"), lambda before, after, m: after == before),
    ("POST", "/v2/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered/replay"): Write(
        row_of("callbacks", "callbackId"), lambda before, after, m: after == before, body=lambda w, t, m: {}),
    ("POST", "/v2/devices/"): Write(lambda w, t, m: count(w, "devices", "name", m), one_more, foreign="body",
                                    body=lambda w, t, m: {"id": w.device_id(), "name": m, "pac": PAC,
                                                          "deviceTypeId": w.ids["device-types"]}),
    ("PUT", "/v2/devices/{id}"): Write(row_of("devices", "devices"), column_is("name", MARKER),
                                       body=lambda w, t, m: {"name": m}),
    ("DELETE", "/v2/devices/{id}"): Write(row_of("devices", "devices"), gone, fresh=lambda w: w.new_device()),
    ("POST", "/v2/devices/{id}/disengage"): Write(row_of("devices", "devices"), column_set("disengaged_at"),
                                                  fresh=lambda w: w.new_device()),
    ("PUT", "/v2/devices/{id}/unsubscribe"): Write(row_of("devices", "devices"), column_set("unsubscription_time"),
                                                   fresh=lambda w: w.new_device(),
                                                   body=lambda w, t, m: {"unsubscriptionTime": FAR_FUTURE}),
    ("POST", "/v2/devices/bulk"): Write(lambda w, t, m: count(w, "devices", "name", m), one_more, foreign="body",
                                        body=lambda w, t, m: {"deviceTypeId": w.ids["device-types"], "data": [
                                            {"id": w.device_id(), "pac": PAC, "name": m}]}),
    ("PUT", "/v2/devices/bulk"): Write(row_of("devices", "devices"), column_is("name", MARKER), foreign="rows",
                                       body=lambda w, t, m: {"data": [{"id": w.ids["devices"], "name": m}]}),
    ("POST", "/v2/devices/bulk/transfer"): Write(row_of("devices", "devices"),
                                                 lambda before, after, m: after["device_type_id"] != before[
                                                     "device_type_id"],
                                                 fresh=lambda w: w.new_device(), foreign="body",
                                                 body=lambda w, t, m: {"deviceTypeId": w.ids["other-type"],
                                                                       "data": [{"id": t["devices"]}]}),
    ("POST", "/v2/devices/bulk/replace"): Write(lambda w, t, m: row(w, "devices", t["spare"]),
                                                column_is("token_state", 0), fresh=replaceable_pair, foreign="rows",
                                                body=lambda w, t, m: {"data": [{"deviceId": t["devices"],
                                                                                "targetDeviceId": t["spare"]}]}),
    ("POST", "/v2/devices/bulk/restart"): Write(row_of("devices", "devices"), column_is("token_state", 0),
                                                fresh=lambda w: w.new_device(activable=False), foreign="rows",
                                                body=lambda w, t, m: {"data": [t["devices"]]}),
    ("POST", "/v2/devices/bulk/suspend"): Write(row_of("devices", "devices"), column_is("state", 6),
                                                fresh=lambda w: w.new_device(), foreign="rows",
                                                body=lambda w, t, m: {"data": [t["devices"]]}),
    ("POST", "/v2/devices/bulk/resume"): Write(row_of("devices", "devices"), column_is("state", 0),
                                               fresh=suspended_device, foreign="rows",
                                               body=lambda w, t, m: {"data": [t["devices"]]}),
    ("POST", "/v2/devices/bulk/unsubscribe"): Write(row_of("devices", "devices"), column_set("unsubscription_time"),
                                                    fresh=lambda w: w.new_device(), foreign="rows",
                                                    body=lambda w, t, m: {"data": [{"id": t["devices"]}]}),
    ("POST", "/v2/devices/bulk/delete"): Write(row_of("devices", "devices"), gone, fresh=lambda w: w.new_device(),
                                               foreign="rows", body=lambda w, t, m: {"data": [t["devices"]]}),
    # Base stations are the operator's, not T's: "body" is never reached (every caller of T and S gets 403).
    ("POST", "/v2/base-stations/"): Write(created("base_stations", "name"), one_more, foreign="body",
                                          body=lambda w, t, m: {"id": w.station_id(), "name": m,
                                                                "position": {"lat": 43.6, "lng": 1.44}}),
    ("PUT", "/v2/base-stations/{id}"): Write(row_of("base_stations", "base-stations"), column_is("name", MARKER),
                                             body=lambda w, t, m: {"name": m}),
    ("DELETE", "/v2/base-stations/{id}"): Write(row_of("base_stations", "base-stations"), gone,
                                                fresh=lambda w: w.new_station()),
    # Coverage predictions store nothing; a bulk one stores its job.
    ("POST", "/v2/coverages/global/predictions"): Write(lambda w, t, m: coverage_jobs(w),
                                                        lambda before, after, m: after == before, foreign="body",
                                                        body=lambda w, t, m: coverage_request(w)),
    ("POST", "/v2/coverages/global/predictions/bulk"): Write(lambda w, t, m: coverage_jobs(w),
                                                             lambda before, after, m: after == before + 1,
                                                             foreign="body", body=lambda w, t, m: coverage_request(w)),
}

# The reads whose answer must show a given object of T to a caller allowed to read it.
SHOWS: dict[tuple[str, str], str] = {
    ("GET", "/v2/groups/"): "sub", ("GET", "/v2/groups/{id}"): "groups", ("GET", "/v2/users/"): "users",
    ("GET", "/v2/users/{id}"): "users", ("GET", "/v2/api-users/"): "api-users",
    ("GET", "/v2/api-users/{id}"): "api-users", ("GET", "/v2/contract-infos/"): "contract-infos",
    ("GET", "/v2/contract-infos/{id}"): "contract-infos", ("GET", "/v2/contract-infos/{id}/devices"): "devices",
    ("GET", "/v2/device-types/"): "device-types", ("GET", "/v2/device-types/{id}"): "device-types",
    ("GET", "/v2/device-types/{id}/callbacks"): "callbackId", ("GET", "/v2/devices/"): "devices",
    ("GET", "/v2/devices/{id}"): "devices", ("GET", "/v2/profiles/"): "profiles",
    ("GET", "/v2/profiles/{id}"): "profiles", ("GET", "/v2/operators/"): "operators",
    ("GET", "/v2/operators/{id}"): "operators", ("GET", "/v2/groups/{id}/geoloc-payloads"): "geoloc",
    ("GET", "/v2/devices/{id}/certificate/product"): "product-certificate",
    ("GET", "/v2/devices/{id}/product-certificate"): "product-certificate",
    ("GET", "/v2/devices/{id}/certificate/modem"): "modem-certificate",
    ("GET", "/v2/base-stations/"): "base-stations", ("GET", "/v2/base-stations/{id}"): "base-stations",
}
# Reads that name T in their query (the profiles a group offers), and what is not T's at all.
READ_QUERY: dict[tuple[str, str], Callable[[World], dict[str, str]]] = {
    ("GET", "/v2/profiles/"): lambda w: {"groupId": w.group},
    ("GET", "/v2/devices/{id}/product-certificate"): lambda w: {"pac": PAC},
    ("GET", "/v2/tiles/public-coverage/kmz/tiles.kmz"): lambda w: {"zoom": "3", "north": "50", "south": "45",
                                                                   "west": "0", "east": "5"},
    ("GET", "/v2/coverages/global/predictions"): lambda w: {"lat": "43.6", "lng": "1.44", "groupId": w.group},
    ("GET", "/v2/coverages/operators/redundancy"): lambda w: {"lat": "43.6", "lng": "1.44",
                                                             "operatorId": w.ids["operators"]},
}
# What every group sees alike: the predefined profiles and the public coverage.
SHARED = {("GET", "/v2/profiles/{id}"), ("GET", "/v2/tiles/public-coverage"),
          ("GET", "/v2/tiles/public-coverage/{z}/{x}/{y}.png"), ("GET", "/v2/tiles/public-coverage/kmz/tiles.kmz")}
TILE = {"{z}": "3", "{x}": "4", "{y}.png": "2.png"}   # a tile of France at zoom 3


def route_table(app) -> list[tuple[str, str]]:
    """Every (method, canonical path) the application serves, HEAD and OPTIONS aside."""
    return sorted({(r.method, r.resource.canonical) for r in app.router.routes()
                   if r.method not in ("HEAD", "OPTIONS") and r.resource is not None})


def row_key(route: tuple[str, str]) -> tuple[str, str] | None:
    """The expectation row of a route: its own, or its collection route's for a slash-less alias."""
    if route in NEEDS:
        return route
    alias_of = (route[0], route[1] + "/")
    return alias_of if alias_of in NEEDS else None


def fill(w: World, template: str, target: Target) -> str:
    """The route's path with the ids of T's objects (`target`'s where it has them)."""
    ids = {**w.ids, **target}
    parts = template.removeprefix("/v2").split("/")
    out = []
    for i, part in enumerate(parts):
        if part == "{id}":
            part = ids[parts[i - 1]]
        elif part == "{callbackId}":
            part = ids["callbackId"]
        elif part == "{profileId}":
            part = USER_R
        elif part == "{jobId}":
            part = w.jobs[job_kind(parts[1], parts[i - 1])]
        elif part in TILE:
            part = TILE[part]
        elif part in ("{year}", "{month}"):
            part = {"{year}": "2026", "{month}": "3"}[part]
        out.append(part)
    return "/".join(out)


def job_kind(collection: str, before: str) -> str:
    """Which of T's jobs a job-status path reads: /devices/bulk/{kind}/{jobId}, /devices/bulk/{jobId}
    (any job: the suspend one), /device-types/bulk/restart/{jobId}, /contract-infos/bulk/restart/{jobId},
    /coverages/global/predictions/bulk/{jobId}."""
    if collection == "coverages":
        return "coverage"
    if collection == "device-types":
        return "device-type-restart"
    if collection == "contract-infos":
        return "contract-restart"
    return "suspend" if before == "bulk" else before


@dataclass(frozen=True)
class Expected:
    status: int
    rows_refused: bool = False  # accepted, and every row refused "device not found"


def expected(route: tuple[str, str], caller: str) -> Expected:
    """The status a cell must answer, from the tables of `permission_table` and the rule per caller."""
    method, path = route
    need = NEEDS[route]
    if need == PUBLIC:
        return Expected(200)
    if caller in (NO_CREDENTIALS, WRONG_CREDENTIALS):
        return Expected(401)
    if caller in OPERATOR_CALLERS:
        return Expected(success(method, path) if need in PROFILE_RIGHTS[OPERATOR_CALLERS[caller]] else 403)
    if resource_of(need) in OPERATOR_ONLY:  # T and S are customers
        return Expected(403)
    if caller == OTHER_GROUP:
        if route in SHARED:
            return Expected(200)
        names = "path" if "{" in path else "query" if route in READ_QUERY else \
            WRITES[route].foreign if method != "GET" else "nothing"
        if names == "rows":
            return Expected(success(method, path), rows_refused=True)
        return Expected(200 if names == "nothing" else 404)
    return Expected(success(method, path) if need in PROFILE_RIGHTS[caller] else 403)


def text_of(reply: Reply) -> str:
    return orjson.dumps(reply.body).decode() if isinstance(reply.body, (dict, list)) else str(reply.body)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world() -> AsyncIterator[World]:
    dsn = await fresh_database(DATABASE)
    pool = await create_pool(dsn, min_size=2, max_size=10)
    app = create_app(pool, rate_limits=TEST_LIMITS, keepalive_min_s=60, auth_cache_s=60, bulk_chunk=1000,
                     callback_allow_networks=LOOPBACK_RECEIVERS,
                     login_policy=LoginPolicy(free_failures=0, address_free_failures=0))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    try:
        root_group, login, token = await bootstrap_root(pool, "Permission matrix root")
        base = f"http://127.0.0.1:{server.port}/v2"
        env = ApiEnv(pool, server, base, root_group, Client(session, base, login, token), app)
        yield await _populate(env)
    finally:
        await session.close()
        await server.close()
        await pool.close()


async def _api_user(client: Client, group: str, name: str, profile: str) -> Client:
    made = check(await client.post("/api-users/", {"groupId": group, "name": name, "profileIds": [profile]}), 201)
    return client.as_user(made["id"], made["accessToken"])


async def _populate(env: ApiEnv) -> World:
    """T and S under the root; T's objects, T's callers (one per profile) and S's administrator."""
    root = env.root
    t_group = check(await root.post("/groups/", {"name": "Target T", "parentId": env.root_group}), 201)["id"]
    s_group = check(await root.post("/groups/", {"name": "Sibling S", "parentId": env.root_group}), 201)["id"]
    owner = await _api_user(root, t_group, "T owner", ADMIN)
    w = World(env, owner, {"groups": t_group, "profiles": USER_R}, {}, {})
    w.ids["sub"] = (await w.new_group())["groups"]
    w.ids.update(await w.new_contract())
    w.ids.update(await w.new_device_type())
    w.ids["other-type"] = (await w.new_device_type())["device-types"]
    w.ids.update(await w.new_callback())
    w.ids.update(await w.new_device())
    # Only an operator makes operator groups: the root (type 0) makes T's.
    w.ids["operators"] = check(await root.post("/groups/", {"name": "T operator", "parentId": t_group, "type": 0}),
                               201)["id"]
    w.ids.update(await _registry(env, t_group, w.ids["devices"]))
    w.ids.update(await w.new_api_user())
    w.ids.update(await w.new_user())
    for kind in ("restart", "suspend", "resume", "unsubscribe", "delete"):
        w.jobs[kind] = check(await owner.post(f"/devices/bulk/{kind}", {"data": ["ABCDEF"]}), 201)["jobId"]
    w.jobs["device-type-restart"] = check(await owner.post(f"/device-types/{w.ids['device-types']}/bulk/restart"),
                                          201)["jobId"]
    w.jobs["contract-restart"] = check(await owner.post(f"/contract-infos/{w.ids['contract-infos']}/bulk/restart"),
                                       201)["jobId"]
    w.jobs["coverage"] = check(await owner.post("/coverages/global/predictions/bulk", coverage_request(w)),
                               201)["jobId"]
    await w.wait_jobs()
    for name, profile_id in PROFILE_ID.items():
        w.callers[name] = await _api_user(root, t_group, f"T {name}", profile_id)
    for name, profile in OPERATOR_CALLERS.items():
        w.callers[name] = await _api_user(root, env.root_group, name, PROFILE_ID[profile])
    w.ids.update(await w.new_station())
    w.callers[OTHER_GROUP] = await _api_user(root, s_group, "S admin", ADMIN)
    w.callers[NO_CREDENTIALS] = w.callers["ADMIN [W]"]
    w.callers[WRONG_CREDENTIALS] = w.callers["ADMIN [W]"].as_user(w.callers["ADMIN [W]"].login, "0" * 32)
    return w


async def _registry(env: ApiEnv, group: str, device: str) -> Target:
    """A modem and a product certificate, T's device declared under the latter (same id and PAC), and a
    geolocation payload format offered to T, loaded as the operator loads them."""
    registry = parse_registry({
        "modemCertificates": [{"key": "M_MATRIX", "name": "matrix modem"}],
        "productCertificates": [{"key": "P_MATRIX", "name": "matrix product", "modemCertificateKey": "M_MATRIX"}],
        "devices": [{"id": device, "pac": PAC, "productCertificateKey": "P_MATRIX"}],
        "geolocPayloads": [{"name": "matrix format", "groupId": group}]})
    async with env.pool.acquire() as conn:
        await load_registry(conn, registry)
    return {"product-certificate": registry.products[0]["id"], "modem-certificate": registry.modems[0]["id"],
            "geoloc": registry.geoloc[0][0]}


class Cells:
    """Runs the cells of one route, keeping its throwaway objects until a write consumes them."""

    def __init__(self, w: World, route: tuple[str, str], key: tuple[str, str]) -> None:
        self.w, self.route, self.key = w, route, key
        self.write = WRITES.get(key) if route[0] != "GET" else None
        self.target: Target | None = None

    async def run(self, caller: str) -> None:
        w, (method, template) = self.w, self.route
        want = expected(self.key, caller)
        where = f"{caller} {method} {template}"
        if self.write is not None and self.target is None:
            self.target = await self.write.fresh(w) if self.write.fresh else {}
        target = self.target or {}
        m = w.marker()
        body = self.write.body(w, target, m) if self.write else None
        query = self.write.query(w, target, m) if self.write else READ_QUERY.get(self.key, lambda w: None)(w)
        before = await self.write.probe(w, target, m) if self.write else None
        path = fill(w, template, target)
        reply = await w.callers[caller].call(method, path, body, params=query, auth=caller != NO_CREDENTIALS)
        where = f"{where} ({path}, sent {orjson.dumps(body).decode() if body is not None else 'no body'})"
        assert reply.status == want.status, \
            f"{where}: expected {want.status}, got {reply.status}: {text_of(reply)[:300]}"
        if want.status in (401, 403, 404):
            assert set(reply.body) == {"message"}, f"{where}: not a v2 error body: {reply.body!r}"
        if want.status == 401:
            assert reply.headers.get("WWW-Authenticate", "").startswith("Basic"), where
        if caller == OTHER_GROUP:
            sent = path + orjson.dumps(body).decode() + orjson.dumps(query).decode()
            leaked = {i for i in w.foreign_ids(target) if i in text_of(reply) and i not in sent}
            assert not leaked, f"{where}: the other group's caller was shown T's ids {leaked}"
            if want.rows_refused:
                await self._rows_refused(where, reply)
        if method == "GET":
            if want.status == 200 and (caller in PROFILE_RIGHTS or caller in OPERATOR_CALLERS) and self.key in SHOWS:
                shown = {**w.ids, **target}[SHOWS[self.key]]
                assert shown in text_of(reply), f"{where}: allowed, but {shown} is not in the answer"
            return
        assert self.write is not None, f"{where}: a write route without a row in WRITES"
        await w.wait_jobs()
        after = await self.write.probe(w, target, m)
        allowed = 200 <= want.status < 300 and not want.rows_refused
        if allowed:
            assert self.write.done(before, after, m), f"{where}: answered {reply.status}, but the write did not " \
                                                      f"happen: before {before!r}, after {after!r}"
            self.target = None  # consumed: the next cell gets fresh objects
        else:
            assert after == before, f"{where}: refused ({reply.status}), yet the row changed: " \
                                    f"before {before!r}, after {after!r}"

    async def _rows_refused(self, where: str, reply: Reply) -> None:
        """A bulk operation of the other group: accepted, every row refused as if the device did not exist."""
        status = reply.body.get("status") if "jobId" not in reply.body else None
        if status is None:
            await self.w.wait_jobs()
            job = check(await self.w.callers[OTHER_GROUP].get(f"/devices/bulk/{reply.body['jobId']}"), 200)
            status = job["status"]
        assert status["success"] == 0 and status["errors"], f"{where}: rows not refused: {status}"
        assert {e["message"] for e in status["errors"]} == {"device not found"}, f"{where}: {status}"


async def test_every_route_for_every_caller(world: World, record_property):
    """The matrix: each cell one real request, its status from the tables, its effect read back."""
    assert set(PROFILE_RIGHTS) == {p.name for p in PROFILES.values()}, \
        "a predefined profile without a row in permission_table.PROFILE_RIGHTS (or a row for none)"
    table = route_table(world.env.app)
    missing = [f"{m} {p}" for m, p in table if row_key((m, p)) is None]
    assert not missing, f"routes without a row in permission_table.NEEDS (say which right each needs): {missing}"
    stale = [f"{m} {p}" for m, p in NEEDS if (m, p) not in table]
    assert not stale, f"rows of permission_table.NEEDS for routes the API no longer has: {stale}"
    unwritten = [f"{m} {p}" for m, p in NEEDS if m != "GET" and (m, p) not in WRITES]
    assert not unwritten, f"write routes without a valid request in WRITES: {unwritten}"
    unplaced = [f"{m} {p}" for (m, p), write in WRITES.items() if "{" not in p and write.foreign == "path"]
    assert not unplaced, f"writes without a path parameter must say where they name T (foreign=): {unplaced}"
    started = time.monotonic()
    for route in table:
        cells = Cells(world, route, row_key(route))
        for caller in CALLERS:
            await cells.run(caller)
    size = f"{len(table)} routes x {len(CALLERS)} callers = {len(table) * len(CALLERS)} cells"
    record_property("permission_matrix", size)
    print(f"permission matrix: {size}, in {time.monotonic() - started:.1f} s")


# Every write on an existing API user, with what it sends (path after /api-users/{id}, body).
API_USER_WRITES = (("PUT", "", {"name": "renamed"}), ("PUT", "/profiles", {"profileId": [USER_R]}),
                   ("DELETE", f"/profiles/{ADMIN}", None), ("PUT", "/renew-credential", None), ("DELETE", "", None))


async def test_no_caller_manages_an_api_user_holding_rights_it_lacks(world: World):
    """Holding `api-users:write` is not enough to act on an API user with more rights than the caller:
    renewing its credential would hand the caller that user's rights (and editing or deleting it would
    take them from someone who holds them). The grant rule says the same: no one grants what it lacks."""
    for caller in ("USER MANAGER [W]", "CUSTOMER [W]"):
        for method, tail, body in API_USER_WRITES:
            target = (await world.new_api_user(ADMIN))["api-users"]
            before = await row(world, "api_users", target)
            reply = await world.callers[caller].call(method, f"/api-users/{target}{tail}", body)
            where = f"{caller} {method} /api-users/{{ADMIN [W] user}}{tail}"
            assert reply.status == 403 and set(reply.body) == {"message"}, (where, reply.status, reply.body)
            assert await row(world, "api_users", target) == before, f"{where}: refused, yet the API user changed"
    for method, tail, body in API_USER_WRITES:  # control: the same requests by a caller holding every right
        target = (await world.new_api_user(ADMIN))["api-users"]
        before = await row(world, "api_users", target)
        reply = await world.callers["ADMIN [W]"].call(method, f"/api-users/{target}{tail}", body)
        assert 200 <= reply.status < 300, (f"ADMIN [W] {method} /api-users/{{id}}{tail}", reply.status, reply.body)
        assert await row(world, "api_users", target) != before

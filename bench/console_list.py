"""`backhaul bench-console`: the console's device list on 100,000 devices, timed server side.

    backhaul bench-console [--devices N] [--customers N] [--repeats N] [--out DIR]

A private database (bench/sandbox.py) gets a group tree (root -> customers -> two sub-groups each),
N devices made through the API's bulk creation (as customers would), radio status rows with last-seen
times spread over 30 days, and a console user. The API and the console then run in this process on a
port of 127.0.0.1; each filtered page is asked `--repeats` times through the console (the console's
own time from its `Server-Timing` header, and the client's) and through GET /v2/devices. Figures go to
the terminal and to a JSON file in --out; bench/README.md shows them.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import re
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from backhaul.settings import PROJECT_ROOT
from bench.sandbox import sandbox
from console.app import mount
from console.passwords import hash_password
from oss.app import bootstrap_root, create_api_pool, create_app
from oss.context import JOBS
from oss.login_throttle import LoginPolicy
from oss.profiles import ADMIN
from oss.storage import console_sessions

NO_LIMITS = "device-messages=0/1,device-list=0/1,bulk=0/1,default=0/1"
DAY_MS = 86_400_000
PASSWORD = "bench console password"


@dataclass
class Timing:
    name: str
    query: str
    rows: int
    server_p50_ms: float
    server_p95_ms: float
    server_max_ms: float
    client_p50_ms: float
    api_p50_ms: float | None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="backhaul bench-console", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=100_000)
    p.add_argument("--customers", type=int, default=10)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards (to EXPLAIN its queries)")
    return p


class Http:
    """Basic-auth JSON calls to the API, and the console with a session cookie."""

    def __init__(self, session: aiohttp.ClientSession, base: str, login: str, token: str) -> None:
        self.session, self.base = session, base
        self.auth = "Basic " + base64.b64encode(f"{login}:{token}".encode()).decode()
        self.cookie = ""

    async def api(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        headers = {"Authorization": self.auth}
        data = None
        if body is not None:
            data, headers["Content-Type"] = orjson.dumps(body), "application/json"
        async with self.session.request(method, f"{self.base}/v2{path}", data=data, params=params or None,
                                        headers=headers) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {raw[:300]!r}")
            return orjson.loads(raw) if raw else None

    async def login(self, email: str, password: str) -> None:
        async with self.session.get(f"{self.base}/console/login") as resp:
            page = await resp.text()
            pre_cookie = resp.cookies["bh_console_login"].value
        pre = re.search(r'name="pre" value="([^"]+)"', page)
        assert pre is not None
        async with self.session.post(f"{self.base}/console/login", allow_redirects=False,
                                     data={"email": email, "password": password, "pre": pre.group(1)},
                                     headers={"Cookie": f"bh_console_login={pre_cookie}"}) as resp:
            if resp.status != 303 or "bh_console" not in resp.cookies:
                raise RuntimeError(f"console login failed: {resp.status}")
            self.cookie = resp.cookies["bh_console"].value

    async def page(self, path: str) -> tuple[float, float, str]:
        """(server ms from Server-Timing, client ms, body) of a console page."""
        started = time.perf_counter()
        async with self.session.get(f"{self.base}{path}", headers={"Cookie": f"bh_console={self.cookie}"},
                                    allow_redirects=False) as resp:
            body = await resp.text()
            client = (time.perf_counter() - started) * 1000
            if resp.status != 200:
                raise RuntimeError(f"{path}: {resp.status} {body[:300]}")
            timing = re.search(r"app;dur=([0-9.]+)", resp.headers.get("Server-Timing", ""))
        return (float(timing.group(1)) if timing else float("nan")), client, body


async def seed(http: Http, pool: Any, app: web.Application, root: str, devices: int, customers: int) -> dict:
    """The group tree, device types and devices (bulk API), status rows, a console user; what the queries use."""
    per_type = devices // (customers * 2)
    made: dict[str, Any] = {"customers": [], "subgroups": [], "types": []}
    number = 0
    for c in range(customers):
        group = (await http.api("POST", "/groups/", {"name": f"Customer {c:02d}", "parentId": root}))["id"]
        made["customers"].append(group)
        for s in range(2):
            sub = (await http.api("POST", "/groups/", {"name": f"Customer {c:02d} site {s}",
                                                       "parentId": group}))["id"]
            made["subgroups"].append(sub)
            contract = (await http.api("POST", "/contract-infos/", {"name": f"Contract {c:02d}.{s}", "groupId": sub,
                                                                   "maxTokens": 0, "tokenDuration": 0}))["id"]
            dtype = (await http.api("POST", "/device-types/", {"name": f"meter {c:02d}.{s}", "groupId": sub,
                                                               "contractId": contract}))["id"]
            made["types"].append(dtype)
            rows = [{"id": f"{number + i:08X}", "pac": f"{number + i:016X}", "name": f"meter-{number + i:06d}"}
                    for i in range(per_type)]
            number += per_type
            await http.api("POST", "/devices/bulk", {"deviceTypeId": dtype, "data": rows})
            await app[JOBS].wait()
    now = int(time.time() * 1000)
    # Radio status as the store stage keeps it: last seen spread over 30 days, a tenth in KO.
    await pool.execute(
        "INSERT INTO device_status(device_id, registration_id, sequence_number, last_com, com_state, lqi) "
        "SELECT id, registration_id, 1, $1 - (hashtext(id) & 2147483647) % (30 * $2::bigint), "
        "CASE WHEN (hashtext(id) & 7) = 0 THEN 3 ELSE 1 END, (hashtext(id) & 3) FROM devices "
        "ON CONFLICT (device_id) DO UPDATE SET registration_id = EXCLUDED.registration_id, "
        "last_com = EXCLUDED.last_com, com_state = EXCLUDED.com_state, lqi = EXCLUDED.lqi", now, DAY_MS)
    await pool.execute("ANALYZE")
    user = (await http.api("POST", "/users/", {"firstName": "Bench", "lastName": "Operator",
                                              "email": "bench@example.com", "timezone": "UTC",
                                              "userRoles": [{"groupId": root, "profileId": ADMIN}]}))["id"]
    await console_sessions.set_password(pool, user, hash_password(PASSWORD), now)
    await console_sessions.accept_terms(pool, user, now)
    made["now"] = now
    made["count"] = await pool.fetchval("SELECT count(*) FROM devices")
    return made


def queries(made: dict) -> list[tuple[str, dict[str, Any]]]:
    """The filtered pages measured: (name, the list's query) in the API's parameter names."""
    now = made["now"]
    customers, subgroups, types = made["customers"], made["subgroups"], made["types"]
    return [
        ("first page, no filter", {}),
        ("one customer, sub-groups included", {"groupIds": customers[3 % len(customers)], "deep": "true"}),
        ("one sub-group", {"groupIds": subgroups[7 % len(subgroups)]}),
        ("device type", {"deviceTypeId": types[5 % len(types)]}),
        ("id", {"id": "0000BEEF"}),
        ("name contains", {"name": "meter-0421"}),
        ("last seen in one day", {"lastComSince": now - 3 * DAY_MS, "lastComBefore": now - 2 * DAY_MS}),
        ("state OK", {"state": "0"}),
        ("sorted by last seen", {"sort": "-lastCom"}),
        ("customer + last seen week, sorted by name", {"groupIds": customers[1 % len(customers)], "deep": "true",
                                                       "lastComSince": now - 7 * DAY_MS, "sort": "name"}),
        ("page 20 (offset 950)", {"offset": 950}),
    ]


def rows_in(body: str) -> int:
    return body.count("<tr data-id=")


async def measure(http: Http, made: dict, repeats: int, page_size: int) -> list[Timing]:
    results = []
    for name, query in queries(made):
        qs = "&".join(f"{k}={v}" for k, v in {**query, "limit": page_size}.items())
        server, client, api_ms = [], [], []
        rows = 0
        for _ in range(repeats):
            s, c, body = await http.page(f"/console/devices?{qs}")
            server.append(s)
            client.append(c)
            rows = rows_in(body)
            started = time.perf_counter()
            try:
                await http.api("GET", "/devices/", **{**query, "limit": page_size})
                api_ms.append((time.perf_counter() - started) * 1000)
            except RuntimeError:
                pass  # a console-only filter the API does not take
        server.sort()
        results.append(Timing(name, qs, rows, round(statistics.median(server), 1),
                              round(server[int(0.95 * (len(server) - 1))], 1), round(max(server), 1),
                              round(statistics.median(client), 1),
                              round(statistics.median(api_ms), 1) if api_ms else None))
    return results


async def run(args: argparse.Namespace) -> list[Timing]:
    async with sandbox(keep=args.keep) as box:
        if args.keep:
            print(f"database kept: {box.database}")
        pool = await create_api_pool(box.dsn)
        app = create_app(pool, rate_limits=NO_LIMITS, bulk_chunk=5000,
                         login_policy=LoginPolicy(free_failures=0, address_free_failures=0))
        mount(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            root, login, token = await bootstrap_root(pool, "Bench operator")
            async with aiohttp.ClientSession() as session:
                http = Http(session, base, login, token)
                started = time.monotonic()
                made = await seed(http, pool, app, root, args.devices, args.customers)
                print(f"seeded {made['count']} devices in {time.monotonic() - started:.0f} s")
                await http.login("bench@example.com", PASSWORD)
                await measure(http, made, 3, 50)  # warm-up: plans cached, pages in memory
                results = await measure(http, made, args.repeats, 50)
        finally:
            await runner.cleanup()
            await pool.close()
    return results


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    results = asyncio.run(run(args))
    print(f"{'query':45} {'rows':>5} {'server p50':>10} {'p95':>7} {'max':>7} {'client p50':>10} {'API p50':>8}")
    for t in results:
        api = f"{t.api_p50_ms:8.1f}" if t.api_p50_ms is not None else f"{'-':>8}"
        print(f"{t.name:45} {t.rows:5d} {t.server_p50_ms:10.1f} {t.server_p95_ms:7.1f} {t.server_max_ms:7.1f} "
              f"{t.client_p50_ms:10.1f} {api}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"console-list-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_bytes(orjson.dumps({"devices": args.devices, "customers": args.customers, "repeats": args.repeats,
                                   "results": [asdict(t) for t in results]}, option=orjson.OPT_INDENT_2))
    print(f"written {path}")
    return 0

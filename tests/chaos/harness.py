"""What every chaos test shares: a supervised stack, traffic from three stations, and the end checks.

The stack is what `backhaul up` runs, under the real supervisor (`backhaul
supervise`, in a state folder of the test's own): ingest, router, delivery and
store+relay, each a process. Traffic is radio frames as stations publish them:
every message is heard by station A at once, by B up to 1.5 s later and by C
around the DATA_ADVANCED window's deadline (some copies of C are late). A
copy the broker does not acknowledge (Kafka away) is kept and sent again.

The customer's side: one DATA callback and one DATA_ADVANCED callback to a
real HTTP receiver, and the API reading `cbStatus`. The end checks
(`check_outcome`) are the issue's:

* every (device, seqNumber) sent was delivered;
* every repeat of a request carries the same `webhook-id` (and no two
  messages share one);
* one DATA_ADVANCED per message id: every copy of the record on the topic is
  the same record, its duplicates are exactly the copies the broker appended
  before the window's deadline (the same decision as an uninterrupted run),
  and every request the receiver got for it has one webhook-id and one body;
* `cbStatus` lists every request the receiver saw (as many entries as
  requests, at least) and nothing is still "sending";
* undelivered records only where the schedule ran out (see test (d)).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from backhaul.kafka import Out, make_producer, send_all
from backhaul.topics import topic
from schemas.topics import DELIVERY_RESULTS, DEVICE_EVENTS, FRAMES, MESSAGES, MESSAGES_ADVANCED
from tests.conftest import (
    ROOT,
    Isolated,
    Receiver,
    consumer_group_caught_up,
    free_port,
    read_topic,
    wait_until,
)

WINDOW_S = 6.0
ROLES = {"ingest": "ingest", "router": "router", "delivery": "delivery", "store": "store,relay"}
DATA_CALLBACK = "chaos-data"
ADVANCED_CALLBACK = "chaos-advanced"


def callbacks(receiver_url: str, **options: Any) -> list[dict]:
    """The customer's callbacks: DATA (GET, the message in the query) and DATA_ADVANCED (POST, JSON), with
    `options` (columns of both: they share the receiver's endpoint and so its limits)."""
    return [
        {"id": DATA_CALLBACK, "url": f"{receiver_url}/data?device={{device}}&seq={{seqNumber}}",
         "http_method": "GET", **options},
        {"id": ADVANCED_CALLBACK, "callback_subtype": 5, "url": f"{receiver_url}/advanced", "http_method": "POST",
         "content_type": "application/json",
         "body_template": '{"device":"{device}","seq":{seqNumber},"duplicates":{duplicates}}', **options},
    ]


def stack_script(name: str, action: str, env: dict[str, str]) -> None:
    """deploy/local/<name> <action> for the test run's stack (its ports come from `env`)."""
    result = subprocess.run(["bash", str(ROOT / "deploy/local" / name), action], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{name} {action}: {result.stderr[-2000:]}"


# The stack under its supervisor ---------------------------------------------------------------
@dataclass
class Supervised:
    """`backhaul supervise` running the four worker processes of `up`."""

    state_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    ports: dict[str, int] = field(default_factory=dict)

    def start(self) -> "Supervised":
        from program.supervisor import Planned, plan_path

        self.ports = {name: free_port() for name in ROLES}
        plan = [Planned(name, ["worker", "--roles", roles, "--metrics-port", str(self.ports[name])])
                for name, roles in ROLES.items()]
        path = self.state_dir / "run" / plan_path().name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([{"name": p.name, "argv": p.argv, "env": p.env} for p in plan]))
        log = open(self.state_dir / "supervisor.out", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "program.cli", "supervise"], env=self.env,
                                     stdout=log, stderr=log, start_new_session=True, cwd=ROOT)
        log.close()
        return self

    def view(self) -> dict[str, dict]:
        """The supervisor's view of each process (name -> state, pid, restarts, ...)."""
        try:
            state = json.loads((self.state_dir / "run" / "supervisor.json").read_text())
        except (OSError, ValueError):
            return {}
        return {p["name"]: p for p in state.get("processes", [])}

    def pid(self, name: str) -> int | None:
        p = self.view().get(name) or {}
        return p.get("pid") if p.get("state") == "running" else None

    async def wait_running(self, config_records: int = 0, timeout: float = 60.0) -> None:
        """Until the supervisor runs every process, each says its roles are ready, and each view has
        applied `config_records` configuration records."""
        await wait_until(lambda: all(self.pid(n) for n in ROLES), timeout,
                         f"every process running under the supervisor\n{self.log_tails()}")
        async with aiohttp.ClientSession() as session:
            await wait_until(lambda: self._all_ready(session, config_records), timeout,
                             f"every process ready\n{self.log_tails()}")

    async def _all_ready(self, session: aiohttp.ClientSession, config_records: int) -> bool:
        for port in self.ports.values():
            try:
                async with session.get(f"http://127.0.0.1:{port}/status") as resp:
                    status = await resp.json()
            except (aiohttp.ClientError, OSError, ValueError):
                return False
            applied = status.get("config")  # None: a process without a view (store, relay)
            if not status.get("ready") or (applied is not None and applied < config_records):
                return False
        return True

    async def metrics(self, name: str) -> str:
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{self.ports[name]}/metrics") as resp:
            return await resp.text()

    def kill9(self, name: str) -> int:
        pid = self.pid(name)
        assert pid, f"{name} is not running: {self.view().get(name)}"
        os.kill(pid, signal.SIGKILL)
        return pid

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for path in sorted((self.state_dir / "logs").glob("*.log")) + [self.state_dir / "supervisor.out"]:
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def stop(self) -> None:
        """The supervisor, then every process it ran (as `backhaul down --keep-stack`)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        subprocess.run([sys.executable, "-m", "program.cli", "down", "--keep-stack"], env=self.env,
                       capture_output=True, timeout=120, cwd=ROOT)


# Traffic -----------------------------------------------------------------------------------------
@dataclass
class Sent:
    """One message: when its first copy was acknowledged by the broker, and which stations sent it."""

    first_at: float
    stations: list[str] = field(default_factory=list)


class Traffic:
    """Messages at `per_s` from `devices`, each heard by three stations (A now, B soon, C near the
    window's deadline). Unacknowledged copies are kept and sent again until the broker takes them."""

    def __init__(self, devices: list[str], stations: list[str], per_s: float, seed: int = 7) -> None:
        self.devices, self.stations, self.pause = devices, stations, 1 / per_s
        self.sent: dict[tuple[str, int], Sent] = {}
        self.rng = random.Random(seed)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._producer = None
        self._lock = asyncio.Lock()

    def start(self) -> "Traffic":
        self._tasks.append(asyncio.create_task(self._run()))
        return self

    async def stop(self) -> dict[tuple[str, int], Sent]:
        """Stop sending new messages; wait for the copies still to come."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        if self._producer is not None:
            await self._producer.stop()
        return self.sent

    async def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            seq += 1
            for device in self.devices:
                if self._stop.is_set():
                    break
                a, b, c = self.stations
                await self._publish(device, seq, a)
                self.sent[(device, seq)] = Sent(time.time(), [a])
                self._tasks.append(asyncio.create_task(self._later(device, seq, b, self.rng.uniform(0.05, 1.5))))
                self._tasks.append(asyncio.create_task(
                    self._later(device, seq, c, self.rng.uniform(WINDOW_S - 2.0, WINDOW_S + 2.0))))
                await asyncio.sleep(self.pause)

    async def _later(self, device: str, seq: int, station: str, after_s: float) -> None:
        await asyncio.sleep(after_s)
        await self._publish(device, seq, station)
        self.sent[(device, seq)].stations.append(station)

    async def _publish(self, device: str, seq: int, station: str) -> None:
        body = {"station": station, "device": device, "seqNumber": seq, "data": f"{seq % 256:02x}",
                "rssi": -100.0 - self.rng.random() * 30, "snr": 12.0, "time": int(time.time() * 1000),
                "freq": 868_130_000, "rep": 1, "ack": False, "oob": False}
        record = Out(topic(FRAMES), device.encode(), orjson.dumps(body))
        while True:
            async with self._lock:
                producer = self._producer
                try:
                    if producer is None:
                        producer = self._producer = make_producer(request_timeout_ms=5000)
                        await producer.start()
                except Exception:  # noqa: BLE001  (the broker is away)
                    self._producer = None
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    await asyncio.sleep(1.0)
                    continue
            try:
                await send_all(producer, [record])
                return
            except Exception:  # noqa: BLE001  (the broker is away: keep the copy, try again on a new producer)
                async with self._lock:
                    if self._producer is producer:
                        self._producer = None
                        with contextlib.suppress(Exception):
                            await producer.stop()
                await asyncio.sleep(1.0)


# The end checks ----------------------------------------------------------------------------------
def data_requests(receiver: Receiver) -> dict[tuple[str, int], list]:
    found: dict[tuple[str, int], list] = defaultdict(list)
    for r in receiver.requests:
        if r.path == "/data":
            found[(r.query["device"], int(r.query["seq"]))].append(r)
    return found


def advanced_requests(receiver: Receiver) -> dict[tuple[str, int], list]:
    found: dict[tuple[str, int], list] = defaultdict(list)
    for r in receiver.requests:
        if r.path == "/advanced":
            body = orjson.loads(r.body)
            found[(body["device"], body["seq"])].append(r)
    return found


async def wait_delivered(receiver: Receiver, sent: dict[tuple[str, int], Sent], timeout: float,
                         delivered=None, fetch=None, answer_of=None) -> None:
    """Until every message sent has a DATA callback answered 2xx and a DATA_ADVANCED callback.
    With `fetch` (the test database), a timeout also says what the delivery worker still holds."""
    delivered = delivered or (lambda: set(data_requests(receiver)))

    def missing() -> set:
        return (set(sent) - delivered()) | (set(sent) - set(advanced_requests(receiver)))

    try:
        await wait_until(lambda: not missing(), timeout, "every message delivered")
    except AssertionError:
        held = "" if fetch is None else "; waiting deliveries: " + repr([dict(r) for r in await fetch(
            "SELECT endpoint, reason, count(*) AS n, min(due_at - now()) AS first_due, "
            "count(*) FILTER (WHERE claimed_until > now()) AS claimed FROM delivery_retries "
            "GROUP BY endpoint, reason ORDER BY endpoint, reason")])
        if fetch is not None:
            for device, seq in sorted(missing())[:3]:
                rows = await fetch(
                    "SELECT a.delivery_id, a.attempt, a.time, a.status, a.error_class, a.info FROM callback_attempts a "
                    "JOIN messages m ON m.id = a.message_id WHERE m.device_id = $1 AND m.seq_number = $2 "
                    "ORDER BY a.delivery_id, a.attempt", device, seq)
                seen = [(r.path, round(r.at, 1), answer_of(r) if answer_of else None) for r in receiver.requests
                        if (r.query.get("device"), r.query.get("seq")) == (device, str(seq))
                        or (r.path == "/advanced" and orjson.loads(r.body).get("seq") == seq
                            and orjson.loads(r.body).get("device") == device)]
                held += f"\n{device}/{seq}: requests {seen}; attempts {[tuple(r) for r in rows]}"
        raise AssertionError(f"{len(missing())} of {len(sent)} messages not delivered within {timeout} s, "
                             f"e.g. {sorted(missing())[:5]}{held}") from None


async def check_outcome(receiver: Receiver, sent: dict[tuple[str, int], Sent], api, fetch,
                        succeeded=None) -> dict[str, Any]:
    """The issue's end checks (see the module's docstring); returns figures for the report.

    `succeeded(request)`: whether the receiver answered that request with success (all by default)."""
    succeeded = succeeded or (lambda r: True)
    # The store writes what the receiver saw a little later (more after an outage): wait for it to catch up.
    store_topics = [topic(t) for t in (MESSAGES, MESSAGES_ADVANCED, DEVICE_EVENTS, DELIVERY_RESULTS)]
    await wait_until(lambda: consumer_group_caught_up(topic("backhaul-store"), store_topics), 120,
                     "the store to write everything published")
    data = data_requests(receiver)
    advanced = advanced_requests(receiver)
    expected = set(sent)

    # Every message delivered: a successful DATA request and a DATA_ADVANCED request each; no other.
    assert set(data) == expected, f"DATA for unknown messages {sorted(set(data) - expected)[:5]}, " \
                                  f"none for {sorted(expected - set(data))[:5]}"
    assert {k for k, rs in data.items() if any(succeeded(r) for r in rs)} == expected
    assert set(advanced) == expected

    # Every repeat carries the webhook-id of its first request; no two messages share one.
    for name, found in (("DATA", data), ("DATA_ADVANCED", advanced)):
        ids = {k: {r.headers.get("webhook-id") for r in rs} for k, rs in found.items()}
        assert {k: v for k, v in ids.items() if len(v) != 1 or None in v} == {}, f"{name}: several webhook-ids"
        assert len({next(iter(v)) for v in ids.values()}) == len(ids), f"{name}: a webhook-id on two messages"

    # One DATA_ADVANCED per message id, with the copies appended before its deadline.
    appended: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
    for rec in await read_topic(topic(FRAMES), timeout=30, expect=sum(len(s.stations) for s in sent.values())):
        f = orjson.loads(rec.value)
        appended[(f["device"], f["seqNumber"])].append((rec.timestamp, f["station"]))
    records: dict[str, set[bytes]] = defaultdict(set)
    by_message: dict[tuple[str, int], dict] = {}
    for rec in await read_topic(topic(MESSAGES_ADVANCED), timeout=30, expect=len(expected)):
        a = orjson.loads(rec.value)
        records[a["id"]].add(orjson.dumps(a, option=orjson.OPT_SORT_KEYS))
        by_message[(a["device"], a["seqNumber"])] = a
    assert {i: len(v) for i, v in records.items() if len(v) > 1} == {}, "a DATA_ADVANCED id with two contents"
    assert set(by_message) == expected and len(records) == len(expected)
    decisions = {"copies": 0, "late": 0}
    for key, a in by_message.items():
        copies = sorted(appended[key])
        in_time = {station for at, station in copies if at < a["deadline"]}
        assert a["deadline"] == copies[0][0] + int(WINDOW_S * 1000), (key, a["deadline"], copies)
        assert {d["bsId"] for d in a["duplicates"]} == in_time, \
            f"{key}: duplicates {a['duplicates']} but appended {copies} (deadline {a['deadline']})"
        decisions["copies"] += len(copies)
        decisions["late"] += len(copies) - len(in_time)
    for key, rs in advanced.items():
        assert len({r.body for r in rs}) == 1, f"{key}: DATA_ADVANCED requests with different bodies"
        body = orjson.loads(rs[0].body)
        assert {d["bsId"] for d in body["duplicates"]} == {d["bsId"] for d in by_message[key]["duplicates"]}

    # cbStatus lists every request the receiver saw; none is left "sending".
    statuses = await cb_statuses(api, sorted({d for d, _ in expected}))
    short = []
    for key, rs in data.items():
        entries = [s for s in statuses.get(key, []) if s.get("cbDef") == DATA_CALLBACK]
        if len(entries) < len(rs) or any("status" not in s for s in entries):
            short.append((key, len(rs), entries))
    assert short == [], f"cbStatus short of the receiver's requests: {short[:5]}"
    attempts = await fetch("SELECT delivery_id, count(*) AS n, count(status) AS answered FROM callback_attempts "
                           "WHERE callback_id = $1 GROUP BY delivery_id", ADVANCED_CALLBACK)
    per_message = {r["delivery_id"]: (r["n"], r["answered"]) for r in attempts}
    assert all(n == answered for n, answered in per_message.values()), "a DATA_ADVANCED send left open"
    assert sum(n for n, _ in per_message.values()) >= sum(len(rs) for rs in advanced.values())

    repeats = {name: sum(len(rs) - 1 for rs in found.values()) for name, found in
               (("data", data), ("advanced", advanced))}
    return {"messages": len(expected), "repeats": repeats, **decisions}


async def cb_statuses(api, devices: list[str]) -> dict[tuple[str, int], list[dict]]:
    """Every message's cbStatus (of its first reception), through the API as a customer reads it."""
    out: dict[tuple[str, int], list[dict]] = {}
    for device in devices:
        path = f"/devices/{device}/messages?limit=100"
        while path:
            reply = await api.root.get(path)
            assert reply.status == 200, reply.body
            for m in reply.body["data"]:
                out[(device, m["seqNumber"])] = [s for r in m.get("rinfos", []) for s in r.get("cbStatus", [])]
            nxt = reply.body["paging"].get("next")
            path = nxt[nxt.index("/devices/"):] if nxt else None
    return out


def delays_around(kills: list[tuple[float, str]], sent: dict[tuple[str, int], Sent], receiver: Receiver,
                  around_s: float = 10.0) -> dict[str, Any]:
    """Callback delay (first copy acknowledged -> first DATA request) of the messages sent in the
    `around_s` after each kill, and of the others (steady), as p50/p99 in ms."""
    first = {k: min(r.at for r in rs) for k, rs in data_requests(receiver).items()}
    near, steady = [], []
    for key, s in sent.items():
        if key not in first:
            continue
        delay = (first[key] - s.first_at) * 1000
        (near if any(0 <= s.first_at - at < around_s for at, _ in kills) else steady).append(delay)
    return {"afterKill": percentiles(near), "steady": percentiles(steady)}


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))], 1)
    return {"n": len(ordered), "p50": rank(0.5), "p99": rank(0.99), "max": round(ordered[-1], 1)}


def subprocess_env(isolated: Isolated, state_dir: Path, kafka_password: str, **extra: str) -> dict[str, str]:
    """The supervised processes' environment: a state folder of their own, and the Kafka password and
    callback-secret key of the test run's stack given explicitly, as on a server."""
    from backhaul.secretbox import dev_key_file

    keys = {} if os.environ.get("BACKHAUL_SECRET_KEYS") or os.environ.get("BACKHAUL_SECRET_KEY_FILE") else \
        {"BACKHAUL_SECRET_KEY_FILE": str(dev_key_file())}
    return isolated.subprocess_env(BACKHAUL_STATE_DIR=str(state_dir), BACKHAUL_KAFKA_PASSWORD=kafka_password,
                                   **keys,
                                   BACKHAUL_ADVANCED_WINDOW_S=str(WINDOW_S),
                                   **{"BACKHAUL_LOG_LEVEL": "WARNING", **extra})

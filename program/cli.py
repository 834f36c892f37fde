"""The `backhaul` command: up, down, status, start, stop, restart, supervise, worker, api, simulate,
demo-receiver, migrate, replay, registry, stations, console, coverage, bench, bench-console, bench-coverage,
secret-key, rotate-secrets."""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from backhaul.logs import setup_logging
from backhaul.secretbox import SealedSecretError, SecretKeyError
from backhaul.settings import settings
from program.scaling import base_plan, instance_counts, parse_scale, scaled
from program.supervisor import Planned

if TYPE_CHECKING:
    from simulator.network import Network

DEMO_PROCESSES = [
    ("ingest", ["worker", "--roles", "ingest"]),
    ("router", ["worker", "--roles", "router"]),
    ("delivery", ["worker", "--roles", "delivery"]),
    ("store", ["worker", "--roles", "store,relay"]),
    ("downlink", ["worker", "--roles", "stations,acks,dispatch"]),
    ("api", ["api"]),
    ("receiver", ["demo-receiver"]),
]


# The demo receiver listens on 127.0.0.1, which the destination rule refuses by default:
# the processes `up` starts allow that one address, explicitly (and nothing else).
DEMO_ALLOWED_NETWORK = "127.0.0.1/32"


def _demo_env() -> dict[str, str]:
    """The environment of the processes `up` starts: the operator's allow-list plus the demo receiver."""
    allowed = [n.strip() for n in settings().callback_allow_networks.split(",") if n.strip()]
    if DEMO_ALLOWED_NETWORK not in allowed:
        allowed.append(DEMO_ALLOWED_NETWORK)
    return {"BACKHAUL_CALLBACK_ALLOW_NETWORKS": ",".join(allowed)}


def _asyncio_run(coro):
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return None


def _run_logged(what: str, coro) -> int:
    """Run a long-running command; whatever ends it by an exception is logged with its traceback
    (once: a role's crash is logged where it happens) and the exit status is 1."""
    from program.roles import RoleCrashed

    log = logging.getLogger("program.cli")
    try:
        _asyncio_run(coro)
    except (SecretKeyError, SealedSecretError):
        raise  # a configuration error, not a crash: main() names it and exits 2
    except RoleCrashed as exc:
        log.critical(f"{what} stopped: {exc}")
        return 1
    except Exception:  # noqa: BLE001  (the one place that must see every failure)
        log.critical(f"{what} stopped by an unexpected error", exc_info=True)
        return 1
    return 0


# up / down / status ---------------------------------------------------------
def _demo_ports(args: argparse.Namespace) -> dict[str, tuple[int, str, str]]:
    """Each process `up` starts -> (the port it listens on, what it is, the variable that moves it)."""
    from program.roles import role_metrics_port

    s = settings()
    base = "BACKHAUL_METRICS_PORT_BASE"
    ports = {name: (role_metrics_port(argv[2].split(",")[0]), f"the {name} worker's metrics", base)
             for name, argv in DEMO_PROCESSES if argv[0] == "worker"}
    for planned in scaled([Planned(n, a) for n, a in DEMO_PROCESSES], args.scale):
        if "--metrics-port" in planned.argv:  # an extra instance
            ports[planned.name] = (int(planned.argv[-1]), f"the {planned.name} worker's metrics", base)
    ports["api"] = (s.api_port, "the REST API", "BACKHAUL_API_PORT")
    ports["receiver"] = (s.demo_receiver_port, "the demo receiver", "BACKHAUL_DEMO_RECEIVER_PORT")
    if not args.no_simulate:
        ports["simulate"] = (role_metrics_port("simulate"), "the simulator's metrics", base)
    return ports


def cmd_up(args: argparse.Namespace) -> int:
    from program import processes
    from program.roles import role_metrics_port

    s = settings()
    ports = _demo_ports(args)
    ours = processes.running()
    problems = processes.check_ports_free({port: (what, variable) for name, (port, what, variable) in ports.items()
                                           if name not in ours})
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        return 1
    print("== starting the local stack (Kafka, PostgreSQL)", flush=True)
    processes.stack("start")
    settings.cache_clear()  # the broker's first start made the password this process connects with
    if not (s.secret_keys or s.secret_key_file):
        from backhaul.secretbox import ensure_dev_key_file
        print(f"== development key for callback secrets: {ensure_dev_key_file()}", flush=True)
    print("== migrating the database, creating topics, registering the demo network", flush=True)
    creds = _asyncio_run(_prepare_demo(args))
    print("== starting the supervisor: workers, API and demo receiver", flush=True)
    _supervise(_demo_plan(args))
    _wait_http(f"http://127.0.0.1:{s.demo_receiver_port}/stats", 30)
    _wait_http(f"http://127.0.0.1:{role_metrics_port('ingest')}/status", 60)
    metrics = ", ".join(f"{port} {name}" for name, (port, _, _) in ports.items() if name != "api")
    print(f"""
Backhaul is up.
  demo receiver (callbacks arriving):  http://127.0.0.1:{s.demo_receiver_port}/
  REST API (Sigfox v2 shapes):         http://127.0.0.1:{s.api_port}/v2/   (Basic auth: {creds['apiUser']} / {creds['accessToken']})
  metrics (http://127.0.0.1:PORT/metrics): {metrics}, {s.api_port} api
  logs:                                {s.state_dir / 'logs'}/
  processes:                           backhaul status
  stop everything:                     backhaul down
""", flush=True)
    return 0


SIMULATOR_GATEWAY = "simulator"


def _demo_plan(args: argparse.Namespace) -> list:
    """The processes `up` has the supervisor run."""
    from program import processes
    from program.roles import role_metrics_port
    from program.supervisor import Planned

    plan = scaled([Planned(name, argv, _demo_env()) for name, argv in DEMO_PROCESSES], args.scale)
    if not args.no_simulate:
        # The simulated stations publish as a gateway would: on the gateway listener, with their own credentials.
        processes.gateway_password(SIMULATOR_GATEWAY)
        password_file = settings().state_dir / "kafka" / "gateways" / f"{SIMULATOR_GATEWAY}.password"
        stations = ["--stations", str(args.stations)] if _demo_stations_file(args) is None else [
            "--stations-file", str(_demo_stations_file(args))]
        plan.append(Planned("simulate", [
            "simulate", *stations, "--devices", str(args.devices), "--rate", str(args.rate),
            "--malformed", "5", "--forever", "--metrics-port", str(role_metrics_port("simulate")),
            "--gateway", SIMULATOR_GATEWAY, "--gateway-password-file", str(password_file)]))
    return plan


def _supervise(plan: list, timeout: float = 30.0) -> None:
    """Hand `plan` to this checkout's supervisor (started if none runs) and wait until it runs every
    process; name those that do not."""
    from program import control, processes
    from program.supervisor import read_state, write_plan

    write_plan(plan)
    if read_state() is not None:
        print(f"   supervisor already running: {control.request('reload')['message']}", flush=True)
    else:
        processes.spawn("supervisor", ["supervise"])
    deadline = time.monotonic() + timeout
    waiting = [p.name for p in plan]
    while waiting and time.monotonic() < deadline:
        state = read_state()
        if state is not None:
            states = {p["name"]: p for p in state["processes"]}
            waiting = [name for name in waiting if states.get(name, {}).get("state") != "running"]
        time.sleep(0.2)
    if waiting:
        print(f"warning: not running after {timeout:.0f} s: {', '.join(waiting)} (see `backhaul status` "
              f"and {settings().state_dir / 'logs'}/)", file=sys.stderr)


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    print(f"warning: {url} did not answer within {timeout:.0f} s (see the logs)", file=sys.stderr)
    return False


def _demo_stations_file(args: argparse.Namespace) -> str | None:
    """The stations file `up` registers and simulates (BACKHAUL_DEMO_STATIONS_FILE), None when `--stations N`
    asks for a generated network instead (or the setting is empty)."""
    return None if args.stations is not None else (settings().demo_stations_file or None)


def _simulated_network(args: argparse.Namespace, stations_file: str | None, *, seed: int = 1) -> Network:
    """The simulated network: the stations file's enabled stations, or a generated ring of `args.stations`."""
    from radio.station_rows import read_stations
    from simulator.network import build_network, registry_network

    if stations_file:
        return registry_network(read_stations(stations_file), args.devices, seed=seed)
    return build_network(args.stations or 3, args.devices, seed=seed)


async def _prepare_demo(args: argparse.Namespace) -> dict:
    from backhaul import db
    from backhaul.kafka import ensure_topics
    from program.demo.seed import DEMO_CONTRACT, seed_network

    s = settings()
    await ensure_topics()
    pool = await db.create_pool()
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn)
        creds_path = s.state_dir / "demo-credentials.json"
        creds = json.loads(creds_path.read_text()) if creds_path.exists() else None
        # Credentials of a database that was reset since are useless: make new ones.
        if creds is None or not await pool.fetchval("SELECT 1 FROM api_users WHERE id = $1", creds["apiUser"]):
            from oss.app import bootstrap_root
            group, user, token = await bootstrap_root(pool, "Backhaul demo operator")
            creds = {"group": group, "apiUser": user, "accessToken": token}
            creds_path.unlink(missing_ok=True)
            fd = os.open(creds_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(creds))
        stations_file = _demo_stations_file(args)
        network = _simulated_network(args, stations_file)
        if stations_file:  # the registry's stations, in the operator's group (README: Base stations)
            from oss.station_file import import_stations
            from radio.station_rows import read_stations
            async with pool.acquire() as conn:
                await import_stations(conn, read_stations(stations_file), group_id=creds["group"])
        receiver = f"http://127.0.0.1:{s.demo_receiver_port}/callbacks"
        callbacks = [
            {"callback_subtype": 0, "url": receiver + "/data?device={device}&seq={seqNumber}&data={data}",
             "http_method": "GET"},
            {"callback_subtype": 5, "callback_type": 1, "url": receiver + "/advanced", "http_method": "POST",
             "content_type": "application/json",
             "body_template": '{"device":"{device}","seqNumber":{seqNumber},"lqi":"{lqi}",'
                              '"duplicates":{duplicates},"computedLocation":{computedLocation}}'},
            {"callback_subtype": 6, "callback_type": 2, "url": receiver + "/error", "http_method": "POST",
             "content_type": "application/json",
             "body_template": '{"device":"{device}","info":"{info}","severity":"{severity}"}'},
        ]
        async with pool.acquire() as conn:
            await seed_network(conn, network, callbacks=callbacks, parent_group=creds["group"],
                               contract=DEMO_CONTRACT, register_stations=stations_file is None)
        return creds
    finally:
        await pool.close()


def cmd_down(args: argparse.Namespace) -> int:
    from program import processes
    from program.supervisor import NAME as SUPERVISOR

    # The supervisor first, so that it does not start again what is being stopped.
    for name in [SUPERVISOR, "simulate"] + [n for n, _ in reversed(DEMO_PROCESSES)] + list(processes.running()):
        if processes.stop(name):
            print(f"stopped {name}")
    if args.purge:
        processes.stack("reset")
        (settings().state_dir / "demo-credentials.json").unlink(missing_ok=True)
    elif not args.keep_stack:
        processes.stack("stop")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from program import processes, status_report

    rows, by_hand = status_report.collect([name for name, _ in DEMO_PROCESSES] + ["simulate"])
    if args.json:
        print(json.dumps(status_report.as_json(rows, by_hand), indent=1))
        return 0
    print(status_report.table(rows, by_hand))
    processes.stack("status")
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    """start | stop | restart NAME, through the supervisor."""
    from program import control

    try:
        reply = control.request(args.command, args.name)
    except control.NoSupervisor:
        print(f"backhaul {args.command}: no supervisor runs for {settings().state_dir} (`backhaul up` starts one; "
              f"a worker of your own runs with `backhaul worker --roles ...`)", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"backhaul {args.command}: {reply.get('error')}", file=sys.stderr)
        return 1
    print(reply["message"])
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    """backhaul scale PROCESS=COUNT,...: rewrite the supervisor's plan and have it start or stop instances."""
    from program import control, processes
    from program.supervisor import plan_path, read_plan, write_plan

    if not plan_path().exists():
        print(f"backhaul scale: no plan in {processes.run_dir()} (`backhaul up` writes it)", file=sys.stderr)
        return 1
    plan = read_plan()
    counts = {**instance_counts(plan), **args.counts}
    ports = {int(p.argv[-1]) for p in plan if "--metrics-port" in p.argv}
    new_plan = scaled(base_plan(plan), counts)
    taken = processes.check_ports_free({int(p.argv[-1]): (f"the {p.name} worker's metrics", "--scale")
                                        for p in new_plan if "--metrics-port" in p.argv
                                        and int(p.argv[-1]) not in ports})
    if taken:
        print("\n".join(f"backhaul scale: {t}" for t in taken), file=sys.stderr)
        return 1
    write_plan(new_plan)
    try:
        reply = control.request("reload")
    except control.NoSupervisor:
        print("backhaul scale: the plan is written; no supervisor runs to apply it (`backhaul up` starts one)",
              file=sys.stderr)
        return 1
    print(reply.get("message") if reply.get("ok") else reply.get("error"))
    return 0 if reply.get("ok") else 1


def _scale_argument(text: str) -> dict[str, int]:
    try:
        return parse_scale(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_supervise(args: argparse.Namespace) -> int:
    from program.supervisor import supervise

    setup_logging(settings().log_level, role="supervisor")
    return _run_logged("supervisor", supervise())


# long-running roles ---------------------------------------------------------
def cmd_worker(args: argparse.Namespace) -> int:
    from program.roles import run_roles

    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    setup_logging(settings().log_level, role="+".join(roles))
    tune_collector(settings().gc_threshold)
    return _run_logged("worker", run_roles(roles, metrics_port=args.metrics_port))


def tune_collector(threshold: tuple[int, ...]) -> None:
    """Collect cycles less often in a worker: its thousands of live tasks, futures and records made
    Python's default (a young-generation pass every 700 allocations) cost a quarter of the delivery
    worker's CPU (bench/README.md, issue 19). What is loaded by now is frozen out of every pass."""
    if threshold:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*threshold)


def cmd_api(args: argparse.Namespace) -> int:
    from console.app import mount
    from oss.app import serve_api

    setup_logging(settings().log_level, role="api")
    s = settings()
    return _run_logged("api", serve_api(s.api_host, args.port or s.api_port, mount if s.console_enabled else None))


def cmd_demo_receiver(args: argparse.Namespace) -> int:
    from aiohttp import web

    from program.demo.receiver import create_app

    setup_logging(settings().log_level, role="receiver")
    web.run_app(create_app(), host="127.0.0.1", port=args.port or settings().demo_receiver_port,
                access_log=None, print=None)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from backhaul.kafka import ensure_topics
    from simulator.network import simulate

    setup_logging(settings().log_level, role="simulate")
    network = _simulated_network(args, args.stations_file, seed=args.seed)

    async def main() -> dict:
        await ensure_topics()
        producer = None
        if args.gateway:
            from backhaul.kafka import make_gateway_producer
            password = os.environ.get("BACKHAUL_GATEWAY_PASSWORD") or (
                Path(args.gateway_password_file).read_text().strip() if args.gateway_password_file else "")
            if not password:
                raise SystemExit("--gateway needs its password: --gateway-password-file or BACKHAUL_GATEWAY_PASSWORD")
            producer = make_gateway_producer(args.gateway, password, linger_ms=5)
            await producer.start()
        runner = None
        if args.metrics_port:
            from program.roles import start_metrics_server
            runner = await start_metrics_server(args.metrics_port, {"roles": ["simulate"], "ready": True})
        if args.register:
            from backhaul import db
            from program.demo.seed import seed_network
            async with db.migrated() as conn:
                await seed_network(conn, network, name=args.register)
        try:
            return await simulate(network, messages_per_device=None if args.forever or args.duration else args.messages,
                                  rate=args.rate, duration=args.duration, max_stations=args.max_stations,
                                  malformed=args.malformed, seed=args.seed + 1, producer=producer,
                                  radio=_radio_model(network, args.stations_file) if args.radio else None)
        finally:
            if producer:
                await producer.stop()
            if runner:
                await runner.cleanup()

    sent = _asyncio_run(main())
    if sent:
        print(json.dumps(sent))
    return 0


def _radio_model(network: Network, stations_file: str | None):
    """The link-budget radio of the simulated stations: the stations file's radio parameters, or the
    registry's defaults (radio.link_budget) for a generated ring."""
    from radio.predict import StationSite
    from simulator.radio_model import RadioModel

    if not stations_file:
        return RadioModel.of([StationSite(s.id, s.lat, s.lng) for s in network.stations])
    from radio.station_rows import read_stations

    rows = {r.id: r for r in read_stations(stations_file)}
    return RadioModel.of([StationSite(r.id, r.lat, r.lng, r.antenna_height_m, r.antenna_gain_dbi, r.cable_loss_db,
                                      r.environment) for r in (rows[s.id] for s in network.stations)])


def cmd_migrate(args: argparse.Namespace) -> int:
    from backhaul import db
    from backhaul.kafka import ensure_topics

    async def main() -> None:
        conn = await db.connect()
        try:
            applied = await db.migrate(conn)
        finally:
            await conn.close()
        print(f"migrations applied: {applied or 'none (up to date)'}")
        await ensure_topics()
        print("topics: present")

    _asyncio_run(main())
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from backhaul.replay import replay_undelivered

    setup_logging(settings().log_level, role="replay")
    count = _asyncio_run(replay_undelivered(device=args.device, callback=args.callback,
                                            since=args.since, before=args.before))
    print(f"replayed {count} undelivered callbacks")
    return 0


def cmd_registry_load(args: argparse.Namespace) -> int:
    """Load the operator's registry file (certificates, declared devices, geolocation payload formats)."""
    import orjson

    from backhaul import db
    from oss.registry import RegistryError, load_registry, parse_registry

    try:
        registry = parse_registry(orjson.loads(Path(args.file).read_bytes()))
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"backhaul registry load: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    except RegistryError as exc:
        for problem in exc.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        return 1

    async def main() -> dict[str, int]:
        pool = await db.create_pool(min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                await db.migrate(conn)
                return await load_registry(conn, registry)
        finally:
            await pool.close()

    try:
        counts = _asyncio_run(main())
    except RegistryError as exc:
        for problem in exc.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        return 1
    if counts is None:  # interrupted
        return 130
    print("registry loaded (created or updated): " + ", ".join(f"{n} {section}" for section, n in counts.items()))
    return 0


def cmd_stations_import(args: argparse.Namespace) -> int:
    """Create or update the base stations of a CSV file (README: Base stations: the operator's registry)."""
    import asyncpg

    from backhaul import db
    from oss.station_file import Imported, import_stations
    from radio.station_rows import StationFileError, read_stations

    try:
        rows = read_stations(args.file)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"backhaul stations import: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    except StationFileError as exc:
        for problem in exc.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"{args.file}: nothing imported", file=sys.stderr)
        return 1

    async def main() -> Imported:
        async with db.migrated() as conn:
            return await import_stations(conn, rows, group_id=args.group)

    try:
        done = _asyncio_run(main())
    except asyncpg.ForeignKeyViolationError:
        print(f"backhaul stations import: --group {args.group}: no such group; nothing imported", file=sys.stderr)
        return 1
    if done is None:  # interrupted
        return 130
    print(f"stations imported: {done.created} created, {done.updated} updated, {done.unchanged} unchanged")
    return 0


def cmd_console_invite(args: argparse.Namespace) -> int:
    """Print a one-use link that sets the console password of the user with this e-mail."""
    from backhaul import db
    from console import links
    from console.context import ConsoleSettings
    from oss.storage import console_sessions

    conf = settings()
    base = conf.console_public_url or f"http://{conf.api_host}:{conf.api_port}"

    async def main() -> str | None:
        pool = await db.create_pool(min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                await db.migrate(conn)
                user = await console_sessions.user_for_login(conn, args.email)
                if user is None:
                    return None
                purpose = links.INVITE if user["password_hash"] is None else links.RESET
                return await links.issue(conn, user["id"], purpose, ConsoleSettings.from_settings(conf), base)
        finally:
            await pool.close()

    link = _asyncio_run(main())
    if link is None:
        print(f"backhaul console invite: no user has the e-mail {args.email!r} (create it with POST /v2/users)",
              file=sys.stderr)
        return 1
    print(link)
    return 0


def cmd_coverage_calibrate(args: argparse.Namespace) -> int:
    """Fit every station's calibration (or one's) on the stored receptions, store and print the fits."""
    from backhaul import db
    from oss.calibrate import calibrate
    from radio.calibration import describe
    from radio.link_budget import radio_configuration

    try:
        rc = radio_configuration(args.radio_configuration or settings().radio_configuration)
    except ValueError as exc:
        print(f"backhaul coverage calibrate: {exc}", file=sys.stderr)
        return 2

    async def main() -> list:
        async with db.migrated() as conn, conn.transaction():
            return await calibrate(conn, rc, args.station, installation=args.installation)

    try:
        results = _asyncio_run(main())
    except ValueError as exc:
        print(f"backhaul coverage calibrate: {exc}", file=sys.stderr)
        return 1
    if results is None:  # interrupted
        return 130
    for result in results:
        print(describe(result))
    if not results:
        print("no base stations registered")
    return 0


def cmd_secret_key(args: argparse.Namespace) -> int:
    from backhaul.secretbox import new_key

    print(new_key())
    return 0


def cmd_rotate_secrets(args: argparse.Namespace) -> int:
    """Seal every stored callback secret again with the first configured key."""
    from backhaul import db
    from backhaul.callback_secrets import reseal_all
    from backhaul.secretbox import keyring

    box = keyring()

    async def main() -> int:
        async with db.migrated() as conn:
            return await reseal_all(conn, box)

    count = _asyncio_run(main())
    print(f"re-sealed the secrets of {count} callbacks with the first of the {box.size} key(s) from {box.source}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.run import main as bench_main

    return bench_main(args.rest)


def cmd_bench_console(args: argparse.Namespace) -> int:
    from bench.console_list import main as bench_console_main

    return bench_console_main(args.rest)


def cmd_bench_coverage(args: argparse.Namespace) -> int:
    from bench.coverage import main as bench_coverage_main

    return bench_coverage_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="backhaul", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the stack, workers, API, demo receiver and a simulated network")
    up.add_argument("--stations", type=int, default=None,
                    help="simulate a generated ring of this many stations instead of the stations file "
                         "(BACKHAUL_DEMO_STATIONS_FILE, default deploy/stations.example.csv)")
    up.add_argument("--devices", type=int, default=50)
    up.add_argument("--rate", type=float, default=5.0, help="simulated messages per second")
    up.add_argument("--no-simulate", action="store_true")
    up.add_argument("--scale", type=_scale_argument, default={}, metavar="PROCESS=COUNT,...",
                    help="instances of the stream stages, e.g. ingest=2,delivery=2 (ingest, router, delivery, "
                         "store; at most BACKHAUL_KAFKA_PARTITIONS share a stage's work)")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop everything `up` started")
    down.add_argument("--keep-stack", action="store_true", help="leave Kafka and PostgreSQL running")
    down.add_argument("--purge", action="store_true",
                      help="also delete Kafka's and PostgreSQL's data (deploy/local/*.sh reset)")
    down.set_defaults(func=cmd_down)

    st = sub.add_parser("status", help="what runs: state, pid, uptime, restarts, last exit of every process")
    st.add_argument("--json", action="store_true", help="the same as JSON")
    st.set_defaults(func=cmd_status)

    for verb in ("start", "stop", "restart"):
        c = sub.add_parser(verb, help=f"{verb} one supervised process (`backhaul up` runs the supervisor)")
        c.add_argument("name", help="a process (ingest, router, delivery, store, downlink, api, receiver, simulate) "
                                    "or a role it runs (relay, stations, acks, dispatch)")
        c.set_defaults(func=cmd_control)

    sc = sub.add_parser("scale", help="run more or fewer instances of a stream stage under the supervisor")
    sc.add_argument("counts", type=_scale_argument, metavar="PROCESS=COUNT,...",
                    help="e.g. ingest=3 (ingest, router, delivery, store)")
    sc.set_defaults(func=cmd_scale)

    sub.add_parser("supervise", help="run the supervisor of the plan `up` wrote (up starts it)"
                   ).set_defaults(func=cmd_supervise)

    w = sub.add_parser("worker", help="run stream roles: ingest, router, delivery, store, relay, stations, acks, dispatch")
    w.add_argument("--roles", required=True, help="comma-separated roles")
    w.add_argument("--metrics-port", type=int, default=None)
    w.set_defaults(func=cmd_worker)

    api = sub.add_parser("api", help="serve the REST API")
    api.add_argument("--port", type=int, default=None)
    api.set_defaults(func=cmd_api)

    r = sub.add_parser("demo-receiver", help="a demo customer server that shows callbacks")
    r.add_argument("--port", type=int, default=None)
    r.set_defaults(func=cmd_demo_receiver)

    sim = sub.add_parser("simulate", help="publish simulated frames")
    sim.add_argument("--stations", type=int, default=3, help="a generated ring of this many stations")
    sim.add_argument("--stations-file", metavar="CSV", default=None,
                     help="the registry's stations instead (its enabled ones; the file `backhaul stations import` "
                          "loads, e.g. deploy/stations.example.csv)")
    sim.add_argument("--devices", type=int, default=200)
    sim.add_argument("--messages", type=int, default=5, help="messages per device")
    sim.add_argument("--rate", type=float, default=100.0, help="messages per second (0 = as fast as possible)")
    sim.add_argument("--duration", type=float, default=None, help="seconds (overrides --messages)")
    sim.add_argument("--forever", action="store_true")
    sim.add_argument("--max-stations", type=int, default=3)
    sim.add_argument("--malformed", type=int, default=0, help="malformed frames to mix in")
    sim.add_argument("--register", metavar="NAME", default=None,
                     help="register the simulated stations and devices in PostgreSQL under this name first")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--radio", action="store_true",
                     help="stations hear a message by the link budget and shadowing (radio/), not the k nearest")
    sim.add_argument("--gateway", metavar="NAME", default=None,
                     help="publish as this gateway, on the gateway listener (deploy/local/kafka.sh add-gateway NAME)")
    sim.add_argument("--gateway-password-file", metavar="PATH", default=None,
                     help="the gateway's password (else BACKHAUL_GATEWAY_PASSWORD)")
    sim.add_argument("--metrics-port", type=int, default=None, help="serve /metrics and /status on this port")
    sim.set_defaults(func=cmd_simulate)

    sub.add_parser("migrate", help="apply SQL migrations and create topics").set_defaults(func=cmd_migrate)

    rp = sub.add_parser("replay", help="send undelivered callbacks again")
    rp.add_argument("--device")
    rp.add_argument("--callback")
    rp.add_argument("--since", type=int, help="epoch ms")
    rp.add_argument("--before", type=int, help="epoch ms")
    rp.set_defaults(func=cmd_replay)

    reg = sub.add_parser("registry", help="the operator's registry: certificates, declared devices, geolocation "
                                          "payload formats (README: The operator's registry)")
    reg_sub = reg.add_subparsers(dest="action", required=True)
    load = reg_sub.add_parser("load", help="create or update the entries of a JSON file "
                                           "(deploy/registry.example.json), in one transaction")
    load.add_argument("file")
    load.set_defaults(func=cmd_registry_load)

    stn = sub.add_parser("stations", help="the operator's base stations (README: Base stations: the operator's "
                                          "registry)")
    stn_sub = stn.add_subparsers(dest="action", required=True)
    imp = stn_sub.add_parser("import", help="create or update the stations of a CSV file "
                                            "(deploy/stations.example.csv), in one transaction")
    imp.add_argument("file")
    imp.add_argument("--group", help="the group of the stations it creates (default: none, the network's own)")
    imp.set_defaults(func=cmd_stations_import)

    con = sub.add_parser("console", help="the web console's users (README: The web console)")
    con_sub = con.add_subparsers(dest="console_command", required=True)
    invite = con_sub.add_parser("invite", help="print a one-use link that sets a user's console password")
    invite.add_argument("email", help="the user's e-mail (an API v2 user)")
    invite.set_defaults(func=cmd_console_invite)

    cov = sub.add_parser("coverage", help="coverage prediction (README: Coverage: prediction and calibration)")
    cov_sub = cov.add_subparsers(dest="coverage_command", required=True)
    cal = cov_sub.add_parser("calibrate", help="fit each station's correction (offset, slope) on the stored "
                                               "receptions of devices at known positions, store and print the fits")
    cal.add_argument("--station", metavar="ID", default=None, help="this station only (4 hex digits)")
    cal.add_argument("--radio-configuration", metavar="RC", default=None,
                     help="the radio configuration the receptions were made in (default: the setting "
                          "BACKHAUL_RADIO_CONFIGURATION, RC1 unless set)")
    cal.add_argument("--installation", choices=("OUTDOOR", "INDOOR", "UNDERGROUND"), default="OUTDOOR",
                     help="how the devices at known positions are installed (default OUTDOOR): a wrong choice "
                          "moves every offset by the difference of the installation losses")
    cal.set_defaults(func=cmd_coverage_calibrate)

    sub.add_parser("secret-key", help="print a new random key for BACKHAUL_SECRET_KEYS or a key file"
                   ).set_defaults(func=cmd_secret_key)
    sub.add_parser("rotate-secrets", help="seal every stored callback secret again with the first configured key "
                                          "(README: Secrets)").set_defaults(func=cmd_rotate_secrets)

    b = sub.add_parser("bench", help="benchmark the whole pipeline (see bench/README)", add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(func=cmd_bench)
    bc = sub.add_parser("bench-console", help="time the console's device list on 100,000 devices (see bench/README)",
                        add_help=False)
    bc.add_argument("rest", nargs=argparse.REMAINDER)
    bc.set_defaults(func=cmd_bench_console)
    bcov = sub.add_parser("bench-coverage", help="coverage prediction rate and tile render time (see bench/README)",
                          add_help=False)
    bcov.add_argument("rest", nargs=argparse.REMAINDER)
    bcov.set_defaults(func=cmd_bench_coverage)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        # argparse.REMAINDER does not take options that start with "--": bench parses its own.
        from bench.run import main as bench_main
        return bench_main(argv[1:])
    if argv[:1] == ["bench-console"]:
        from bench.console_list import main as bench_console_main
        return bench_console_main(argv[1:])
    if argv[:1] == ["bench-coverage"]:
        from bench.coverage import main as bench_coverage_main
        return bench_coverage_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (SecretKeyError, SealedSecretError) as exc:
        print(f"backhaul {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""All configuration, read once from environment variables with sane defaults.

Every tunable of Backhaul lives here so that an operator has one place to
look. Values are read when `Settings.from_env()` is called; `settings()`
caches the process-wide instance.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean (1/0, true/false, yes/no, on/off)")


def _env_list_float(name: str, default: str) -> tuple[float, ...]:
    raw = _env(name, default)
    try:
        return tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a comma-separated list of seconds") from None


def _env_gc_threshold(name: str, default: str) -> tuple[int, ...]:
    raw = _env(name, default)
    try:
        values = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        values = (-1,)
    if len(values) not in (0, 3) or any(v < 1 for v in values):
        raise ValueError(f"{name}={raw!r}: write three positive whole numbers (gen0,gen1,gen2), or nothing for "
                         f"Python's own")
    return values


@dataclass(frozen=True)
class Settings:
    """Process-wide configuration."""

    # Where the local stack keeps its data (git-ignored).
    state_dir: Path = PROJECT_ROOT / ".local"

    kafka_bootstrap: str = "127.0.0.1:29092"
    # SASL/SCRAM-SHA-512 user of Backhaul's own processes; no password = a broker without authentication.
    kafka_username: str = "backhaul"
    kafka_password: str | None = None
    # The listener base-station gateways publish frames to (each gateway with its own credentials).
    kafka_gateway: str = "127.0.0.1:29094"
    kafka_partitions: int = 4
    # Copies of every partition of Backhaul's topics, and how many must have a write before it is
    # acknowledged (producers use acks=all): 3 and 2 on a replicated cluster, so one broker may be lost
    # without losing a write or stopping one. The local stack's defaults follow its broker count
    # (BACKHAUL_KAFKA_BROKERS: min(brokers, 3), then 2 with 3 copies, else 1), as deploy/local/kafka.sh.
    kafka_replication_factor: int = 1
    kafka_min_insync_replicas: int = 1
    # The largest record a stage produces (key + value); the broker's default limit is 1 MiB per batch.
    kafka_max_record_bytes: int = 1_000_000
    # Prefix for every topic name, so tests can run in isolation on one broker.
    topic_prefix: str = ""
    # Consumer group membership (README "Recovery after a crash"). Every group member of a worker is a
    # static member (KIP-345) with this instance id; empty = derived from the host, the worker's roles
    # and a free slot on this machine (program.instances). 0 turns static membership off.
    instance_id: str = ""
    static_membership: bool = True
    # A static member restarted within its session gets its partitions back at once; past it they move.
    # 10 s outlasts a supervised restart (0.5 s pause + ~2 s start) and is the broker's usual range
    # (group.min.session.timeout.ms is 6 s). Heartbeats every second: the others learn of a rebalance
    # (a member left, one joined) within a second. A rebalance waits up to 30 s for every member to
    # rejoin: the delivery worker may take 20 s to settle what it holds before giving partitions up.
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_ms: int = 1_000
    kafka_rebalance_timeout_ms: int = 30_000

    database_url: str = "postgresql://backhaul@127.0.0.1:25432/backhaul"

    # Ingest
    advanced_window_s: float = 25.0
    window_check_interval_s: float = 0.2
    # How long after its broker append time a frame may take to become readable (the worker's clock
    # ahead of the broker's, replication to followers): an idle partition's windows close this much late.
    append_visible_s: float = 0.5
    daily_uplink_quota: int = 140
    ingest_batch_max: int = 2000

    # Poison records and size limits (README "Hostile input and poison records")
    # A frame record (key + value) over this is refused unparsed (`frame.size`); a valid one is ~250 bytes.
    max_frame_bytes: int = 4096
    # A stage tries a record that fails this many times before moving it to `dead-letters`.
    dead_letter_attempts: int = 3

    # Delivery
    callback_timeout_s: float = 10.0
    retry_schedule_s: tuple[float, ...] = (60.0, 120.0, 240.0)
    retry_jitter: float = 0.1
    batch_window_s: float = 1.0
    # A BATCH_URL batch goes at once when it holds this many lines (workers.batches): a busy callback's
    # request stays bounded (~100 KB with a typical linePattern; a given-up member's record carries it).
    batch_max_lines: int = 1000
    endpoint_concurrency: int = 16
    endpoint_rate_per_s: float = 200.0
    endpoint_burst: int = 400
    breaker_failures: int = 5
    breaker_open_s: float = 30.0
    # A claimed retry row is taken up again after this (the claimer died); must exceed a request's wait.
    retry_claim_s: float = 30.0
    # Deliveries one endpoint may hold in memory before more are parked in PostgreSQL.
    endpoint_queue: int = 256
    # Deliveries one worker holds at most (read, not yet settled); BATCH_URL members count until sent.
    delivery_in_flight: int = 5000
    # The worker processes' cyclic garbage collector (gc.set_threshold); () = Python's own (700, 10, 10).
    gc_threshold: tuple[int, ...] = (50_000, 50, 100)
    alert_every_s: float = 3600.0
    # Destination rule (backhaul.destinations): CIDRs callbacks may target despite it; empty = none.
    callback_allow_networks: str = ""
    # hosts(5)-format file the delivery workers answer names from before DNS; empty = none.
    callback_hosts_file: str = ""
    # How long a resolved callback host is reused (0 = resolve at every connection).
    callback_dns_cache_s: float = 60.0

    # Downlinks, counted from the uplink's own time (callback_language.downlink.DownlinkTiming): the
    # BIDIR answer is due within answer_s, the downlink at its station within transmit_s; it leaves for
    # the station lead_s before that, from the best station heard by then. The device listens listen_s
    # from transmit_s on: two downlinks of a device closer than that cannot both be heard.
    downlink_answer_s: float = 10.0
    downlink_transmit_s: float = 20.0
    downlink_lead_s: float = 1.0
    downlink_listen_s: float = 25.0
    daily_downlink_quota: int = 4

    # HTTP servers
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0  # 0 = the role's own port: metrics_port_base + its offset (program.roles)
    metrics_port_base: int = 9100
    demo_receiver_port: int = 8900
    # The base stations `backhaul up` registers and simulates (radio/station_rows.py); empty: a generated ring.
    demo_stations_file: str = str(PROJECT_ROOT / "deploy" / "stations.example.csv")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025

    log_level: str = "INFO"

    # Supervision by `backhaul up` (program.supervisor): a process that fails is started again after
    # restart_first_s, doubling up to restart_max_s; the pause starts over once it ran restart_stable_s.
    # crash_loop_exits failures within crash_loop_window_s: it is left stopped, with the reason.
    restart_first_s: float = 0.5
    restart_max_s: float = 30.0
    restart_stable_s: float = 30.0
    crash_loop_exits: int = 5
    crash_loop_window_s: float = 60.0

    # Keys that seal stored secrets (backhaul.secretbox): comma-separated, the first seals, all open.
    # Never shown (repr=False). Without them, `secret_key_file`; without that, <state_dir>/secret-keys.
    secret_keys: str = field(default="", repr=False)
    secret_key_file: str = ""

    # Operations support API
    keepalive_min_s: int = 1800
    api_auth_cache_s: float = 30.0
    # "name=count/seconds,..." overriding the defaults in oss.ratelimit
    api_rate_limits: str = ""
    api_bulk_chunk: int = 1000
    # Failed logins (oss.login_throttle): free failures per login / per client address (0 = no limit),
    # then a lock of login_first_lock_s doubling per failure up to login_max_lock_s; counts are
    # forgotten after login_forget_s without a failure.
    login_free_failures: int = 5
    login_address_free_failures: int = 20
    login_first_lock_s: float = 1.0
    login_max_lock_s: float = 900.0
    login_forget_s: float = 3600.0
    message_retention_days: int = 90
    # Coverage prediction (oss/api/coverage.py): the radio zone the network's stations and devices use
    # (radio.link_budget.RADIO_CONFIGURATIONS: RC1..RC7).
    radio_configuration: str = "RC1"
    # Request bodies: JSON (1 MiB holds the largest entity with room) and bulk uploads (CSV or JSON rows:
    # 100,000 rows of up to ~700 bytes); over the limit is a 413 naming it (README "Size limits").
    api_max_body_bytes: int = 1024 * 1024
    api_max_bulk_bytes: int = 80 * 1024 * 1024
    # All of one callback's templates together (URL, headers, body, line, e-mail, grammar), in UTF-8 bytes.
    max_template_bytes: int = 32 * 1024

    # Web console (console/, served by the API process under /console): sessions end after
    # console_idle_s without a request or console_session_max_s after login; invitation and reset
    # links last console_link_s. Cookies carry Secure unless console_cookie_secure is off (a plain-HTTP
    # deployment that is not on loopback: browsers accept Secure cookies from http://127.0.0.1 only).
    console_enabled: bool = True
    console_idle_s: float = 1800.0
    console_session_max_s: float = 12 * 3600.0
    console_link_s: float = 72 * 3600.0
    console_cookie_secure: bool = True
    console_min_password: int = 10
    # The address people reach the console at, for the invitation and reset links printed or logged.
    console_public_url: str = ""
    # The service map's base layer (console/pages/coverage.py): a tile URL template with {z}, {x} and {y}
    # (e.g. https://tile.example/{z}/{x}/{y}.png); empty = a plain graticule drawn by the console.
    map_base_url: str = ""

    @classmethod
    def from_env(cls) -> "Settings":
        """Read every setting from the environment (BACKHAUL_* variables)."""
        state_dir = Path(_env("BACKHAUL_STATE_DIR", str(PROJECT_ROOT / ".local")))
        brokers = _env_int("BACKHAUL_KAFKA_BROKERS", 1)
        replication = _env_int("BACKHAUL_KAFKA_REPLICATION_FACTOR", min(brokers, 3))
        in_sync = _env_int("BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS", 2 if replication >= 3 else 1)
        if not 1 <= in_sync <= replication:
            # More copies required in sync than exist: every acks=all write would be refused.
            raise ValueError(f"BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS={in_sync} must be 1 to "
                             f"BACKHAUL_KAFKA_REPLICATION_FACTOR ({replication})")
        return cls(
            state_dir=state_dir,
            kafka_bootstrap=_env("BACKHAUL_KAFKA", local_listeners(_env("BACKHAUL_KAFKA_PORT", "29092"), brokers)),
            kafka_username=_env("BACKHAUL_KAFKA_USERNAME", "backhaul"),
            kafka_password=os.environ.get("BACKHAUL_KAFKA_PASSWORD") or _local_kafka_password(state_dir),
            kafka_gateway=_env("BACKHAUL_KAFKA_GATEWAY",
                               local_listeners(_env("BACKHAUL_KAFKA_GATEWAY_PORT", "29094"), brokers)),
            kafka_partitions=_env_int("BACKHAUL_KAFKA_PARTITIONS", 4),
            kafka_replication_factor=replication,
            kafka_min_insync_replicas=in_sync,
            kafka_max_record_bytes=_env_int("BACKHAUL_KAFKA_MAX_RECORD_BYTES", 1_000_000),
            topic_prefix=_env("BACKHAUL_TOPIC_PREFIX", ""),
            instance_id=_env("BACKHAUL_INSTANCE_ID", "").strip(),
            static_membership=_env_bool("BACKHAUL_STATIC_MEMBERSHIP", True),
            kafka_session_timeout_ms=_env_int("BACKHAUL_KAFKA_SESSION_TIMEOUT_MS", 10_000),
            kafka_heartbeat_ms=_env_int("BACKHAUL_KAFKA_HEARTBEAT_MS", 1_000),
            kafka_rebalance_timeout_ms=_env_int("BACKHAUL_KAFKA_REBALANCE_TIMEOUT_MS", 30_000),
            database_url=_env("BACKHAUL_DATABASE_URL",
                              f"postgresql://backhaul@127.0.0.1:{_env('BACKHAUL_PG_PORT', '25432')}/backhaul"),
            advanced_window_s=_env_float("BACKHAUL_ADVANCED_WINDOW_S", 25.0),
            window_check_interval_s=_env_float("BACKHAUL_WINDOW_CHECK_INTERVAL_S", 0.2),
            # Replicated topics: a frame is readable once every in-sync copy has it, which took more than
            # 0.5 s while a broker stopped (README "DATA_ADVANCED windows on a replicated cluster").
            append_visible_s=_env_float("BACKHAUL_APPEND_VISIBLE_S", 0.5 if replication == 1 else 15.0),
            daily_uplink_quota=_env_int("BACKHAUL_DAILY_UPLINK_QUOTA", 140),
            ingest_batch_max=_env_int("BACKHAUL_INGEST_BATCH_MAX", 2000),
            max_frame_bytes=_env_int("BACKHAUL_MAX_FRAME_BYTES", 4096),
            dead_letter_attempts=max(1, _env_int("BACKHAUL_DEAD_LETTER_ATTEMPTS", 3)),
            callback_timeout_s=_env_float("BACKHAUL_CALLBACK_TIMEOUT_S", 10.0),
            retry_schedule_s=_env_list_float("BACKHAUL_RETRY_SCHEDULE_S", "60,120,240"),
            retry_jitter=_env_float("BACKHAUL_RETRY_JITTER", 0.1),
            batch_window_s=_env_float("BACKHAUL_BATCH_WINDOW_S", 1.0),
            batch_max_lines=max(1, _env_int("BACKHAUL_BATCH_MAX_LINES", 1000)),
            endpoint_concurrency=_env_int("BACKHAUL_ENDPOINT_CONCURRENCY", 16),
            endpoint_rate_per_s=_env_float("BACKHAUL_ENDPOINT_RATE_PER_S", 200.0),
            endpoint_burst=_env_int("BACKHAUL_ENDPOINT_BURST", 400),
            breaker_failures=_env_int("BACKHAUL_BREAKER_FAILURES", 5),
            breaker_open_s=_env_float("BACKHAUL_BREAKER_OPEN_S", 30.0),
            retry_claim_s=_env_float("BACKHAUL_RETRY_CLAIM_S", 30.0),
            endpoint_queue=_env_int("BACKHAUL_ENDPOINT_QUEUE", 256),
            delivery_in_flight=_env_int("BACKHAUL_DELIVERY_IN_FLIGHT", 5000),
            gc_threshold=_env_gc_threshold("BACKHAUL_GC_THRESHOLD", "50000,50,100"),
            alert_every_s=_env_float("BACKHAUL_ALERT_EVERY_S", 3600.0),
            callback_allow_networks=_env("BACKHAUL_CALLBACK_ALLOW_NETWORKS", ""),
            callback_hosts_file=_env("BACKHAUL_CALLBACK_HOSTS_FILE", ""),
            callback_dns_cache_s=_env_float("BACKHAUL_CALLBACK_DNS_CACHE_S", 60.0),
            downlink_answer_s=_env_float("BACKHAUL_DOWNLINK_ANSWER_S", 10.0),
            downlink_transmit_s=_env_float("BACKHAUL_DOWNLINK_TRANSMIT_S", 20.0),
            downlink_lead_s=_env_float("BACKHAUL_DOWNLINK_LEAD_S", 1.0),
            downlink_listen_s=_env_float("BACKHAUL_DOWNLINK_LISTEN_S", 25.0),
            daily_downlink_quota=_env_int("BACKHAUL_DAILY_DOWNLINK_QUOTA", 4),
            api_host=_env("BACKHAUL_API_HOST", "127.0.0.1"),
            api_port=_env_int("BACKHAUL_API_PORT", 8080),
            metrics_host=_env("BACKHAUL_METRICS_HOST", "127.0.0.1"),
            metrics_port=_env_int("BACKHAUL_METRICS_PORT", 0),
            metrics_port_base=_env_int("BACKHAUL_METRICS_PORT_BASE", 9100),
            demo_receiver_port=_env_int("BACKHAUL_DEMO_RECEIVER_PORT", 8900),
            demo_stations_file=_env("BACKHAUL_DEMO_STATIONS_FILE", str(PROJECT_ROOT / "deploy" / "stations.example.csv")),
            smtp_host=_env("BACKHAUL_SMTP_HOST", "127.0.0.1"),
            smtp_port=_env_int("BACKHAUL_SMTP_PORT", 8025),
            log_level=_env("BACKHAUL_LOG_LEVEL", "INFO"),
            restart_first_s=_env_float("BACKHAUL_RESTART_FIRST_S", 0.5),
            restart_max_s=_env_float("BACKHAUL_RESTART_MAX_S", 30.0),
            restart_stable_s=_env_float("BACKHAUL_RESTART_STABLE_S", 30.0),
            crash_loop_exits=max(1, _env_int("BACKHAUL_CRASH_LOOP_EXITS", 5)),
            crash_loop_window_s=_env_float("BACKHAUL_CRASH_LOOP_WINDOW_S", 60.0),
            secret_keys=_env("BACKHAUL_SECRET_KEYS", ""),
            secret_key_file=_env("BACKHAUL_SECRET_KEY_FILE", ""),
            keepalive_min_s=_env_int("BACKHAUL_KEEPALIVE_MIN_S", 1800),
            api_auth_cache_s=_env_float("BACKHAUL_API_AUTH_CACHE_S", 30.0),
            api_rate_limits=_env("BACKHAUL_API_RATE_LIMITS", ""),
            api_bulk_chunk=_env_int("BACKHAUL_API_BULK_CHUNK", 1000),
            login_free_failures=_env_int("BACKHAUL_LOGIN_FREE_FAILURES", 5),
            login_address_free_failures=_env_int("BACKHAUL_LOGIN_ADDRESS_FREE_FAILURES", 20),
            login_first_lock_s=_env_float("BACKHAUL_LOGIN_FIRST_LOCK_S", 1.0),
            login_max_lock_s=_env_float("BACKHAUL_LOGIN_MAX_LOCK_S", 900.0),
            login_forget_s=_env_float("BACKHAUL_LOGIN_FORGET_S", 3600.0),
            message_retention_days=_env_int("BACKHAUL_MESSAGE_RETENTION_DAYS", 90),
            radio_configuration=_env("BACKHAUL_RADIO_CONFIGURATION", "RC1"),
            api_max_body_bytes=_env_int("BACKHAUL_API_MAX_BODY_BYTES", 1024 * 1024),
            api_max_bulk_bytes=_env_int("BACKHAUL_API_MAX_BULK_BYTES", 80 * 1024 * 1024),
            console_enabled=_env_bool("BACKHAUL_CONSOLE", True),
            console_idle_s=_env_float("BACKHAUL_CONSOLE_IDLE_S", 1800.0),
            console_session_max_s=_env_float("BACKHAUL_CONSOLE_SESSION_MAX_S", 12 * 3600.0),
            console_link_s=_env_float("BACKHAUL_CONSOLE_LINK_S", 72 * 3600.0),
            console_cookie_secure=_env_bool("BACKHAUL_CONSOLE_COOKIE_SECURE", True),
            console_min_password=_env_int("BACKHAUL_CONSOLE_MIN_PASSWORD", 10),
            console_public_url=_env("BACKHAUL_CONSOLE_PUBLIC_URL", ""),
            map_base_url=_env("BACKHAUL_MAP_BASE_URL", "").strip(),
            max_template_bytes=_env_int("BACKHAUL_MAX_TEMPLATE_BYTES", 32 * 1024),
        )


def _local_kafka_password(state_dir: Path) -> str | None:
    """The password deploy/local/kafka.sh made for Backhaul's own Kafka user, if this is its stack."""
    try:
        return (state_dir / "kafka" / "internal.password").read_text().strip() or None
    except OSError:
        return None


def local_listeners(first_port: str, brokers: int) -> str:
    """The local stack's listeners of one kind (deploy/local/kafka.sh): node I on the first port + 10 (I - 1)."""
    return ",".join(f"127.0.0.1:{int(first_port) + 10 * i}" for i in range(max(brokers, 1)))


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()

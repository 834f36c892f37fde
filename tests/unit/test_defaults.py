"""Defaults are behaviour: the production value of every setting that changes what users see, in one place.

`DEFAULTS` holds each such setting's default as the README's Configuration section documents it
(`BACKHAUL_NAME` (value...)), and the value `Settings.from_env()` must give in an environment without
any BACKHAUL_ variable. A default changed in `backhaul/settings.py` alone fails here; so does one
changed in the README alone. `LIMITS` does the same for the fixed limits users meet that are not
settings (rate limits, paging, HTTP server limits...), each with the README sentence that states it.

Also checked: every field of `Settings` is either here or named as not behaviour (where things are,
who one is, how much is logged); settings.py and the Configuration section name the same variables;
the dataclass's own defaults and the ones `from_env` applies agree, and so do the fallbacks other
modules keep for their tests (retry policy, login policy, ingest engine, alert limiter).
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import re
from dataclasses import dataclass
from typing import Any

import pytest

from backhaul.settings import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text()
SETTINGS_SOURCE = (PROJECT_ROOT / "backhaul" / "settings.py").read_text()


@dataclass(frozen=True)
class Default:
    field: str  # the Settings attribute
    variable: str  # its environment variable
    value: Any  # what production runs with
    documented: str  # how the README writes it: the start of the parentheses after the variable


KIB, MIB = 1024, 1024 * 1024
DEFAULTS = (
    # Engine
    Default("advanced_window_s", "BACKHAUL_ADVANCED_WINDOW_S", 25.0, "25"),
    Default("daily_uplink_quota", "BACKHAUL_DAILY_UPLINK_QUOTA", 140, "140"),
    Default("append_visible_s", "BACKHAUL_APPEND_VISIBLE_S", 0.5, "0.5"),
    Default("window_check_interval_s", "BACKHAUL_WINDOW_CHECK_INTERVAL_S", 0.2, "0.2"),
    Default("ingest_batch_max", "BACKHAUL_INGEST_BATCH_MAX", 2000, "2000"),
    Default("kafka_partitions", "BACKHAUL_KAFKA_PARTITIONS", 4, "4"),
    Default("kafka_replication_factor", "BACKHAUL_KAFKA_REPLICATION_FACTOR", 1, "1 with one broker"),
    Default("kafka_min_insync_replicas", "BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS", 1, "1"),
    # Delivery
    Default("callback_timeout_s", "BACKHAUL_CALLBACK_TIMEOUT_S", 10.0, "10"),
    Default("retry_schedule_s", "BACKHAUL_RETRY_SCHEDULE_S", (60.0, 120.0, 240.0), "60,120,240"),
    Default("retry_jitter", "BACKHAUL_RETRY_JITTER", 0.1, "0.1"),
    Default("batch_window_s", "BACKHAUL_BATCH_WINDOW_S", 1.0, "1"),
    Default("batch_max_lines", "BACKHAUL_BATCH_MAX_LINES", 1000, "1000"),
    Default("endpoint_concurrency", "BACKHAUL_ENDPOINT_CONCURRENCY", 16, "16"),
    Default("endpoint_rate_per_s", "BACKHAUL_ENDPOINT_RATE_PER_S", 200.0, "200"),
    Default("endpoint_burst", "BACKHAUL_ENDPOINT_BURST", 400, "400"),
    Default("breaker_failures", "BACKHAUL_BREAKER_FAILURES", 5, "5"),
    Default("breaker_open_s", "BACKHAUL_BREAKER_OPEN_S", 30.0, "30"),
    Default("endpoint_queue", "BACKHAUL_ENDPOINT_QUEUE", 256, "256"),
    Default("delivery_in_flight", "BACKHAUL_DELIVERY_IN_FLIGHT", 5000, "5000"),
    Default("gc_threshold", "BACKHAUL_GC_THRESHOLD", (50_000, 50, 100), "50000,50,100"),
    Default("retry_claim_s", "BACKHAUL_RETRY_CLAIM_S", 30.0, "30"),
    Default("alert_every_s", "BACKHAUL_ALERT_EVERY_S", 3600.0, "3600"),
    # Downlinks
    Default("downlink_answer_s", "BACKHAUL_DOWNLINK_ANSWER_S", 10.0, "10"),
    Default("downlink_transmit_s", "BACKHAUL_DOWNLINK_TRANSMIT_S", 20.0, "20"),
    Default("downlink_lead_s", "BACKHAUL_DOWNLINK_LEAD_S", 1.0, "1"),
    Default("downlink_listen_s", "BACKHAUL_DOWNLINK_LISTEN_S", 25.0, "25"),
    Default("daily_downlink_quota", "BACKHAUL_DAILY_DOWNLINK_QUOTA", 4, "4"),
    # Callback destinations
    Default("callback_allow_networks", "BACKHAUL_CALLBACK_ALLOW_NETWORKS", "", "empty"),
    Default("callback_hosts_file", "BACKHAUL_CALLBACK_HOSTS_FILE", "", "empty"),
    Default("callback_dns_cache_s", "BACKHAUL_CALLBACK_DNS_CACHE_S", 60.0, "60"),
    # Logins
    Default("login_free_failures", "BACKHAUL_LOGIN_FREE_FAILURES", 5, "5"),
    Default("login_address_free_failures", "BACKHAUL_LOGIN_ADDRESS_FREE_FAILURES", 20, "20"),
    Default("login_first_lock_s", "BACKHAUL_LOGIN_FIRST_LOCK_S", 1.0, "1"),
    Default("login_max_lock_s", "BACKHAUL_LOGIN_MAX_LOCK_S", 900.0, "900"),
    Default("login_forget_s", "BACKHAUL_LOGIN_FORGET_S", 3600.0, "3600"),
    # API
    Default("keepalive_min_s", "BACKHAUL_KEEPALIVE_MIN_S", 1800, "1800"),
    Default("api_auth_cache_s", "BACKHAUL_API_AUTH_CACHE_S", 30.0, "30"),
    Default("api_rate_limits", "BACKHAUL_API_RATE_LIMITS", "", "empty"),
    Default("api_bulk_chunk", "BACKHAUL_API_BULK_CHUNK", 1000, "1000"),
    Default("message_retention_days", "BACKHAUL_MESSAGE_RETENTION_DAYS", 90, "90"),
    Default("radio_configuration", "BACKHAUL_RADIO_CONFIGURATION", "RC1", "RC1"),
    # Limits against hostile input and poison records
    Default("max_frame_bytes", "BACKHAUL_MAX_FRAME_BYTES", 4096, "4096"),
    Default("dead_letter_attempts", "BACKHAUL_DEAD_LETTER_ATTEMPTS", 3, "3"),
    Default("kafka_max_record_bytes", "BACKHAUL_KAFKA_MAX_RECORD_BYTES", 1_000_000, "1000000"),
    Default("api_max_body_bytes", "BACKHAUL_API_MAX_BODY_BYTES", 1 * MIB, "1 MiB"),
    Default("api_max_bulk_bytes", "BACKHAUL_API_MAX_BULK_BYTES", 80 * MIB, "80 MiB"),
    Default("max_template_bytes", "BACKHAUL_MAX_TEMPLATE_BYTES", 32 * KIB, "32 KiB"),
    # Console
    Default("console_enabled", "BACKHAUL_CONSOLE", True, "1"),
    Default("console_idle_s", "BACKHAUL_CONSOLE_IDLE_S", 1800.0, "1800"),
    Default("console_session_max_s", "BACKHAUL_CONSOLE_SESSION_MAX_S", 43200.0, "43200"),
    Default("console_link_s", "BACKHAUL_CONSOLE_LINK_S", 259200.0, "259200"),
    Default("console_cookie_secure", "BACKHAUL_CONSOLE_COOKIE_SECURE", True, "1"),
    Default("console_min_password", "BACKHAUL_CONSOLE_MIN_PASSWORD", 10, "10"),
    Default("map_base_url", "BACKHAUL_MAP_BASE_URL", "", "empty"),
    # Consumer groups and supervision
    Default("instance_id", "BACKHAUL_INSTANCE_ID", "", "empty"),
    Default("static_membership", "BACKHAUL_STATIC_MEMBERSHIP", True, "1"),
    Default("kafka_session_timeout_ms", "BACKHAUL_KAFKA_SESSION_TIMEOUT_MS", 10_000, "10000"),
    Default("kafka_heartbeat_ms", "BACKHAUL_KAFKA_HEARTBEAT_MS", 1_000, "1000"),
    Default("kafka_rebalance_timeout_ms", "BACKHAUL_KAFKA_REBALANCE_TIMEOUT_MS", 30_000, "30000"),
    Default("restart_first_s", "BACKHAUL_RESTART_FIRST_S", 0.5, "0.5"),
    Default("restart_max_s", "BACKHAUL_RESTART_MAX_S", 30.0, "30"),
    Default("restart_stable_s", "BACKHAUL_RESTART_STABLE_S", 30.0, "30"),
    Default("crash_loop_exits", "BACKHAUL_CRASH_LOOP_EXITS", 5, "5"),
    Default("crash_loop_window_s", "BACKHAUL_CRASH_LOOP_WINDOW_S", 60.0, "60"),
)
# Settings that say where things are, who a process is, or how much it logs: not behaviour.
NOT_BEHAVIOUR = {
    "state_dir": "where the local stack keeps its data",
    "kafka_bootstrap": "an address", "kafka_gateway": "an address", "database_url": "an address",
    "api_host": "an address", "metrics_host": "an address", "smtp_host": "an address",
    "api_port": "a port", "metrics_port": "a port", "metrics_port_base": "a port",
    "demo_receiver_port": "a port", "smtp_port": "a port",
    "demo_stations_file": "where the demo's base stations are (a file)",
    "kafka_username": "a credential", "kafka_password": "a credential",
    "secret_keys": "a credential", "secret_key_file": "where the credentials are",
    "topic_prefix": "a name (tests isolate their topics with it)",
    "log_level": "how much is logged",
    "console_public_url": "an address (the links the console prints start with it)",
}


@dataclass(frozen=True)
class Limit:
    where: str  # module:name of the constant
    value: Any
    documented: str  # the README sentence (whitespace aside) that states it


LIMITS = (
    Limit("oss.ratelimit:DEFAULTS",
          {"device-messages": (1, 1.0), "device-list": (50, 10.0), "bulk": (5, 600.0), "default": (0, 0.0)},
          "`device-messages=1/1,device-list=50/10,bulk=5/600`"),
    Limit("oss.paging:MAX_LIMIT", 100, "at most 100 items a page (`limit` 1 to 100, default 100)"),
    Limit("oss.paging:MAX_PAGE_ID", 200, "`pageId` (at most 200 characters)"),
    Limit("oss.http_server:REQUEST_LINE_LIMIT", 16 * KIB, "a request line over 16 KiB (414)"),
    Limit("oss.http_server:HEADER_FIELD_LIMIT", 8190, "a header over 8190 bytes"),
    Limit("oss.http_server:MAX_HEADERS", 128, "more than 128 headers (431)"),
    Limit("oss.bulk_rows:MAX_ROWS", 100_000, "100,000 rows, the most one operation takes"),
    Limit("oss.errors:ServiceUnavailable.RETRY_AFTER_S", 5, "503 with `Retry-After: 5`"),
    Limit("workers.attempt:ANSWER_BYTES", KIB, "1 KiB of the answer"),
    Limit("ingest.engine:CLOSED_MEMORY", 16, "The last 16 closed windows of a device are remembered"),
)


@pytest.fixture
def production(monkeypatch) -> Settings:
    """The settings of a process started without any BACKHAUL_ variable."""
    for name in [n for n in os.environ if n.startswith("BACKHAUL_")]:
        monkeypatch.delenv(name)
    return Settings.from_env()


def configuration_section() -> str:
    return README[README.index("\n## Configuration\n"):README.index("\n## Performance\n")]


def documented_values() -> dict[str, str]:
    """`BACKHAUL_NAME` -> the text of the parentheses right after it in the Configuration section (which
    may hold parentheses of their own, one level deep)."""
    text = " ".join(configuration_section().split())
    found = re.findall(r"`(BACKHAUL_[A-Z0-9_]+)` \(((?:[^()]|\([^()]*\))*)\)", text)
    return {name: value.replace("`", "") for name, value in found}


def test_production_defaults(production: Settings):
    wrong = {d.field: (getattr(production, d.field), d.value) for d in DEFAULTS
             if getattr(production, d.field) != d.value or type(getattr(production, d.field)) is not type(d.value)}
    assert not wrong, f"production defaults changed (setting: (now, expected)): {wrong}; " \
                      f"change README's Configuration section and DEFAULTS here together"


def test_readme_documents_each_default():
    shown = documented_values()
    wrong = {}
    for d in DEFAULTS:
        text = shown.get(d.variable)
        if text is None or not re.match(re.escape(d.documented) + r"(?=$|[:;, ])", text):
            wrong[d.variable] = (text, d.documented)
    assert not wrong, f"README's Configuration section does not state these defaults (variable: (README, " \
                      f"expected)): {wrong}"


def test_each_variable_belongs_to_its_field(production: Settings, monkeypatch):
    """The variable named in DEFAULTS is the one that sets the field (a typo would assert nothing)."""
    for d in DEFAULTS:
        value = {bool: "0", str: "x.example"}.get(type(d.value), "7")
        if isinstance(d.value, tuple):
            value = ",".join(["7", "8", "9"][:len(d.value)]) if len(d.value) == 3 else "7,8"
        # Settings checked against another need it set as well: copies in sync are at most the copies.
        companions = {"BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS": {"BACKHAUL_KAFKA_REPLICATION_FACTOR": "9"}}
        for name, companion in companions.get(d.variable, {}).items():
            monkeypatch.setenv(name, companion)
        monkeypatch.setenv(d.variable, value)
        assert getattr(Settings.from_env(), d.field) != d.value, f"{d.variable} does not set {d.field}"
        monkeypatch.delenv(d.variable)
        for name in companions.get(d.variable, {}):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("raw", ["7,8", "0,10,10", "a,b,c", "1,2,3,4"])
def test_a_gc_threshold_that_is_not_three_positive_numbers_is_refused_naming_it(raw, monkeypatch):
    monkeypatch.setenv("BACKHAUL_GC_THRESHOLD", raw)
    with pytest.raises(ValueError, match=f"BACKHAUL_GC_THRESHOLD='{raw}': write three positive whole numbers"):
        Settings.from_env()
    monkeypatch.setenv("BACKHAUL_GC_THRESHOLD", "")
    assert Settings.from_env().gc_threshold == (), "empty: Python's own"


def test_every_setting_is_behaviour_or_named_as_not():
    fields = {f.name for f in dataclasses.fields(Settings)}
    listed = {d.field for d in DEFAULTS}
    assert not listed & set(NOT_BEHAVIOUR), listed & set(NOT_BEHAVIOUR)
    assert fields == listed | set(NOT_BEHAVIOUR), \
        f"settings in neither DEFAULTS nor NOT_BEHAVIOUR: {sorted(fields - listed - set(NOT_BEHAVIOUR))}; " \
        f"listed here but not settings: {sorted((listed | set(NOT_BEHAVIOUR)) - fields)}"


def test_settings_and_readme_name_the_same_variables():
    read = set(re.findall(r"BACKHAUL_[A-Z0-9_]+", SETTINGS_SOURCE))
    documented = set(re.findall(r"BACKHAUL_[A-Z0-9_]+", configuration_section()))
    assert read - documented == set(), f"read in backhaul/settings.py, missing from README's Configuration: " \
                                       f"{sorted(read - documented)}"
    assert documented - read == set(), f"in README's Configuration, read nowhere in backhaul/settings.py: " \
                                       f"{sorted(documented - read)}"


def test_the_dataclass_and_the_environment_give_the_same_defaults(production: Settings):
    written_twice = {f.name: (getattr(Settings(), f.name), getattr(production, f.name))
                     for f in dataclasses.fields(Settings)
                     if f.name != "kafka_password" and getattr(Settings(), f.name) != getattr(production, f.name)}
    assert not written_twice, f"Settings() and Settings.from_env() disagree (field: (dataclass, env)): " \
                              f"{written_twice}"


def test_fallbacks_elsewhere_agree_with_the_settings(production: Settings):
    """Classes that production builds from the settings keep defaults of their own (for tests); they must
    not drift from what production runs with."""
    from ingest.engine import IngestEngine
    from oss.login_throttle import LoginPolicy
    from workers.mail import AlertLimiter
    from workers.retry import RetryPolicy

    assert RetryPolicy() == RetryPolicy(production.retry_schedule_s, production.retry_jitter,
                                        production.callback_timeout_s)
    assert LoginPolicy() == LoginPolicy.from_settings(production)
    engine = inspect.signature(IngestEngine).parameters
    assert (engine["window_s"].default, engine["daily_quota"].default) == \
        (production.advanced_window_s, production.daily_uplink_quota)
    assert AlertLimiter().window_s == production.alert_every_s


@pytest.mark.parametrize("limit", LIMITS, ids=lambda limit: limit.where)
def test_fixed_limits(limit: Limit):
    module, _, path = limit.where.partition(":")
    value: Any = importlib.import_module(module)
    for part in path.split("."):
        value = getattr(value, part)
    assert value == limit.value, f"{limit.where} is {value!r}, the README says {limit.documented!r}"
    assert " ".join(limit.documented.split()) in " ".join(README.split()), \
        f"README no longer says {limit.documented!r} ({limit.where})"

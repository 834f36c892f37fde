"""Sealed secrets in PostgreSQL: migration 005 seals what earlier versions kept in clear, `backhaul
rotate-secrets` reseals everything with the first key (and stops, changing nothing, on a value no key
opens), and the processes that need the key refuse to start without it."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import uuid

import asyncpg
import orjson
import pytest

from backhaul import db
from backhaul.secretbox import Keyring, SealedSecretError, keyring, new_key
from tests.conftest import ADMIN_DSN, ROOT

pytestmark = pytest.mark.integration

LEGACY_SIGNING = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "program.cli", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
async def legacy_db(stack):
    """A database at migration 004, the last that stored secrets in clear."""
    name = f"bh_legacy_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = urllib.parse.urlunsplit(urllib.parse.urlsplit(ADMIN_DSN)._replace(path=f"/{name}"))
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz "
                       "NOT NULL DEFAULT now())")
    for file, sql in db.migration_files():
        if file < "005":
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations(name) VALUES ($1)", file)
    try:
        yield conn
    finally:
        await conn.close()
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migration_seals_the_secrets_stored_in_clear(legacy_db):
    conn = legacy_db
    await conn.execute("INSERT INTO groups(id, name) VALUES ('g', 'g')")
    await conn.execute("INSERT INTO device_types(id, name, group_id) VALUES ('t', 't', 'g')")
    await conn.execute(
        "INSERT INTO callbacks(id, device_type_id, url, headers, signing_secret) VALUES "
        "('cb', 't', 'http://bob:hunter2-secret@127.0.0.1:9/x?d={device}', "
        "'{\"Authorization\": \"Bearer tok-legacy-1\", \"X-Tenant\": \"{device}\"}', $1), "
        "('plain', 't', 'http://127.0.0.1:9/p', '{\"X-A\": \"1\"}', NULL)", LEGACY_SIGNING)
    request = {"method": "GET", "url": "http://127.0.0.1:9/x", "auth": ["bob", "hunter2-secret"],
               "headers": {"Authorization": "Bearer tok-legacy-1", "X-Tenant": "A1"}}
    delivery = orjson.dumps({"id": "d1", "channel": "URL", "callbackId": "cb", "request": request}).decode()
    await conn.execute("INSERT INTO delivery_retries(delivery_id, due_at, attempts, delivery) "
                       "VALUES ('d1', now(), 1, $1::jsonb)", delivery)
    await conn.execute(
        "INSERT INTO undelivered_callbacks(delivery_id, callback_id, time, status, callback, delivery) "
        "VALUES ('d1', 'cb', 0, 500, $1::jsonb, $2::jsonb)",
        orjson.dumps({"url": request["url"], "headers": request["headers"]}).decode(), delivery)

    assert "007_sealed_secrets.sql" in await db.migrate(conn)

    box = keyring()
    cb = await conn.fetchrow("SELECT url, headers::text, url_credentials, secret_headers::text, signing_secret "
                             "FROM callbacks WHERE id = 'cb'")
    assert cb["url"] == "http://127.0.0.1:9/x?d={device}" and orjson.loads(cb["headers"]) == {"X-Tenant": "{device}"}
    assert box.open(cb["url_credentials"]) == "bob:hunter2-secret"
    assert {n: box.open(t) for n, t in orjson.loads(cb["secret_headers"]).items()} == {
        "Authorization": "Bearer tok-legacy-1"}
    assert box.open(cb["signing_secret"]) == LEGACY_SIGNING
    plain = await conn.fetchrow("SELECT url, headers::text, url_credentials, secret_headers::text, signing_secret "
                                "FROM callbacks WHERE id = 'plain'")
    assert (plain["url"], orjson.loads(plain["headers"]), plain["url_credentials"], plain["secret_headers"],
            plain["signing_secret"]) == ("http://127.0.0.1:9/p", {"X-A": "1"}, None, "{}", None)

    kept = [await conn.fetchval("SELECT delivery::text FROM delivery_retries"),
            await conn.fetchval("SELECT delivery::text FROM undelivered_callbacks"),
            await conn.fetchval("SELECT callback::text FROM undelivered_callbacks")]
    for text in kept:
        assert "hunter2" not in text and "tok-legacy-1" not in text and "X-Tenant" in text
    assert orjson.loads(kept[0])["request"]["headers"] == {"X-Tenant": "A1"}
    assert "auth" not in orjson.loads(kept[0])["request"]


async def test_rotate_secrets_reseals_with_the_first_key(isolated):
    old, new, unrelated = new_key(), new_key(), new_key()
    box = Keyring([old], "old")
    conn = await db.connect()
    try:
        await conn.execute("INSERT INTO groups(id, name) VALUES ('g', 'g')")
        await conn.execute("INSERT INTO device_types(id, name, group_id) VALUES ('t', 't', 'g')")
        await conn.execute(
            "INSERT INTO callbacks(id, device_type_id, url, url_credentials, secret_headers, signing_secret, "
            "channel_secrets) VALUES ('cb', 't', 'http://127.0.0.1:9/', $1, $2::jsonb, $3, $4::jsonb), "
            "('none', 't', 'http://127.0.0.1:9/', NULL, '{}', NULL, '{}')", box.seal("bob:pw-1"),
            orjson.dumps({"X-Api-Key": box.seal("k-1")}).decode(), box.seal(LEGACY_SIGNING),
            orjson.dumps({"password": box.seal("mq-1")}).decode())

        async def sealed() -> tuple:
            r = await conn.fetchrow("SELECT url_credentials, secret_headers::text, signing_secret, "
                                    "channel_secrets::text FROM callbacks WHERE id = 'cb'")
            return (r["url_credentials"], orjson.loads(r["secret_headers"])["X-Api-Key"], r["signing_secret"],
                    orjson.loads(r["channel_secrets"])["password"])

        before = await sealed()
        refused = cli("rotate-secrets", env={**isolated.env, "BACKHAUL_SECRET_KEYS": f"{new},{unrelated}"})
        assert refused.returncode == 2 and "callback cb" in refused.stderr and "cannot be opened" in refused.stderr
        assert old not in refused.stderr and new not in refused.stderr
        assert await sealed() == before, "a failed rotation changes nothing"

        done = cli("rotate-secrets", env={**isolated.env, "BACKHAUL_SECRET_KEYS": f"{new},{old}"})
        assert done.returncode == 0, done.stderr
        assert "re-sealed the secrets of 1 callbacks" in done.stdout
        after = await sealed()
        assert [Keyring([new], "new").open(t) for t in after] == ["bob:pw-1", "k-1", LEGACY_SIGNING, "mq-1"]
        for token in after:
            with pytest.raises(SealedSecretError):
                Keyring([old], "old").open(token)
    finally:
        await conn.close()


@pytest.mark.parametrize("argv", [["worker", "--roles", "delivery"], ["api"], ["rotate-secrets"]])
def test_processes_that_need_the_key_refuse_to_start_without_it(tmp_path, argv):
    missing = cli(*argv, env={"BACKHAUL_SECRET_KEY_FILE": str(tmp_path / "no-such-file"),
                              "BACKHAUL_SECRET_KEYS": ""}, timeout=30)
    assert missing.returncode == 2
    assert f"BACKHAUL_SECRET_KEY_FILE={tmp_path / 'no-such-file'} does not exist" in missing.stderr
    none = cli(*argv, env={"BACKHAUL_STATE_DIR": str(tmp_path), "BACKHAUL_SECRET_KEYS": "",
                           "BACKHAUL_SECRET_KEY_FILE": ""}, timeout=30)
    assert none.returncode == 2 and "set BACKHAUL_SECRET_KEYS or BACKHAUL_SECRET_KEY_FILE" in none.stderr

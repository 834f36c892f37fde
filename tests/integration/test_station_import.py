"""`backhaul stations import FILE.csv` on PostgreSQL: creates or updates, and a bad file changes nothing."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from backhaul import kafka
from backhaul import settings as settings_module
from oss.storage.base_stations import coverage_version
from program import cli
from tests.api_support import fresh_database

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "stations.example.csv"


def stations_import(dsn: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "program.cli", "stations", "import", str(path)], cwd=ROOT,
                          env={**os.environ, "BACKHAUL_DATABASE_URL": dsn}, capture_output=True, text=True,
                          timeout=60)


async def test_import_creates_updates_and_refuses_a_bad_file_whole(stack, tmp_path):
    dsn = await fresh_database("backhaul_test_station_import")
    done = stations_import(dsn, EXAMPLE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stations imported: 12 created, 0 updated, 0 unchanged"
    conn = await asyncpg.connect(dsn)
    try:
        rows = {r["id"]: dict(r) for r in await conn.fetch("SELECT * FROM base_stations")}
        assert len(rows) == 12 and rows["A00B"]["state"] == "planned" and rows["A00B"]["group_id"] is None
        assert (rows["A000"]["environment"], rows["A000"]["antenna_height_m"]) == ("dense-urban", 35)
        version = await coverage_version(conn)

        lines = EXAMPLE.read_text().splitlines()
        edited = tmp_path / "edited.csv"
        edited.write_text("\n".join([lines[0], lines[1].replace(",35,", ",50,"), lines[2],
                                     "b00c,New mast,43.7,1.5,30,6,2,rural,planned"]) + "\n")
        done = stations_import(dsn, edited)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "stations imported: 1 created, 1 updated, 1 unchanged"
        assert await conn.fetchval("SELECT antenna_height_m FROM base_stations WHERE id = 'A000'") == 50
        assert await conn.fetchval("SELECT name FROM base_stations WHERE id = 'B00C'") == "New mast"
        assert await coverage_version(conn) != version

        before = await conn.fetch("SELECT * FROM base_stations ORDER BY id")
        bad = tmp_path / "bad.csv"
        bad.write_text("\n".join([lines[0], lines[2].replace("Compans-Caffarelli", "renamed"),
                                  "A0FF,far,123,1.5,30,6,2,rural,enabled", "A0FE,odd,43,1.5,30,6,2,desert,on"]) + "\n")
        done = stations_import(dsn, bad)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.splitlines() == [
            f"{bad}: line 3: lat: 123 is not a latitude (-90..90)",
            f"{bad}: line 4: environment: 'desert' is not one of dense-urban, urban, suburban, rural",
            f"{bad}: line 4: state: 'on' is not one of enabled, disabled, planned",
            f"{bad}: nothing imported"]
        assert await conn.fetch("SELECT * FROM base_stations ORDER BY id") == before
    finally:
        await conn.close()


async def test_the_demo_registers_and_simulates_the_stations_file(stack, tmp_path, monkeypatch):
    """`backhaul up`'s seeding: the file's stations in the operator's group, the simulator on its enabled ones."""
    dsn = await fresh_database("backhaul_test_station_demo")
    monkeypatch.setenv("BACKHAUL_DATABASE_URL", dsn)
    monkeypatch.setenv("BACKHAUL_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("BACKHAUL_DEMO_STATIONS_FILE", raising=False)

    async def no_topics() -> None:  # the demo's topics are not this test's subject
        return None

    monkeypatch.setattr(kafka, "ensure_topics", no_topics)
    settings_module.settings.cache_clear()
    try:
        args = argparse.Namespace(stations=None, devices=6)
        creds = await cli._prepare_demo(args)
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT id, name, state, group_id FROM base_stations ORDER BY id")
        finally:
            await conn.close()
        lines = EXAMPLE.read_text().splitlines()[1:]
        assert [(r["id"], r["name"], r["state"]) for r in rows] == [tuple(line.split(",")[i] for i in (0, 1, 8))
                                                                    for line in lines]
        assert {r["group_id"] for r in rows} == {creds["group"]}
        network = cli._simulated_network(args, cli._demo_stations_file(args))
        assert [s.id for s in network.stations] == [r["id"] for r in rows if r["state"] == "enabled"]
        assert cli._demo_stations_file(argparse.Namespace(stations=4)) is None  # `up --stations 4`: generated
    finally:
        settings_module.settings.cache_clear()

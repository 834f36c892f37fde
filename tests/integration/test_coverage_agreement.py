"""End to end: the simulator's radio and the coverage prediction agree, and calibration finds a biased
station from stored receptions.

The stations live in PostgreSQL (the registry); both the simulator's RadioModel and the prediction read
them through `oss.storage.base_stations.sites`.

(a) Agreement. 2,000 messages (500 indoor devices spread over the stations' area, 4 each) go through
    `simulator.network.message_frames` with the radio model; the number of stations that hear each one
    is compared with the prediction's expectation under the same shadowing: for a device, the sum over
    stations of P(RSSI >= sensitivity) = Φ(margin / SHADOWING_SIGMA_DB). Tolerance: the means agree
    within 3 standard errors of the mean difference (0.017 station here), and each station's share of
    messages heard matches its mean probability within 4 standard errors (7 comparisons).
(b) Calibration. One station hears 6 dB better in the simulator than the registry says. 2,500 messages of
    500 static devices (outdoor, positions registered) are stored as the store stage stores DATA_ADVANCED
    (its own code writes them); `backhaul coverage calibrate` finds +6 dB within 1 dB (the offset's
    standard error here is about 0.25 dB: 20 seeds gave 6.1 ± 0.35 dB with half the messages), the held-out
    RMSE and |bias| improve, the unbiased stations get about nothing, and the prediction then uses the fit.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from backhaul import db
from oss.calibrate import calibrate
from oss.storage import base_stations, station_calibrations
from program.demo.seed import seed_network
from radio.calibration import MIN_RECEPTIONS, Fit, TooFew
from radio.link_budget import SHADOWING_SIGMA_DB, radio_configuration
from radio.predict import Sites, margins_db
from schemas.advanced_messages import Duplicate, Rinfo, advanced_message
from schemas.frames import FrameRecord
from simulator.network import CENTER, Device, Network, Station, message_frames
from simulator.radio_model import RadioModel
from store.stage import Rows, StoreStage

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RC1 = radio_configuration("RC1")
KM_DEG = 1 / 111.0


def around(km_north: float, km_east: float) -> tuple[float, float]:
    return (round(CENTER[0] + km_north * KM_DEG, 6),
            round(CENTER[1] + km_east * KM_DEG / np.cos(np.radians(CENTER[0])), 6))


def scattered(n: int, radius_km: float, seed: int) -> list[Device]:
    """Devices uniformly over a disc around the centre."""
    rng = random.Random(seed)
    devices = []
    for i in range(n):
        r, a = radius_km * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        lat, lng = around(r * np.sin(a), r * np.cos(a))
        devices.append(Device(f"{0x200000 + i:X}", lat, lng, seq=rng.randrange(4096)))
    return devices


async def registered(conn, stations: list[Station], devices: list[Device], radio: dict[str, dict]) -> None:
    """The stations and static devices in PostgreSQL, with the stations' radio parameters."""
    await seed_network(conn, Network(stations, devices), name="coverage")
    for station_id, columns in radio.items():
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
        await conn.execute(f"UPDATE base_stations SET {sets} WHERE id = $1", station_id, *columns.values())


async def test_the_simulated_and_the_predicted_number_of_stations_agree(isolated) -> None:
    stations = [Station(f"A0{i:02X}", *around(6 * np.sin(a), 6 * np.cos(a)))
                for i, a in enumerate(np.linspace(0, 2 * np.pi, 6, endpoint=False))] + [Station("A0FF", *CENTER)]
    devices = scattered(500, 9.0, seed=11)
    environments = ("urban", "suburban", "dense-urban", "rural", "urban", "suburban", "urban")
    conn = await db.connect()
    try:
        await registered(conn, stations, devices, {
            s.id: {"environment": env, "antenna_height_m": 20.0 + 10 * i}
            for i, (s, env) in enumerate(zip(stations, environments, strict=True))})
        sites = await base_stations.sites(conn)
    finally:
        await conn.close()
    assert [s.id for s in sites] == sorted(s.id for s in stations)

    model = RadioModel.of(sites, "RC1", installation="INDOOR")
    rng = random.Random(12)
    simulated, device_of, heard_by = [], [], []
    for _ in range(4):
        for i, device in enumerate(devices):
            frames = message_frames(device, rng, max_stations=len(stations), radio=model, now_ms=0)
            heard = {f["station"] for f in frames}
            simulated.append(len(heard))
            heard_by.append([s.id in heard for s in sites])
            device_of.append(i)
    margins = margins_db(Sites.of(sites), [d.lat for d in devices], [d.lng for d in devices], RC1,
                         installation="INDOOR")
    probability = norm.cdf(margins / SHADOWING_SIGMA_DB)[device_of]   # messages × stations
    expected = probability.sum(axis=1)
    difference = np.asarray(simulated) - expected
    standard_error = difference.std(ddof=1) / np.sqrt(len(difference))

    assert len(simulated) == 2000
    assert 0.5 < np.mean(expected) < len(stations) - 0.5   # neither everything nor nothing is heard
    assert standard_error < 0.05
    assert abs(difference.mean()) <= 3 * standard_error, (np.mean(simulated), np.mean(expected), standard_error)
    # Station by station too (7 comparisons: 4 standard errors each).
    station_difference = np.asarray(heard_by, dtype=float) - probability
    station_error = station_difference.std(axis=0, ddof=1) / np.sqrt(len(station_difference))
    assert (np.abs(station_difference.mean(axis=0)) <= 4 * station_error).all(), \
        (station_difference.mean(axis=0), station_error)
    print(f"\nagreement: simulated {np.mean(simulated):.3f} stations per message, predicted "
          f"{np.mean(expected):.3f}, standard error {standard_error:.3f}")


def stored_advanced(device: Device, frames: list[FrameRecord], registration: int, type_id: str,
                    group_id: str) -> dict | None:
    """The DATA_ADVANCED record ingest makes of one message's frames (best RSSI per station)."""
    if not frames:
        return None
    best: dict[str, list] = defaultdict(lambda: [-999.0, 0.0, 0, 0])
    for f in frames:
        b = best[f["station"]]
        b[0], b[1], b[2], b[3] = max(b[0], f["rssi"]), max(b[1], f["snr"]), b[2] + 1, f["freq"]
    duplicates: list[Duplicate] = [{"bsId": s, "rssi": b[0], "snr": b[1], "nbRep": b[2]} for s, b in best.items()]
    rinfos: list[Rinfo] = [{"baseStation": s, "rssi": b[0], "snr": b[1], "freq": b[3], "rep": b[2]}
                           for s, b in best.items()]
    first = frames[0]
    message_id = f"{device.id}-{first['seqNumber']}-{first['time']}"
    return dict(advanced_message(
        message_id, device.id, device_type_id=type_id, group_id=group_id, registration_id=registration,
        seq_number=first["seqNumber"], time_ms=first["time"], data=first["data"], ack=False, duplicates=duplicates,
        rinfos=rinfos, lqi="Good", link_quality=2, computed_location={"source": 2, "status": 20},
        operator_name="Backhaul", country_code="250", deadline_ms=first["time"] + 25_000,
        fixed_position=(device.lat, device.lng)))


def calibrate_cli(env: dict[str, str], *args: str, status: int = 0) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "program.cli", "coverage", "calibrate", *args], cwd=ROOT,
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == status, out.stderr
    return out.stdout.splitlines() if status == 0 else out.stderr.splitlines()


async def test_calibration_recovers_a_biased_station(isolated) -> None:
    biased, plain, unheard = "B001", "B002", "B0FF"
    stations = [Station(biased, *around(1.0, -1.5)), Station(plain, *around(-1.0, 1.5)),
                Station("B003", *around(1.5, 1.5)), Station(unheard, *around(200.0, 0.0))]
    devices = scattered(500, 3.5, seed=21)
    pool = await db.create_pool(min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            # Suburban stations near the devices: nearly every transmission is heard by all three, so the
            # stored receptions are not cut at the sensitivity (the fit does not model that censoring).
            await registered(conn, stations, devices, {s.id: {"environment": "suburban"} for s in stations})
            sites = await base_stations.sites(conn)
            reg = {r["id"]: (r["registration_id"], r["device_type_id"], r["group_id"]) for r in await conn.fetch(
                "SELECT id, registration_id, device_type_id, group_id FROM devices")}
            version_before = await base_stations.coverage_version(conn)
        model = RadioModel.of(sites, "RC1", bias_db={biased: 6.0})
        rng = random.Random(22)
        store = StoreStage(pool)
        rows = Rows()
        for round_ in range(5):
            for device in devices:
                frames = message_frames(device, rng, max_stations=4, radio=model, now_ms=1_764_000_000_000 + round_)
                record = stored_advanced(device, frames, *reg[device.id])
                if record is not None:
                    store._advanced(record, rows)  # type: ignore[arg-type]
        await store._write(rows)

        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM messages") >= 2450
            dry = await calibrate(conn, RC1, store=False)
            assert await conn.fetchval("SELECT count(*) FROM station_calibrations") == 0
        lines = calibrate_cli(isolated.env)
        async with pool.acquire() as conn:
            stored = {s: await station_calibrations.of_station(conn, s) for s in (biased, plain, "B003", unheard)}
            sites_after = {s.id: s for s in await base_stations.sites(conn)}
            uncalibrated = {s.id: s for s in await base_stations.sites(conn, calibrated=False)}
            version_after = await base_stations.coverage_version(conn)
    finally:
        await pool.close()

    fit = stored[biased]
    assert isinstance(fit, Fit) and fit == next(r for r in dry if r.station_id == biased)
    assert fit.receptions >= 1800 and fit.held_out >= 400
    assert abs(fit.offset_db - 6.0) <= 1.0, fit
    assert fit.rmse_before_db is not None and fit.rmse_after_db is not None
    assert fit.bias_before_db is not None and fit.bias_after_db is not None
    assert fit.rmse_before_db > fit.rmse_after_db
    assert abs(fit.bias_before_db) > abs(fit.bias_after_db)
    assert abs(fit.bias_before_db - 6.0) < 1.0 and abs(fit.bias_after_db) < 1.0
    other = stored[plain]
    assert isinstance(other, Fit) and abs(other.offset_db) < 1.0
    assert stored[unheard] is None
    assert next(r for r in dry if r.station_id == unheard) == TooFew(unheard, 0, 0)

    # The prediction uses the fit: the biased station's offset and slope, nothing for the one never heard.
    assert (sites_after[biased].offset_db, sites_after[biased].slope_db) == (fit.offset_db, fit.slope_db)
    assert (uncalibrated[biased].offset_db, uncalibrated[biased].slope_db) == (0.0, 0.0)
    assert (sites_after[unheard].offset_db, sites_after[unheard].slope_db) == (0.0, 0.0)
    assert version_after != version_before

    assert len(lines) == 4
    assert lines[0].startswith(f"{biased}: {fit.receptions} receptions ({fit.held_out} held out), "
                               f"offset {fit.offset_db:+.1f} dB")
    assert f"held-out RMSE {fit.rmse_before_db:.1f} -> {fit.rmse_after_db:.1f} dB" in lines[0]
    assert lines[3] == f"{unheard}: not enough receptions (0/{MIN_RECEPTIONS}; 0 held out)"
    assert calibrate_cli(isolated.env, "--station", biased.lower()) == lines[:1]
    assert calibrate_cli(isolated.env, "--station", "FFFF", status=1) == [
        "backhaul coverage calibrate: station: 'FFFF' is not a registered base station"]
    print("\ncalibration:\n" + "\n".join(lines))


async def test_the_receptions_to_fit_on_are_those_of_devices_at_known_positions(isolated) -> None:
    stations = [Station("C001", *around(0, 0)), Station("C002", *around(2, 0))]
    fixed, located = Device("300001", *around(1, 1)), Device("300002", *around(-1, 1))
    conn = await db.connect()
    try:
        await registered(conn, stations, [fixed, located], {})
        await conn.execute("UPDATE devices SET lat = NULL, lng = NULL WHERE id = $1", located.id)
        registration = await conn.fetchval("SELECT registration_id FROM devices WHERE id = $1", fixed.id)

        def rinfos(*pairs: tuple[str, float]) -> str:
            return json.dumps([{"baseStation": s, "rssi": r, "snr": 10.0, "freq": 868130000, "rep": 1}
                               for s, r in pairs])

        def location(radius: int, status: int = 1) -> str:
            return json.dumps({"lat": 43.7, "lng": 1.5, "radius": radius, "source": 2, "status": status}
                              if status == 1 else {"source": 2, "status": status})

        await conn.executemany(
            "INSERT INTO messages(id, device_id, time, seq_number, data, rinfos, computed_location, registration_id) "
            "VALUES ($1, $2, 0, 1, '', $3::jsonb, $4::jsonb, $5)", [
                ("f1", fixed.id, rinfos(("C001", -110.0), ("C002", -120.5)), None, registration),
                ("f2", fixed.id, rinfos(("C001", -111.0)), location(5000), None),      # no registration: kept
                ("f3", fixed.id, rinfos(("C001", -112.0)), None, registration + 1000),  # another registration
                ("l1", located.id, rinfos(("C002", -115.0)), location(250), None),
                ("l2", located.id, rinfos(("C002", -116.0)), location(1000), None),   # too vague
                ("l3", located.id, rinfos(("C002", -117.0)), location(0, status=20), None),
                ("l4", located.id, rinfos(("C002", -118.0)), None, None),
            ])
        every = await station_calibrations.heard(conn)
        of_c002 = await station_calibrations.heard(conn, "C002")
    finally:
        await conn.close()
    fixed_at = (round(fixed.lat, 5), round(fixed.lng, 5))
    assert [(h.message_id, h.station_id, h.rssi_dbm, (h.device_lat, h.device_lng)) for h in every] == [
        ("f1", "C001", -110.0, fixed_at), ("f1", "C002", -120.5, fixed_at), ("f2", "C001", -111.0, fixed_at),
        ("l1", "C002", -115.0, (43.7, 1.5))]
    assert [(h.message_id, h.station_id) for h in of_c002] == [("f1", "C002"), ("l1", "C002")]

"""The simulator's radio model: who hears a transmission follows the link budget, the shadowing and
a station's bias; the k-nearest model stays what it was when no radio model is given."""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

from radio.link_budget import SHADOWING_SIGMA_DB, radio_configuration
from radio.predict import Sites, StationSite, margins_db
from simulator.network import Device, build_network, message_frames
from simulator.radio_model import RadioModel

STATIONS = [StationSite("A001", 43.60, 1.44), StationSite("A002", 43.70, 1.44, environment="rural"),
            StationSite("A003", 43.60, 1.70, environment="dense-urban")]
RC1 = radio_configuration("RC1")


def test_without_shadowing_exactly_the_stations_with_a_margin_hear() -> None:
    model = RadioModel.of(STATIONS, shadowing_db=0.0, installation="INDOOR")
    rng = random.Random(1)
    for lat, lng in [(43.61, 1.45), (43.65, 1.55), (43.75, 1.80), (43.3, 1.2)]:
        m = margins_db(Sites.of(STATIONS), [lat], [lng], RC1, installation="INDOOR")[0]
        heard = model.hear(lat, lng, rng)
        assert {s for s, _ in heard} == {s.id for s, margin in zip(STATIONS, m, strict=True) if margin >= 0}
        for station, rssi in heard:
            i = [s.id for s in STATIONS].index(station)
            assert rssi == pytest.approx(m[i] + RC1.sensitivity_dbm)
        assert [r for _, r in heard] == sorted((r for _, r in heard), reverse=True)


def test_shadowing_and_bias_move_the_rssi() -> None:
    biased = RadioModel.of(STATIONS, bias_db={"A001": 6.0})
    plain = RadioModel.of(STATIONS)
    assert biased.median_dbm(43.61, 1.45)[0] - plain.median_dbm(43.61, 1.45)[0] == pytest.approx(6.0)
    assert biased.median_dbm(43.61, 1.45)[1] == pytest.approx(plain.median_dbm(43.61, 1.45)[1])
    rng = random.Random(2)
    draws = [dict(plain.hear(43.601, 1.441, rng))["A001"] for _ in range(4000)]   # next to A001: always heard
    assert np.mean(draws) == pytest.approx(plain.median_dbm(43.601, 1.441)[0], abs=0.4)
    assert np.std(draws) == pytest.approx(SHADOWING_SIGMA_DB, rel=0.06)
    with pytest.raises(ValueError, match="bias_db: FFFF"):
        RadioModel.of(STATIONS, bias_db={"FFFF": 1.0})


def test_calibration_fields_of_the_stations_are_not_the_truth() -> None:
    calibrated = [StationSite("A001", 43.60, 1.44, offset_db=10.0, slope_db=5.0)]
    assert RadioModel.of(calibrated).median_dbm(43.62, 1.46)[0] == \
        pytest.approx(RadioModel.of([StationSite("A001", 43.60, 1.44)]).median_dbm(43.62, 1.46)[0])


def test_frames_come_from_the_stations_the_model_says_hear() -> None:
    model = RadioModel.of(STATIONS)
    near = Device("100001", 43.601, 1.441)
    far = Device("100002", 20.0, 1.44)   # thousands of km away: nobody hears it
    rng = random.Random(3)
    frames = message_frames(near, rng, max_stations=3, radio=model, now_ms=0)
    assert frames and {f["station"] for f in frames} <= {s.id for s in STATIONS}
    for f in frames:   # the repetitions of one station report the one draw
        assert f["rssi"] == max(g["rssi"] for g in frames if g["station"] == f["station"])
    assert message_frames(far, rng, max_stations=3, radio=model, now_ms=0) == []


def test_without_a_radio_model_the_k_nearest_stations_hear() -> None:
    network = build_network(5, 10, seed=3)
    rng = random.Random(4)
    for device in network.devices:
        frames = message_frames(device, rng, max_stations=3, now_ms=0)
        stations = {f["station"] for f in frames}
        nearest = [s.id for _, s in device.nearest]
        assert 1 <= len(stations) <= 3 and stations == set(nearest[:len(stations)])
        assert all(-145.0 - 1 <= f["rssi"] <= -60.0 + 1 for f in frames)


def test_the_k_nearest_traffic_of_a_seed_is_what_it_was() -> None:
    """The benchmarks' traffic: the same seed gives, frame for frame, what it gave before the radio model
    (the digest was taken on main before it)."""
    network = build_network(5, 20, seed=3)
    rng = random.Random(4)
    frames = [message_frames(d, rng, max_stations=3, now_ms=0) for d in network.devices]
    digest = hashlib.sha256(json.dumps(frames).encode()).hexdigest()
    assert digest == "8c63c4b2138a7b30f9fb3514ca493a98c662f8f828e08ecf0cf614c35f81229f"


def test_simulate_radio_uses_the_stations_file_radio_parameters() -> None:
    from program.cli import _radio_model, _simulated_network, build_parser
    from radio.station_rows import read_stations

    file = str(Path(__file__).resolve().parents[2] / "deploy" / "stations.example.csv")
    args = build_parser().parse_args(["simulate", "--radio", "--stations-file", file, "--devices", "5"])
    assert args.radio
    network = _simulated_network(args, args.stations_file)
    model = _radio_model(network, args.stations_file)
    rows = {r.id: r for r in read_stations(file)}
    assert model.sites.ids == tuple(s.id for s in network.stations)
    assert model.sites.environment == tuple(rows[s].environment for s in model.sites.ids)
    assert list(model.sites.height_m) == [rows[s].antenna_height_m for s in model.sites.ids]
    ring = _radio_model(build_network(3, 1), None)
    assert ring.sites.environment == ("urban",) * 3

"""Vectorised coverage prediction: margins of many points at many stations.

`Sites.of(stations)` packs the stations' radio parameters into arrays once; `predict(sites, lat, lng,
...)` then computes, for every point, the margin at every station, and from them what the coverage
API answers: the three best margins (redundancy 1, 2, 3), the number of stations at or above 0 dB,
the link quality class and whether the point is covered.

A station's calibration (radio.calibration) corrects its predicted RSSI by
``offset + slope × log10(d / 1 km)`` dB; an uncalibrated station has both at 0.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radio.link_budget import (
    DEFAULT_ANTENNA_GAIN_DBI,
    DEFAULT_ANTENNA_HEIGHT_M,
    DEFAULT_CABLE_LOSS_DB,
    DEFAULT_ENVIRONMENT,
    RadioConfiguration,
    device_eirp_dbm,
    installation_loss_db,
)
from radio.path_loss import ENVIRONMENTS, path_loss_db
from radio.quality import RSSI_STEPS_DBM

EARTH_RADIUS_KM: Final = 6371.0
REDUNDANCY_LEVELS: Final = 3
# Points are predicted in chunks so that points × stations arrays stay small (cache-friendly).
CHUNK_CELLS: Final = 262_144

Array = NDArray[np.float64]


@dataclass(frozen=True)
class StationSite:
    """One station's position and radio parameters, as the prediction needs them."""

    id: str
    lat: float
    lng: float
    antenna_height_m: float = DEFAULT_ANTENNA_HEIGHT_M
    antenna_gain_dbi: float = DEFAULT_ANTENNA_GAIN_DBI
    cable_loss_db: float = DEFAULT_CABLE_LOSS_DB
    environment: str = DEFAULT_ENVIRONMENT
    offset_db: float = 0.0   # calibration: added to the predicted RSSI
    slope_db: float = 0.0    # calibration: dB per decade of distance, from 1 km


@dataclass(frozen=True)
class Sites:
    """Stations as arrays, in the order of `ids`."""

    ids: tuple[str, ...]
    lat_rad: Array
    lng_rad: Array
    height_m: Array
    gain_db: Array          # antenna gain − cable loss
    offset_db: Array
    slope_db: Array
    environment: tuple[str, ...]
    groups: dict[str, NDArray[np.intp]] = field(repr=False)   # environment -> station indexes

    @classmethod
    def of(cls, stations: Iterable[StationSite]) -> Sites:
        stations = list(stations)
        for s in stations:
            if s.environment not in ENVIRONMENTS:
                raise ValueError(f"environment: {s.environment!r} of station {s.id} is not one of "
                                 f"{', '.join(ENVIRONMENTS)}")
        env = tuple(s.environment for s in stations)
        return cls(
            ids=tuple(s.id for s in stations),
            lat_rad=np.radians([s.lat for s in stations]).astype(float),
            lng_rad=np.radians([s.lng for s in stations]).astype(float),
            height_m=np.array([s.antenna_height_m for s in stations], dtype=float),
            gain_db=np.array([s.antenna_gain_dbi - s.cable_loss_db for s in stations], dtype=float),
            offset_db=np.array([s.offset_db for s in stations], dtype=float),
            slope_db=np.array([s.slope_db for s in stations], dtype=float),
            environment=env,
            groups={e: np.flatnonzero(np.array([x == e for x in env], dtype=bool)) for e in set(env)},
        )

    def __len__(self) -> int:
        return len(self.ids)


def distances_km(sites: Sites, lat: ArrayLike, lng: ArrayLike) -> Array:
    """Great-circle distances (haversine), points × stations."""
    p_lat = np.radians(np.asarray(lat, dtype=float))[:, None]
    p_lng = np.radians(np.asarray(lng, dtype=float))[:, None]
    dlat = sites.lat_rad[None, :] - p_lat
    dlng = sites.lng_rad[None, :] - p_lng
    a = np.sin(dlat / 2) ** 2 + np.cos(p_lat) * np.cos(sites.lat_rad)[None, :] * np.sin(dlng / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0))))


def received_dbm(sites: Sites, d_km: Array, rc: RadioConfiguration, eirp_dbm: float) -> Array:
    """Predicted RSSI at each station (outdoor device), points × stations, calibration applied."""
    rssi = np.empty_like(d_km)
    for environment, idx in sites.groups.items():
        rssi[:, idx] = -path_loss_db(d_km[:, idx], rc.uplink_mhz, sites.height_m[idx], environment)
    d = np.maximum(d_km, 1e-3)
    return np.asarray(rssi + eirp_dbm + sites.gain_db + sites.offset_db + sites.slope_db * np.log10(d))


def margins_db(sites: Sites, lat: ArrayLike, lng: ArrayLike, rc: RadioConfiguration, *,
               uplink_class: int = 0, installation: str = "OUTDOOR") -> Array:
    """Margin at every station, points × stations (dB above the station's sensitivity)."""
    d = distances_km(sites, lat, lng)
    rssi = received_dbm(sites, d, rc, device_eirp_dbm(rc, uplink_class)) - installation_loss_db(installation)
    return np.asarray(rssi - rc.sensitivity_dbm)


@dataclass(frozen=True)
class Prediction:
    """What is predicted at each of N points."""

    margins: Array                 # N × 3: best, second, third margin in dB (−inf where fewer stations)
    redundancy: NDArray[np.int64]  # N: stations with a margin of 0 dB or more
    link_quality: NDArray[np.int8]  # N: 0..3, radio.quality's rule on the predicted best RSSI
    best_rssi_dbm: Array           # N: the best predicted RSSI (−inf without stations)

    @property
    def covered(self) -> NDArray[np.bool_]:
        return np.asarray(self.redundancy >= 1)


def predict(sites: Sites, lat: ArrayLike, lng: ArrayLike, rc: RadioConfiguration, *, uplink_class: int = 0,
            installation: str = "OUTDOOR") -> Prediction:
    """Margins, redundancy and link quality at every point (see the module docstring)."""
    lat = np.atleast_1d(np.asarray(lat, dtype=float))
    lng = np.atleast_1d(np.asarray(lng, dtype=float))
    n = lat.shape[0]
    top = np.full((n, REDUNDANCY_LEVELS), -np.inf)
    redundancy = np.zeros(n, dtype=np.int64)
    if len(sites) == 0 or n == 0:
        return Prediction(top, redundancy, np.zeros(n, dtype=np.int8), np.full(n, -np.inf))
    step = max(1, CHUNK_CELLS // len(sites))
    for start in range(0, n, step):
        part = slice(start, start + step)
        m = margins_db(sites, lat[part], lng[part], rc, uplink_class=uplink_class, installation=installation)
        redundancy[part] = (m >= 0).sum(axis=1)
        k = min(REDUNDANCY_LEVELS, m.shape[1])
        best = -np.partition(-m, k - 1, axis=1)[:, :k] if m.shape[1] > k else m
        top[part, :k] = -np.sort(-best, axis=1)[:, :k]
    best_rssi = top[:, 0] + rc.sensitivity_dbm
    return Prediction(top, redundancy, link_quality_array(best_rssi, redundancy), best_rssi)


def margins_at(sites: Sites, lat: float, lng: float, rc: RadioConfiguration, *, uplink_class: int = 0,
               installation: str = "OUTDOOR") -> list[tuple[str, float]]:
    """(station id, margin dB) at one point, best first: the service map's "specific place" list."""
    m = margins_db(sites, [lat], [lng], rc, uplink_class=uplink_class, installation=installation)[0]
    order = np.argsort(-m)
    return [(sites.ids[i], float(m[i])) for i in order]


def link_quality_array(best_rssi: ArrayLike, station_count: ArrayLike) -> NDArray[np.int8]:
    """`radio.quality.link_quality` over arrays (the same rule, vectorised)."""
    rssi = np.asarray(best_rssi, dtype=float)
    count = np.asarray(station_count)
    level = sum((rssi > step).astype(np.int8) for step in RSSI_STEPS_DBM)
    level = level + (count >= 3).astype(np.int8) - (count <= 1).astype(np.int8)
    return np.clip(level, 0, 3).astype(np.int8)


def sample_disc(lat: float, lng: float, radius_m: float, rings: Sequence[int] = (6, 12)) -> tuple[Array, Array]:
    """The centre and points on rings within `radius_m` of it: what the API averages over a `radius`."""
    lats, lngs = [lat], [lng]
    for i, count in enumerate(rings, start=1):
        r_deg = radius_m * i / len(rings) / 111_320.0
        angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
        lats.extend(lat + r_deg * np.sin(angles))
        lngs.extend(lng + r_deg * np.cos(angles) / max(np.cos(np.radians(lat)), 1e-6))
    return np.asarray(lats), np.asarray(lngs)

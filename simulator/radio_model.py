"""The simulator's radio: which stations hear a transmission, decided by the link budget (radio/).

For each transmission and each station: RSSI = the prediction's RSSI for the device's position
(radio.predict, installation and uplink class included) + a lognormal shadowing draw (normal in dB,
radio.link_budget.SHADOWING_SIGMA_DB) + the station's optional bias (a station that hears better or
worse than the registry says: what calibration must find). The station hears when RSSI >= its
sensitivity. Opt-in (`simulate(..., radio=...)`, `backhaul simulate --radio`); without it the
simulator keeps its k-nearest model, which the benchmarks use.
"""
from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from radio.link_budget import SHADOWING_SIGMA_DB, RadioConfiguration, radio_configuration
from radio.predict import Sites, StationSite, margins_db


@dataclass
class RadioModel:
    """Stations' link budgets, the shadowing and per-station biases: who hears what, and how loud."""

    sites: Sites
    rc: RadioConfiguration
    installation: str = "OUTDOOR"
    uplink_class: int = 0
    shadowing_db: float = SHADOWING_SIGMA_DB
    bias_db: Mapping[str, float] = field(default_factory=dict)
    _median: dict[tuple[float, float], NDArray[np.float64]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, stations: Iterable[StationSite], rc: str = "RC1", *, bias_db: Mapping[str, float] | None = None,
           installation: str = "OUTDOOR", uplink_class: int = 0,
           shadowing_db: float = SHADOWING_SIGMA_DB) -> RadioModel:
        """A model of `stations` (their calibration fields are ignored: the truth is the budget + bias)."""
        plain = [StationSite(s.id, s.lat, s.lng, s.antenna_height_m, s.antenna_gain_dbi, s.cable_loss_db,
                             s.environment) for s in stations]
        sites = Sites.of(plain)
        unknown = set(bias_db or {}) - set(sites.ids)
        if unknown:
            raise ValueError(f"bias_db: {', '.join(sorted(unknown))} are not stations of the model")
        return cls(sites, radio_configuration(rc), installation, uplink_class, shadowing_db, dict(bias_db or {}))

    def median_dbm(self, lat: float, lng: float) -> NDArray[np.float64]:
        """The RSSI at each station without shadowing (budget + bias), in `sites.ids` order; cached per position."""
        key = (lat, lng)
        if key not in self._median:
            margin = margins_db(self.sites, [lat], [lng], self.rc, uplink_class=self.uplink_class,
                                installation=self.installation)[0]
            bias = np.array([self.bias_db.get(s, 0.0) for s in self.sites.ids])
            self._median[key] = margin + self.rc.sensitivity_dbm + bias
        return self._median[key]

    def hear(self, lat: float, lng: float, rng: random.Random) -> list[tuple[str, float]]:
        """(station id, RSSI dBm) of the stations that hear one transmission from (lat, lng), loudest first."""
        median = self.median_dbm(lat, lng)
        heard = []
        for station, m in zip(self.sites.ids, median, strict=True):
            rssi = float(m) + rng.gauss(0.0, self.shadowing_db)
            if rssi >= self.rc.sensitivity_dbm:
                heard.append((station, rssi))
        return sorted(heard, key=lambda x: -x[1])

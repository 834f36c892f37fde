"""The coverage API's answers (Sigfox API v2 shapes) from radio.predict's arrays.

The reference's `radius` is "the radius of the area in which the coverage results are averaged": a
location is answered for the disc of that radius around it, sampled as radio.predict.sample_disc
samples one (its centre and two rings: 19 points; radius 0 is the centre alone). The reference says
no more; Backhaul's rules are:

- a sample's margin at redundancy level k (1, 2, 3) is its k-th best station margin, floored at 0 dB:
  without a k-th station heard there is no margin, shown as 0, as the reference's uncovered example
  (`margins: [0, 0, 0]`) shows it;
- the location's margin at level k is the mean of its samples' margins, rounded to a whole dB;
- `locationCovered` is true when at least half of the samples are covered (a station at 0 dB or more).

The redundancy answer is the number of stations at 0 dB or more at the point, 3 meaning 3 or more.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radio.link_budget import RadioConfiguration
from radio.predict import REDUNDANCY_LEVELS, Prediction, Sites, predict, sample_disc

COVERED_SHARE: Final = 0.5   # of an area's samples covered, for `locationCovered`
MAX_REDUNDANCY: Final = 3    # the reference's redundancy: "3 = 3 base stations or more"
DEFAULT_RADIUS_M: Final = 300.0   # the reference's default `radius`
MAX_RADIUS_M: Final = 5000.0      # Backhaul's bound: an area is a place, not a region
MAX_LOCATIONS: Final = 1_000        # a synchronous request (the reference recommends 200)
MAX_BULK_LOCATIONS: Final = 100_000  # a bulk job


@dataclass(frozen=True)
class LocationsQuery:
    """What to predict: locations, the radius of each one's area, the device's installation and class."""

    lat: list[float]
    lng: list[float]
    radius_m: float = DEFAULT_RADIUS_M
    installation: str = "OUTDOOR"
    uplink_class: int = 0

    def stored(self) -> dict[str, object]:
        """The query as a bulk job stores it (JSON)."""
        return {"lat": self.lat, "lng": self.lng, "radius": self.radius_m, "deviceSituation": self.installation,
                "deviceClassId": self.uplink_class}

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> LocationsQuery:
        return cls(stored["lat"], stored["lng"], stored["radius"], stored["deviceSituation"], stored["deviceClassId"])


class LocationAnswer(TypedDict):
    """One location of globalCoverageResponse.data / globalCoverageBulkResponse.results."""

    lat: float
    lng: float
    locationCovered: bool
    margins: list[int]


@dataclass(frozen=True)
class Areas:
    """The answers of N areas: margins N × 3 (whole dB, 0 where none) and whether each is covered."""

    margins: NDArray[np.int64]
    covered: NDArray[np.bool_]


def disc_points(lat: ArrayLike, lng: ArrayLike, radius_m: float) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """The sample points of every location's disc, location by location (N × S flattened), and S.

    The offsets are radio.predict.sample_disc's around (0, 0); longitudes are widened by 1 / cos(lat)
    at each location, as sample_disc does."""
    lat = np.atleast_1d(np.asarray(lat, dtype=float))
    lng = np.atleast_1d(np.asarray(lng, dtype=float))
    if radius_m <= 0:
        return lat, lng, 1
    d_lat, d_lng = sample_disc(0.0, 0.0, radius_m)
    widen = 1.0 / np.maximum(np.cos(np.radians(lat)), 1e-6)
    points_lat = lat[:, None] + d_lat[None, :]
    points_lng = lng[:, None] + d_lng[None, :] * widen[:, None]
    return points_lat.ravel(), points_lng.ravel(), d_lat.shape[0]


def areas_of(prediction: Prediction, samples: int) -> Areas:
    """Average a prediction of N × `samples` points (location by location) into N areas (module rules)."""
    floored = np.maximum(prediction.margins, 0.0).reshape(-1, samples, REDUNDANCY_LEVELS)
    margins = np.rint(floored.mean(axis=1)).astype(np.int64)
    covered_share = prediction.covered.reshape(-1, samples).mean(axis=1)
    return Areas(margins, np.asarray(covered_share >= COVERED_SHARE))


def location_answers(lat: ArrayLike, lng: ArrayLike, areas: Areas) -> list[LocationAnswer]:
    """The reference's per-location objects, in the order of the locations asked."""
    lats = np.atleast_1d(np.asarray(lat, dtype=float)).tolist()
    lngs = np.atleast_1d(np.asarray(lng, dtype=float)).tolist()
    return [{"lat": la, "lng": ln, "locationCovered": bool(c), "margins": m}
            for la, ln, c, m in zip(lats, lngs, areas.covered.tolist(), areas.margins.tolist(), strict=True)]


def predict_locations(sites: Sites, query: LocationsQuery, rc: RadioConfiguration) -> list[LocationAnswer]:
    """Every location's answer: its area predicted and averaged (module rules)."""
    points_lat, points_lng, samples = disc_points(query.lat, query.lng, query.radius_m)
    prediction = predict(sites, points_lat, points_lng, rc, installation=query.installation,
                         uplink_class=query.uplink_class)
    return location_answers(query.lat, query.lng, areas_of(prediction, samples))


def redundancy_answer(prediction: Prediction) -> dict[str, int]:
    """redundancyResponse of a one-point prediction: stations at 0 dB or more, at most 3."""
    return {"redundancy": int(min(int(prediction.redundancy[0]), MAX_REDUNDANCY))}


def bulk_answer(job_done: bool, time_ms: int, results: list[LocationAnswer] | None) -> dict[str, object]:
    """globalCoverageBulkResponse: `results` once the job is done (empty until then)."""
    return {"jobDone": job_done, "time": time_ms, "results": results or []}

"""Per-station calibration: learn a station's correction to the link budget from its receptions.

Model, per station, for receptions of devices at known positions:

    measured RSSI = predicted RSSI + offset_db + slope_db × log10(d / 1 km)

`predicted RSSI` is radio.predict's uncalibrated prediction for a device of uplink class 0U installed as
the caller says the located devices are (`installation`, OUTDOOR by default). The offset absorbs whatever
the devices lose beyond that on average: if the located devices are indoor but calibrated as outdoor,
every offset comes out about 20 dB low, and an INDOOR prediction would then count the wall twice.

Estimator: robust least squares (scipy.optimize.least_squares, Huber loss with a 6 dB scale, so that a
reception 20 dB off, a device moved indoors or a wrong position, pulls like a 6 dB one), plus a weak
prior on the slope: one pseudo-residual slope × 6 / 10, i.e. a slope of 10 dB per decade costs as much as
a single reception 6 dB off. With receptions spread over distances the data decide; with few at similar
distances (where the slope is not identified) the slope stays near 0 instead of wild.

Censoring: a station only reports what it heard, so where the predicted RSSI is near its sensitivity
only the transmissions that shadowing favoured are stored, and a plain fit finds the station better
than it is, and better the farther (a simulated indoor network: corrections 3 to 4 dB too high on
average over the receptions, slopes of +7 to +16 dB per decade where the truth is 0). So the fit keeps only the receptions whose calibrated predicted
margin is at least SELECTION_MARGIN_DB (1.5 × the 6 dB shadowing: fewer than 7 % of such transmissions go
unheard), refitting until the kept set settles (at most SELECTION_ROUNDS fits). On the same network the
offsets then land within 0.6 dB of the truth and the slopes within 3.5 dB per decade of 0. The selection is on the
prediction, not on the measurement, so it does not bias the fit by itself. Receptions with no known
sensitivity (`sensitivity_dbm` = −inf) are all kept.

Held-out receptions: a deterministic 20 % of the messages (by a hash of the message id, so a re-run
splits the same way) are kept out of the fit; the RMSE and bias (mean of measured − predicted) on those
clear of the sensitivity (the rule above, with the fit), before and after the correction, are what the
fit reports. A station is fitted once MIN_RECEPTIONS receptions remain for the fit itself (after that
selection): with 30 the offset's standard error is about 6/√30 ≈ 1.1 dB under typical shadowing, the
least that makes a correction worth more than its noise.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares

from radio.link_budget import SHADOWING_SIGMA_DB, RadioConfiguration, device_eirp_dbm, installation_loss_db
from radio.predict import Sites, StationSite, distances_km, received_dbm

MIN_RECEPTIONS: Final = 30
HELD_OUT_SHARE: Final = 0.2
HUBER_SCALE_DB: Final = 6.0
SLOPE_PRIOR_DB_PER_DECADE: Final = 10.0   # the slope's prior standard deviation (weak)
SELECTION_MARGIN_DB: Final = 1.5 * SHADOWING_SIGMA_DB
SELECTION_ROUNDS: Final = 6

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Reception:
    """One station's reception of one message from a device at a known position."""

    message_id: str
    station_id: str
    rssi_dbm: float          # measured
    predicted_dbm: float     # uncalibrated prediction at the device's position
    distance_km: float
    sensitivity_dbm: float = -math.inf   # the station's, in the radio configuration of the reception


@dataclass(frozen=True)
class Fit:
    """A station's correction and how much it improves the prediction on held-out receptions."""

    station_id: str
    offset_db: float
    slope_db: float
    receptions: int                 # receptions the fit used (clear of the sensitivity)
    held_out: int                   # receptions kept aside that judge it (clear of the sensitivity)
    rmse_before_db: float | None     # None without held-out receptions
    rmse_after_db: float | None
    bias_before_db: float | None
    bias_after_db: float | None


@dataclass(frozen=True)
class TooFew:
    """A station without enough receptions to fit."""

    station_id: str
    receptions: int                 # receptions that would have been fitted on
    held_out: int                   # receptions kept aside
    needed: int = MIN_RECEPTIONS


def is_held_out(message_id: str) -> bool:
    """Whether the message's receptions are kept out of fits (about HELD_OUT_SHARE of messages, fixed)."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < HELD_OUT_SHARE * 2.0 ** 64


def correction_db(offset_db: float, slope_db: float, distance_km: ArrayLike) -> Array:
    """What a fit adds to the predicted RSSI at `distance_km` (radio.predict applies the same)."""
    return np.asarray(offset_db + slope_db * np.log10(np.maximum(np.asarray(distance_km, dtype=float), 1e-3)))


def fit_correction(residual_db: ArrayLike, distance_km: ArrayLike) -> tuple[float, float]:
    """(offset, slope) that best explain `residual_db` = measured − predicted: the robust fit with the
    slope's prior, on every reception given (see the module docstring)."""
    r = np.asarray(residual_db, dtype=float)
    x = np.log10(np.maximum(np.asarray(distance_km, dtype=float), 1e-3))
    prior_weight = HUBER_SCALE_DB / SLOPE_PRIOR_DB_PER_DECADE

    def residuals(p: Array) -> Array:
        return np.append(r - p[0] - p[1] * x, prior_weight * p[1])

    start = np.array([float(np.median(r)), 0.0])
    result = least_squares(residuals, start, loss="huber", f_scale=HUBER_SCALE_DB)
    return float(result.x[0]), float(result.x[1])


def fit_uncensored(residual_db: Array, distance_km: Array,
                   predicted_margin_db: Array) -> tuple[float, float, NDArray[np.bool_]]:
    """(offset, slope, receptions kept): `fit_correction` on the receptions whose calibrated predicted
    margin is at least SELECTION_MARGIN_DB, the selection and the fit repeated until they settle."""
    keep = np.ones(residual_db.shape, dtype=bool)
    offset, slope = fit_correction(residual_db, distance_km)
    for _ in range(SELECTION_ROUNDS):
        selected = predicted_margin_db + correction_db(offset, slope, distance_km) >= SELECTION_MARGIN_DB
        if np.array_equal(selected, keep):
            break
        keep = selected
        if keep.sum() < MIN_RECEPTIONS:
            break
        offset, slope = fit_correction(residual_db[keep], distance_km[keep])
    return offset, slope, keep


def _errors(residual: Array) -> tuple[float | None, float | None]:
    if residual.size == 0:
        return None, None
    return float(np.sqrt(np.mean(residual ** 2))), float(np.mean(residual))


def fit_station(station_id: str, receptions: Sequence[Reception]) -> Fit | TooFew:
    """Fit one station on its receptions (the held-out ones judge the fit)."""
    held = np.array([is_held_out(r.message_id) for r in receptions], dtype=bool)
    residual = np.array([r.rssi_dbm - r.predicted_dbm for r in receptions], dtype=float)
    distance = np.array([r.distance_km for r in receptions], dtype=float)
    margin = np.array([r.predicted_dbm - r.sensitivity_dbm for r in receptions], dtype=float)
    n_fit, n_held = int((~held).sum()), int(held.sum())
    if n_fit < MIN_RECEPTIONS:
        return TooFew(station_id, n_fit, n_held)
    offset, slope, kept = fit_uncensored(residual[~held], distance[~held], margin[~held])
    if kept.sum() < MIN_RECEPTIONS:   # too few clear of the sensitivity to fit without censoring's bias
        return TooFew(station_id, int(kept.sum()), n_held)
    # Judged where the fitted prediction is clear of the sensitivity too: the same rule, the same receptions
    # before and after.
    judged = held & (margin + correction_db(offset, slope, distance) >= SELECTION_MARGIN_DB)
    before = residual[judged]
    after = before - correction_db(offset, slope, distance[judged])
    rmse_before, bias_before = _errors(before)
    rmse_after, bias_after = _errors(after)
    return Fit(station_id, offset, slope, int(kept.sum()), int(judged.sum()), rmse_before, rmse_after,
               bias_before, bias_after)


@dataclass(frozen=True)
class Heard:
    """A stored reception before prediction: which station heard which message, from where."""

    message_id: str
    station_id: str
    rssi_dbm: float
    device_lat: float
    device_lng: float


def predicted_receptions(stations: Sequence[StationSite], heard: Sequence[Heard], rc: RadioConfiguration,
                         installation: str = "OUTDOOR") -> list[Reception]:
    """`heard` with the uncalibrated prediction (devices of `installation`) and distance of each; stations
    not in `stations` are left out."""
    plain = [StationSite(s.id, s.lat, s.lng, s.antenna_height_m, s.antenna_gain_dbi, s.cable_loss_db,
                         s.environment) for s in stations]
    column = {s.id: i for i, s in enumerate(plain)}
    kept = [h for h in heard if h.station_id in column]
    if not kept:
        return []
    sites = Sites.of(plain)
    d = distances_km(sites, [h.device_lat for h in kept], [h.device_lng for h in kept])
    rssi = received_dbm(sites, d, rc, device_eirp_dbm(rc, 0)) - installation_loss_db(installation)
    rows = np.arange(len(kept))
    cols = np.array([column[h.station_id] for h in kept])
    return [Reception(h.message_id, h.station_id, h.rssi_dbm, float(p), float(dist), rc.sensitivity_dbm)
            for h, p, dist in zip(kept, rssi[rows, cols], d[rows, cols], strict=True)]


def describe(result: Fit | TooFew) -> str:
    """One line for the CLI: receptions, offset, slope, held-out RMSE/bias before -> after."""
    if isinstance(result, TooFew):
        return (f"{result.station_id}: not enough receptions ({result.receptions}/{result.needed}; "
                f"{result.held_out} held out)")
    line = (f"{result.station_id}: {result.receptions} receptions ({result.held_out} held out), "
            f"offset {result.offset_db:+.1f} dB, slope {result.slope_db:+.1f} dB/decade")
    if result.rmse_before_db is None or result.rmse_after_db is None:
        return line + ", no held-out receptions"
    assert result.bias_before_db is not None and result.bias_after_db is not None
    return (line + f", held-out RMSE {result.rmse_before_db:.1f} -> {result.rmse_after_db:.1f} dB, "
            f"bias {result.bias_before_db:+.1f} -> {result.bias_after_db:+.1f} dB")


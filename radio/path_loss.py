"""Path-loss models: free space, Okumura–Hata and COST-231 Hata, chosen by the station's environment.

All functions take distances in km, frequencies in MHz and heights in m, as numbers or numpy arrays,
and return the loss in dB (arrays broadcast).

- Free space (Friis): ``L = 32.45 + 20 log10 f + 20 log10 d``.
- Okumura–Hata (Hata 1980, "Empirical formula for propagation loss in land mobile radio services",
  IEEE Trans. Veh. Tech. 29(3)), valid for 150–1500 MHz, base antenna 30–200 m, mobile 1–10 m,
  1–20 km: ``L = 69.55 + 26.16 log f − 13.82 log hb − a(hm) + (44.9 − 6.55 log hb) log d`` with the
  small/medium-city mobile correction ``a(hm) = (1.1 log f − 0.7) hm − (1.56 log f − 0.8)``; suburban
  ``L − 2 (log(f/28))² − 5.4``; open (rural) ``L − 4.78 (log f)² + 18.33 log f − 40.94``.
- COST-231 Hata (COST Action 231 final report, 1999, §4.4), the metropolitan extension:
  ``L = 46.3 + 33.9 log f − 13.82 log hb − a(hm) + (44.9 − 6.55 log hb) log d + Cm`` with Cm = 3 dB
  for metropolitan centres (0 for medium cities). Its published range is 1500–2000 MHz; Backhaul uses it
  at Sigfox frequencies (862–928 MHz) for the dense-urban class only, where Hata's urban formula is
  known to be optimistic. This is a choice, documented here and in the README.

Environment classes of a station (its surroundings, not the device's): ``dense-urban`` (COST-231,
metropolitan), ``urban`` (Hata, small/medium city), ``suburban`` (Hata suburban), ``rural`` (Hata open).

Outside the empirical range: below 1 km the loss follows the free-space slope (20 dB per decade)
from the model's value at 1 km, and is never below free space; beyond 20 km the model's own slope
is extrapolated. Antenna heights are clamped to the model's range (a 10 m mast is predicted as a
30 m one would be, which is optimistic: say so to operators with low masts).
"""
from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

ENVIRONMENTS: Final = ("dense-urban", "urban", "suburban", "rural")
MOBILE_HEIGHT_M: Final = 1.5
MIN_DISTANCE_KM: Final = 0.001
HATA_MIN_KM: Final = 1.0
HATA_BASE_HEIGHT_M: Final = (30.0, 200.0)
HATA_MOBILE_HEIGHT_M: Final = (1.0, 10.0)

Array = NDArray[np.float64]


def free_space_db(d_km: ArrayLike, f_mhz: ArrayLike) -> Array:
    """Friis free-space loss."""
    d = np.maximum(np.asarray(d_km, dtype=float), MIN_DISTANCE_KM)
    return np.asarray(32.45 + 20.0 * np.log10(f_mhz) + 20.0 * np.log10(d))


def mobile_correction_db(f_mhz: ArrayLike, hm: ArrayLike) -> Array:
    """Hata's a(hm) for small and medium cities."""
    lf = np.log10(f_mhz)
    return np.asarray((1.1 * lf - 0.7) * np.asarray(hm) - (1.56 * lf - 0.8))


def _height_terms(f_mhz: ArrayLike, hb: ArrayLike, hm: ArrayLike) -> tuple[Array, Array]:
    """(−13.82 log hb − a(hm), 44.9 − 6.55 log hb), heights clamped to the empirical range."""
    hb = np.clip(np.asarray(hb, dtype=float), *HATA_BASE_HEIGHT_M)
    hm = np.clip(np.asarray(hm, dtype=float), *HATA_MOBILE_HEIGHT_M)
    lhb = np.log10(hb)
    return -13.82 * lhb - mobile_correction_db(f_mhz, hm), 44.9 - 6.55 * lhb


def hata_urban_db(d_km: ArrayLike, f_mhz: ArrayLike, hb: ArrayLike, hm: ArrayLike = MOBILE_HEIGHT_M) -> Array:
    """Okumura–Hata, small/medium city, by the formula (no range handling)."""
    heights, slope = _height_terms(f_mhz, hb, hm)
    return np.asarray(69.55 + 26.16 * np.log10(f_mhz) + heights + slope * np.log10(d_km))


def hata_suburban_db(d_km: ArrayLike, f_mhz: ArrayLike, hb: ArrayLike, hm: ArrayLike = MOBILE_HEIGHT_M) -> Array:
    """Okumura–Hata, suburban."""
    return np.asarray(hata_urban_db(d_km, f_mhz, hb, hm) - 2.0 * np.log10(np.asarray(f_mhz) / 28.0) ** 2 - 5.4)


def hata_open_db(d_km: ArrayLike, f_mhz: ArrayLike, hb: ArrayLike, hm: ArrayLike = MOBILE_HEIGHT_M) -> Array:
    """Okumura–Hata, open (rural) area."""
    lf = np.log10(f_mhz)
    return np.asarray(hata_urban_db(d_km, f_mhz, hb, hm) - 4.78 * lf ** 2 + 18.33 * lf - 40.94)


def cost231_hata_db(d_km: ArrayLike, f_mhz: ArrayLike, hb: ArrayLike, hm: ArrayLike = MOBILE_HEIGHT_M,
                    metropolitan: bool = True) -> Array:
    """COST-231 Hata; Cm = 3 dB for metropolitan centres, 0 otherwise."""
    heights, slope = _height_terms(f_mhz, hb, hm)
    cm = 3.0 if metropolitan else 0.0
    return np.asarray(46.3 + 33.9 * np.log10(f_mhz) + heights + slope * np.log10(d_km) + cm)


_MODELS = {
    "dense-urban": cost231_hata_db,
    "urban": hata_urban_db,
    "suburban": hata_suburban_db,
    "rural": hata_open_db,
}


def path_loss_db(d_km: ArrayLike, f_mhz: float, hb: ArrayLike, environment: str,
                 hm: float = MOBILE_HEIGHT_M) -> Array:
    """The loss between a device and a station of `environment`, with the range rules of the module."""
    try:
        model = _MODELS[environment]
    except KeyError:
        raise ValueError(f"environment: {environment!r} is not one of {', '.join(ENVIRONMENTS)}") from None
    d = np.maximum(np.asarray(d_km, dtype=float), MIN_DISTANCE_KM)
    far = model(np.maximum(d, HATA_MIN_KM), f_mhz, hb, hm)
    near = model(HATA_MIN_KM, f_mhz, hb, hm) + 20.0 * np.log10(np.minimum(d, HATA_MIN_KM) / HATA_MIN_KM)
    return np.maximum(np.where(d >= HATA_MIN_KM, far, near), free_space_db(d, f_mhz))

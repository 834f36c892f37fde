"""Link budgets: radio configurations, device uplink classes, installation types and station antennas.

Received power at a station (what its frames report as RSSI):

    RSSI = device EIRP − path loss + station antenna gain − station cable loss − installation loss

and the margin of a reception is ``RSSI − sensitivity`` of the station at the configuration's uplink
rate. A station hears a device when the margin is at least 0 dB.

Radio configurations (Sigfox's published zones; uplink centre frequency, bit rate and the maximum
EIRP a device may radiate there). Sensitivity: −142 dBm at 100 bit/s (ETSI-like zones) and −134 dBm at
600 bit/s (FCC-like zones), the figures of the behaviour reference; Sigfox publishes no exact value
per station model, so these are the documented defaults.

Uplink classes (the API's ``deviceClassId``, 0U..3U) lower the device's EIRP below the zone's maximum
by 0, 3, 6 and 10 dB. Sigfox classifies devices by radiated power without publishing one figure per
class: these steps are Backhaul's choice.

Installation types (the reference's ``deviceSituation``): OUTDOOR 0 dB, INDOOR 20 dB,
UNDERGROUND 30 dB of extra loss, the reference's values.

Shadowing: around the path-loss model's median, the received power of a fixed device varies with the
obstacles on its path, lognormally: a normal deviation in dB of standard deviation SHADOWING_SIGMA_DB,
6 dB (the usual figure for macro cells at sub-GHz, 5 to 8 dB in the literature). The simulator's radio
model draws it (simulator/radio_model.py); the prediction's expected number of receiving stations at a
point is the sum over stations of P(RSSI >= sensitivity) = Φ(margin / SHADOWING_SIGMA_DB).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class RadioConfiguration:
    """One radio zone's uplink: what a device sends at and what a station hears down to."""

    id: str
    uplink_mhz: float
    bit_rate: int
    max_eirp_dbm: float
    sensitivity_dbm: float


RADIO_CONFIGURATIONS: Final = {rc.id: rc for rc in (
    RadioConfiguration("RC1", 868.130, 100, 16.0, -142.0),   # Europe, Middle East, Africa (ETSI)
    RadioConfiguration("RC2", 902.200, 600, 24.0, -134.0),   # USA, Canada, Mexico (FCC)
    RadioConfiguration("RC3", 923.200, 100, 16.0, -142.0),   # Japan
    RadioConfiguration("RC4", 920.800, 600, 24.0, -134.0),   # Latin America, Australia, New Zealand, Asia-Pacific
    RadioConfiguration("RC5", 923.300, 100, 14.0, -142.0),   # South Korea
    RadioConfiguration("RC6", 865.200, 100, 16.0, -142.0),   # India
    RadioConfiguration("RC7", 868.800, 100, 16.0, -142.0),   # Russia
)}
DEFAULT_RADIO_CONFIGURATION: Final = "RC1"

UPLINK_CLASS_STEP_DB: Final = (0.0, 3.0, 6.0, 10.0)   # 0U, 1U, 2U, 3U below the zone's maximum EIRP

INSTALLATION_LOSS_DB: Final = {"OUTDOOR": 0.0, "INDOOR": 20.0, "UNDERGROUND": 30.0}
DEFAULT_INSTALLATION: Final = "INDOOR"   # the reference's default `deviceSituation`
SHADOWING_SIGMA_DB: Final = 6.0

# A station as most are built, when the registry says nothing else.
DEFAULT_ANTENNA_HEIGHT_M: Final = 30.0
DEFAULT_ANTENNA_GAIN_DBI: Final = 6.0
DEFAULT_CABLE_LOSS_DB: Final = 2.0
DEFAULT_ENVIRONMENT: Final = "urban"


def radio_configuration(rc_id: str) -> RadioConfiguration:
    """The configuration named `rc_id` ("RC1".."RC7"); ValueError naming the known ones."""
    try:
        return RADIO_CONFIGURATIONS[rc_id]
    except KeyError:
        raise ValueError(f"radio configuration: {rc_id!r} is not one of {', '.join(RADIO_CONFIGURATIONS)}") from None


def device_eirp_dbm(rc: RadioConfiguration, uplink_class: int = 0) -> float:
    """The EIRP of a device of `uplink_class` (0..3 for 0U..3U) in `rc`."""
    if not 0 <= uplink_class < len(UPLINK_CLASS_STEP_DB):
        raise ValueError(f"deviceClassId: {uplink_class} is not between 0 and {len(UPLINK_CLASS_STEP_DB) - 1}")
    return rc.max_eirp_dbm - UPLINK_CLASS_STEP_DB[uplink_class]


def installation_loss_db(installation: str) -> float:
    """The extra loss of an installation type (OUTDOOR, INDOOR, UNDERGROUND)."""
    try:
        return INSTALLATION_LOSS_DB[installation]
    except KeyError:
        raise ValueError(f"deviceSituation: {installation!r} is not one of "
                         f"{', '.join(INSTALLATION_LOSS_DB)}") from None

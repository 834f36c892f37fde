"""The service map's "specific place": a point given as latitude and longitude, the predicted margin at every
station (best first, with its distance) and what the point gets from them: how many stations hear it (a
margin of 0 dB or more) and its link quality, all from radio.predict."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from radio.link_budget import RadioConfiguration
from radio.predict import Sites, distances_km, margins_at, predict
from radio.quality import LQI_NAMES

NOT_COVERED = "Not covered"


class PlaceError(ValueError):
    """A latitude or longitude that is not one; `field` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_coordinate(field: str, text: str, limit: float) -> float:
    """`text` as degrees within ±`limit`; PlaceError naming `field` otherwise."""
    what = "latitude" if limit == 90 else "longitude"
    try:
        value = float(text.strip())
    except ValueError:
        raise PlaceError(field, f"{text.strip()!r} is not a number") from None
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise PlaceError(field, f"{text.strip()} is not a {what} (-{limit:g}..{limit:g})")
    return value


@dataclass(frozen=True)
class StationMargin:
    """One station's predicted margin at the place."""

    id: str
    name: str
    distance_km: float
    margin_db: float

    @property
    def hears(self) -> bool:
        return self.margin_db >= 0


@dataclass(frozen=True)
class PlaceReport:
    lat: float
    lng: float
    installation: str
    margins: list[StationMargin]   # best first
    stations_hearing: int
    link_quality: str               # radio.quality's class name, or NOT_COVERED


def place_report(sites: Sites, names: Mapping[str, str], lat: float, lng: float,
                 configuration: RadioConfiguration, installation: str) -> PlaceReport:
    """The margins at (`lat`, `lng`) of a device of `installation` (outdoor, indoor, underground) at each of
    the stations of `sites` (named by `names`, else by id), best first, and the point's redundancy and link
    quality."""
    kind = installation.upper()
    distance = dict(zip(sites.ids, distances_km(sites, [lat], [lng])[0], strict=True)) if len(sites) else {}
    margins = [StationMargin(ident, names.get(ident) or ident, float(distance[ident]), margin)
               for ident, margin in (margins_at(sites, lat, lng, configuration, installation=kind) if len(sites) else [])]
    predicted = predict(sites, [lat], [lng], configuration, installation=kind)
    hearing = int(predicted.redundancy[0])
    quality = LQI_NAMES[int(predicted.link_quality[0])] if hearing else NOT_COVERED
    return PlaceReport(lat, lng, installation, margins, hearing, quality)

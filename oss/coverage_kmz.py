"""The public coverage as a KMZ (Google Earth): a zip of `doc.kml` and the PNG tiles it lays on the ground.

Each tile is a GroundOverlay whose LatLonBox is the tile's edges. KML stretches an overlay linearly in
latitude while the tile is web-mercator: within one tile the difference is below a pixel at the zoom levels
the export allows near the equator and a few pixels at high latitudes at zoom 0 to 3 (the reference's
exports are laid out the same way).
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from oss.coverage_tiles import LEGEND, Layer, tile_bounds

MAX_KMZ_TILES = 256
KMZ_CONTENT_TYPE = "application/vnd.google-earth.kmz"


@dataclass(frozen=True)
class KmzTile:
    z: int
    x: int
    y: int
    png: bytes

    @property
    def path(self) -> str:
        return f"tiles/{self.z}/{self.x}/{self.y}.png"


def overlay(tile: KmzTile) -> str:
    b = tile_bounds(tile.z, tile.x, tile.y)
    return (f"<GroundOverlay><name>{tile.z}/{tile.x}/{tile.y}</name><Icon><href>{tile.path}</href></Icon>"
            f"<LatLonBox><north>{b.north:.8f}</north><south>{b.south:.8f}</south>"
            f"<east>{b.east:.8f}</east><west>{b.west:.8f}</west></LatLonBox></GroundOverlay>")


def document_kml(layer: Layer, tiles: Iterable[KmzTile]) -> str:
    """The KML document: a folder of ground overlays, one per tile, and the legend in its description."""
    legend = ", ".join(f"{label} {colour}" for label, colour in LEGEND[layer.view])
    name = f"Backhaul public coverage ({layer.installation}, {layer.view}{', forecast' if layer.forecast else ''})"
    overlays = "".join(overlay(t) for t in tiles)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
            f"<name>{escape(name)}</name><description>{escape(legend)}</description>"
            f"<Folder><name>tiles</name>{overlays}</Folder></Document></kml>\n")


def kmz(layer: Layer, tiles: list[KmzTile]) -> bytes:
    """The KMZ archive: doc.kml first (as KMZ readers expect), then the tiles (PNGs are stored, not deflated)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("doc.kml", document_kml(layer, tiles), compress_type=zipfile.ZIP_DEFLATED)
        for tile in tiles:
            archive.writestr(tile.path, tile.png, compress_type=zipfile.ZIP_STORED)
    return out.getvalue()

"""The public coverage as a KMZ (Google Earth): a zip of `doc.kml` and the PNG tiles it lays on the ground.

Each tile is a GroundOverlay whose LatLonBox is the tile's edges. KML stretches an overlay linearly in
latitude while a tile is web-mercator (up to 20 pixels apart inside a zoom-3 tile at 50° N, 5 at zoom 5), so
each tile's rows are re-sampled to latitudes evenly spaced between its edges before it is stored.
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from oss.coverage_tiles import LEGEND, TILE_PX, Layer, lat_to_px, tile_bounds

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


def rows_by_latitude(png: bytes, z: int, y: int) -> bytes:
    """The palette PNG of tile row `y` with its rows moved to evenly spaced latitudes (nearest row)."""
    image = Image.open(io.BytesIO(png))
    b = tile_bounds(z, 0, y)
    latitudes = b.north - (b.north - b.south) * (np.arange(TILE_PX) + 0.5) / TILE_PX
    source = np.clip((lat_to_px(latitudes, z) - y * TILE_PX).astype(int), 0, TILE_PX - 1)
    moved = Image.fromarray(np.asarray(image)[source], mode="P")
    moved.putpalette(image.getpalette() or [])
    out = io.BytesIO()
    moved.save(out, format="PNG", transparency=image.info.get("transparency"))
    return out.getvalue()


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
            archive.writestr(tile.path, rows_by_latitude(tile.png, tile.z, tile.y), compress_type=zipfile.ZIP_STORED)
    return out.getvalue()

"""A map page's view in its query (centre `clat`, `clng` and zoom `z`) and the links that pan and zoom it,
keeping the rest of the page's query: the map moves with plain links, no script."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from yarl import URL

from console import map_view
from console.map_view import View
from console.place_margins import PlaceError, parse_coordinate

VIEW_KEYS: Final = ("clat", "clng", "z")
PAN_STEP: Final = 0.5   # of a view's width or height


@dataclass(frozen=True)
class MapLink:
    """A pan or zoom control: its text, what it does (the accessible name) and where it goes."""

    id: str
    text: str
    label: str
    href: str | None   # None: not possible here (zoomed in or out all the way)


def page_url(path: str, values: Mapping[str, str]) -> str:
    return str(URL(path).with_query({k: v for k, v in values.items() if v != ""}))


def view_query(view: View) -> dict[str, str]:
    """The query fields that bring the page back to `view`."""
    return {"clat": f"{view.lat:.6f}", "clng": f"{view.lng:.6f}", "z": str(view.z)}


def parse_view(query: Mapping[str, str], errors: dict[str, str], width: int = map_view.WIDTH,
               height: int = map_view.HEIGHT) -> View | None:
    """The view the query names, None when it names none (the page then fits its places); a bad field is
    added to `errors` (field -> message naming it)."""
    if not any(query.get(k) for k in VIEW_KEYS):
        return None
    try:
        lat = parse_coordinate("clat", query.get("clat", ""), 90)
        lng = parse_coordinate("clng", query.get("clng", ""), 180)
    except PlaceError as bad:
        errors[bad.field] = str(bad)
        return None
    text = query.get("z", "").strip()
    if not text.isdigit() or not map_view.MIN_ZOOM <= int(text) <= map_view.MAX_ZOOM:
        errors["z"] = f"z: {text!r} is not a zoom level ({map_view.MIN_ZOOM}..{map_view.MAX_ZOOM})"
        return None
    return View.at(lat, lng, int(text), width, height)


def map_links(path: str, rest: Mapping[str, str], view: View, fit_label: str) -> list[MapLink]:
    """Pan by half a view each way, zoom in and out, and back to the fitted view; `rest`: the page's other
    query fields, kept."""
    def to(target: View) -> str:
        return page_url(path, {**rest, **view_query(target)})

    return [
        MapLink("pan-north", "↑", "Pan north", to(view.panned(0, -PAN_STEP))),
        MapLink("pan-west", "←", "Pan west", to(view.panned(-PAN_STEP, 0))),
        MapLink("pan-east", "→", "Pan east", to(view.panned(PAN_STEP, 0))),
        MapLink("pan-south", "↓", "Pan south", to(view.panned(0, PAN_STEP))),
        MapLink("zoom-in", "+", "Zoom in", to(view.zoomed(1)) if view.z < map_view.MAX_ZOOM else None),
        MapLink("zoom-out", "−", "Zoom out", to(view.zoomed(-1)) if view.z > map_view.MIN_ZOOM else None),
        MapLink("fit", "Fit", fit_label, page_url(path, rest)),
    ]

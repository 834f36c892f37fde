"""The console's pages, one module per page family (each exposes `routes`)."""
from __future__ import annotations

from console.pages import account, devices, home, series

# series before devices: its fixed paths (/devices/new, /devices/series/...) must match before /devices/{id}.
MODULES = (account, home, series, devices)

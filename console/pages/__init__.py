"""The console's pages, one module per page family (each exposes `routes`)."""
from __future__ import annotations

from console.pages import account, devices, home

MODULES = (account, home, devices)

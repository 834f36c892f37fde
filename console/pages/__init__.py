"""The console's pages, one module per page family (each exposes `routes`)."""
from __future__ import annotations

from console.pages import account, callbacks, device_types, home

MODULES = (account, home, device_types, callbacks)

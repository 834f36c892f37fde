"""The console's pages, one module per page family (each exposes `routes`)."""
from __future__ import annotations

from console.pages import (
    account,
    api_users,
    callbacks,
    contracts,
    coverage,
    device_types,
    devices,
    error_log,
    groups,
    home,
    series,
    users,
)

# series before devices: its fixed paths (/devices/new, /devices/series/...) must match before /devices/{id}.
MODULES = (account, home, series, devices, device_types, callbacks, users, groups, api_users, contracts, error_log,
           coverage)

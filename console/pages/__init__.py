"""The console's pages, one module per page family (each exposes `routes`)."""
from __future__ import annotations

from console.pages import account, api_users, contracts, error_log, groups, home, users

MODULES = (account, home, users, groups, api_users, contracts, error_log)

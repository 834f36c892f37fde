"""Invitation and password-reset links: a random token, its SHA-256 stored, one use, limited in time.

There is no mail server to send them through, so the link is given to whoever asked for it with the
right to (the CLI `backhaul console invite`, an admin on the user's page) or, for "forgot password",
written to the API's log for the operator (README "Console").
"""
from __future__ import annotations

import time

from yarl import URL

from console.context import ConsoleSettings
from console.sessions import new_token, token_hash
from oss.storage import console_sessions
from oss.storage.sql import Executor

INVITE, RESET = "invite", "reset"


async def issue(db: Executor, user_id: str, purpose: str, conf: ConsoleSettings, base_url: str) -> str:
    """A new link setting `user_id`'s password, valid `conf.link_s` seconds: the full URL."""
    token = new_token()
    expires = int((time.time() + conf.link_s) * 1000)
    await console_sessions.create_link(db, token_hash(token), user_id, purpose, expires)
    base = URL(conf.public_url or base_url)
    return str(base.with_path("/console/password/set").with_query(token=token))

"""Signing in and out, the terms, the password (change, set from a link, forgotten), the group worked in."""
from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time

from aiohttp import web

from console import links
from console.context import console_settings, session_of
from console.passwords import hash_password, password_problem, verify_password
from console.render import render
from console.sessions import clear_cookie, new_token, set_cookie, token_hash
from oss.context import LOGINS, POOL
from oss.login_throttle import address_key
from oss.storage import console_sessions

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
PRE_COOKIE = "bh_console_login"  # the login form's CSRF token (double submit: no session exists yet)
TERMS_VERSION = "2026-12"


def now_ms() -> int:
    return int(time.time() * 1000)


def safe_next(value: str | None) -> str:
    """Where to go after login: a console path only (never another site)."""
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/"


def login_form(request: web.Request, *, error: str = "", email: str = "", status: int = 200) -> web.Response:
    pre = secrets.token_urlsafe(16)
    response = render(request, "login.html", {"error": error, "email": email, "pre": pre,
                                              "next": safe_next(request.query.get("next")),
                                              "notice": request.query.get("notice", "")}, status=status)
    response.set_cookie(PRE_COOKIE, pre, path="/console", httponly=True, samesite="Strict",
                        secure=console_settings(request).cookie_secure)
    return response


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    return login_form(request)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
    pre = request.cookies.get(PRE_COOKIE, "")
    if not pre or not hmac.compare_digest(pre, str(form.get("pre", ""))):
        return login_form(request, error="The login form expired: please try again.", email=email, status=403)
    throttle, address = request.config_dict[LOGINS], address_key(request.remote)
    key = f"console:{email.lower()}"
    wait = throttle.retry_after(key, address)
    if wait is not None:
        return login_form(request, error=f"Too many failed logins: try again in {wait} s.", email=email, status=429)
    pool = request.config_dict[POOL]
    user = await console_sessions.user_for_login(pool, email) if email else None
    good = await asyncio.to_thread(verify_password, password, user["password_hash"] if user else None)
    if not good or user is None or user["password_hash"] is None:
        throttle.failed(key, address)
        return login_form(request, error="Wrong e-mail or password.", email=email, status=401)
    throttle.succeeded(key)
    if user["locked"]:
        return login_form(request, error="This account is locked: ask your administrator.", email=email, status=403)
    groups = await console_sessions.role_groups(pool, user["id"])
    if not groups:
        return login_form(request, error="This account holds no role on any group.", email=email, status=403)
    token, now = new_token(), now_ms()
    conf = console_settings(request)
    await console_sessions.purge(pool, now - int(conf.idle_s * 1000), now - int(conf.session_max_s * 1000))
    await console_sessions.create(pool, token_hash(token), user["id"], groups[0]["id"], secrets.token_urlsafe(24), now)
    await console_sessions.logged_in(pool, user["id"], now)
    target = safe_next(str(form.get("next", ""))) if user["terms_accepted_at"] else "/console/terms"
    response = web.Response(status=303, headers={"Location": target})
    set_cookie(response, token, secure=console_settings(request).cookie_secure)
    response.del_cookie(PRE_COOKIE, path="/console")
    log.info("console login", extra={"user": user["id"]})
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    await console_sessions.delete(request.config_dict[POOL], session_of(request).token_hash)
    response = web.Response(status=303, headers={"Location": "/console/login?notice=signed-out"})
    clear_cookie(response)
    return response


@routes.get("/terms")
async def terms_page(request: web.Request) -> web.Response:
    return render(request, "terms.html", {"version": TERMS_VERSION, "error": ""})


@routes.post("/terms")
async def accept_terms(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if form.get("accept") != "yes":
        return render(request, "terms.html", {"version": TERMS_VERSION,
                                              "error": "Tick the box to accept the terms."}, status=400)
    await console_sessions.accept_terms(request.config_dict[POOL], session_of(request).user_id, now_ms())
    raise web.HTTPSeeOther("/console/")


@routes.post("/group")
async def switch_group(request: web.Request) -> web.StreamResponse:
    """Work in another of the user's role groups (its rights are the profiles held there)."""
    session = session_of(request)
    wanted = str((await request.post()).get("group", ""))
    if wanted not in {g.id for g in session.groups}:
        raise web.HTTPNotFound()
    await console_sessions.switch_group(request.config_dict[POOL], session.token_hash, wanted)
    raise web.HTTPSeeOther("/console/")


@routes.get("/password")
async def password_page(request: web.Request) -> web.Response:
    return render(request, "password.html", {"errors": {}, "done": request.query.get("done") == "1"})


@routes.post("/password")
async def change_password(request: web.Request) -> web.StreamResponse:
    """Change one's own password (the current one is asked); every other session of the user ends."""
    session, pool = session_of(request), request.config_dict[POOL]
    form = await request.post()
    current, new, again = (str(form.get(k, "")) for k in ("current", "new", "again"))
    errors: dict[str, str] = {}
    stored = await console_sessions.password_hash(pool, session.user_id)
    if not await asyncio.to_thread(verify_password, current, stored):
        errors["current"] = "is not your current password"
    problem = password_problem(new, console_settings(request).min_password, session.email)
    if problem:
        errors["new"] = problem
    elif new != again:
        errors["again"] = "does not match the new password"
    if errors:
        return render(request, "password.html", {"errors": errors, "done": False}, status=400)
    hashed = await asyncio.to_thread(hash_password, new)
    async with pool.acquire() as conn, conn.transaction():
        await console_sessions.set_password(conn, session.user_id, hashed, now_ms())
        await console_sessions.delete_of_user(conn, session.user_id, keep=session.token_hash)
    raise web.HTTPSeeOther("/console/password?done=1")


@routes.get("/password/set")
async def set_password_page(request: web.Request) -> web.Response:
    token = request.query.get("token", "")
    user = await console_sessions.link_user(request.config_dict[POOL], token_hash(token), now_ms()) if token else None
    if user is None:
        return render(request, "password_set.html", {"token": "", "email": "", "errors": {},
                                                     "invalid": True}, status=404)
    return render(request, "password_set.html", {"token": token, "email": user["email"], "errors": {},
                                                 "invalid": False})


@routes.post("/password/set")
async def set_password(request: web.Request) -> web.StreamResponse:
    """Set a password from an invitation or reset link (spends it; ends the user's sessions)."""
    form = await request.post()
    token, new, again = (str(form.get(k, "")) for k in ("token", "new", "again"))
    pool, now = request.config_dict[POOL], now_ms()
    user = await console_sessions.link_user(pool, token_hash(token), now) if token else None
    if user is None:
        return render(request, "password_set.html", {"token": "", "email": "", "errors": {}, "invalid": True},
                      status=404)
    errors: dict[str, str] = {}
    problem = password_problem(new, console_settings(request).min_password, user["email"])
    if problem:
        errors["new"] = problem
    elif new != again:
        errors["again"] = "does not match the new password"
    if errors:
        return render(request, "password_set.html", {"token": token, "email": user["email"], "errors": errors,
                                                     "invalid": False}, status=400)
    hashed = await asyncio.to_thread(hash_password, new)
    async with pool.acquire() as conn, conn.transaction():
        if await console_sessions.use_link(conn, token_hash(token), now) is None:
            raise web.HTTPSeeOther("/console/password/set")
        await console_sessions.set_password(conn, user["id"], hashed, now)
        await console_sessions.delete_of_user(conn, user["id"])
    raise web.HTTPSeeOther("/console/login?notice=password-set")


@routes.get("/password/forgot")
async def forgot_page(request: web.Request) -> web.Response:
    return render(request, "password_forgot.html", {"sent": False})


@routes.post("/password/forgot")
async def forgot(request: web.Request) -> web.Response:
    """Ask for a reset link: written to the API's log for the operator (no mail server); the answer is the
    same whether the address exists, so it tells nothing."""
    email = str((await request.post()).get("email", "")).strip()
    pool = request.config_dict[POOL]
    user = await console_sessions.user_for_login(pool, email) if email else None
    if user is not None and not user["locked"]:
        url = await links.issue(pool, user["id"], links.RESET, console_settings(request), str(request.url.origin()))
        log.warning("console password reset link issued (give it to the user in person)",
                    extra={"user": user["id"], "link": url})
    return render(request, "password_forgot.html", {"sent": True})

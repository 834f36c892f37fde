"""Device operations on many devices at once, each row succeeding or failing with a reason.

Used by the single-device endpoints (one row) and by bulk jobs (chunks).
Every function runs inside the caller's transaction and returns the rows'
errors; a dry run is the same call in a transaction that is rolled back.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import asyncpg

from oss.auth import Caller
from oss.storage import contracts, device_types, devices, registrations
from oss.tokens import (
    DEVICE_NOT_ACTIVABLE,
    DEVICE_OFF_CONTRACT,
    DEVICE_OK,
    NO_TOKEN,
    holds_live_token,
    take_tokens,
    token_end,
    transfer_kind,
)

SUSPENDED = 6
Row = tuple[int, dict[str, Any]]


class RowError(NamedTuple):
    """Why one row (numbered from 1) failed: the entity (device id), the field and the reason."""

    row: int
    entity: str | None
    field: str | None
    message: str


def certificate_key(certificate: dict[str, Any] | None, default: str | None = None) -> str | None:
    """The product certificate's key from a request's `productCertificate`; `{"key": null}`, `{"key": ""}`
    and `null` unset it, a certificate without `key` leaves `default`."""
    if certificate is None:
        return None
    return certificate.get("key", default) or None


def _missing(rows: list[Row], found: dict) -> tuple[list[Row], list[RowError]]:
    present = [(n, r) for n, r in rows if r["id"] in found]
    errors = [RowError(n, r["id"], "id", "device not found") for n, r in rows if r["id"] not in found]
    return present, errors


async def create(conn: asyncpg.Connection, who: Caller, device_type: asyncpg.Record, rows: list[Row],
                 now: int, *, prototype: bool = False, certificate: str | None = None,
                 prefix: str = "") -> tuple[int, list[RowError]]:
    """Create devices of `device_type`; activable ones take a token from its contract."""
    existing = await devices.existing(conn, [r["id"] for _, r in rows])
    errors = [RowError(n, r["id"], "id", "device already exists") for n, r in rows if r["id"] in existing]
    rows = [(n, r) for n, r in rows if r["id"] not in existing]
    activable = [(n, r) for n, r in rows if r.get("activable", True)]
    contract = device_type["contract_id"]
    granted, reason = (await take_tokens(conn, contract, len(activable), now)) if activable and contract \
        else (0, None if not activable else "the device type has no contract")
    refused = {n for n, _ in activable[granted:]}
    errors += [RowError(n, r["id"], None, reason or "no token") for n, r in activable[granted:]]
    rows = [(n, r) for n, r in rows if n not in refused]
    end = token_end(now, await contracts.token_duration(conn, contract) or 0) if contract else None
    new = []
    for _, r in rows:
        takes = r.get("activable", True)
        new.append({
            "id": r["id"], "name": r.get("name") or f"{prefix}{r['id']}", "pac": r["pac"],
            "lat": r.get("lat"), "lng": r.get("lng"), "prototype": r.get("prototype", prototype),
            "product_certificate": certificate_key(r.get("productCertificate", {}), certificate),
            "automatic_renewal": r.get("automaticRenewal", True), "activable": takes,
            "token_state": 0 if takes else NO_TOKEN, "token_end": end if takes else None,
            "activation_time": now if takes else None, "state": DEVICE_OK if takes else DEVICE_NOT_ACTIVABLE})
    done = await devices.create_many(conn, new, device_type_id=device_type["id"], group_id=device_type["group_id"],
                                     contract_id=contract, author=who.api_user_id)
    errors += [RowError(n, r["id"], "id", "device already exists") for n, r in rows if r["id"] not in done]
    return len(done), errors


EDITABLE = {"name": "name", "lat": "lat", "lng": "lng", "prototype": "prototype", "activable": "activable",
            "automaticRenewal": "automatic_renewal"}


async def edit(conn: asyncpg.Connection, who: Caller, rows: list[Row]) -> tuple[int, list[RowError]]:
    """Partial updates: absent properties are kept, `null` clears an optional one."""
    found = await devices.scoped_rows(conn, who.group_id, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    for _, r in rows:
        changes = {EDITABLE[k]: v for k, v in r.items() if k in EDITABLE}
        if "productCertificate" in r:
            changes["product_certificate"] = certificate_key(r["productCertificate"])
        await devices.edit(conn, r["id"], changes, edited_by=who.api_user_id)
    return len(rows), errors


async def transfer(conn: asyncpg.Connection, who: Caller, device_type: asyncpg.Record, rows: list[Row],
                   now: int) -> tuple[int, list[RowError]]:
    """Move devices to `device_type`, applying the token rules of `oss.tokens`."""
    found = await devices.scoped_rows(conn, who.group_id, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    new = await contracts.get(conn, device_type["contract_id"])
    old_contracts = await contracts.get_many(conn, list({found[r["id"]]["contract_id"] for _, r in rows}))
    done = 0
    for n, r in rows:
        device = found[r["id"]]
        values: dict[str, Any] = {"device_type_id": device_type["id"], "group_id": device_type["group_id"]}
        kind = transfer_kind(old_contracts.get(device["contract_id"]), new) if new else "none"
        if kind == "move" and holds_live_token(device, now):
            assert new is not None  # without a new contract the kind is "none"
            granted, reason = await take_tokens(conn, new["id"], 1, now)
            if not granted:
                errors.append(RowError(n, r["id"], None, reason or "no token"))
                continue
            values["contract_id"] = new["id"]
        elif kind in ("new", "move", "none"):
            values.update(contract_id=new["id"] if new else None, token_state=NO_TOKEN, token_end=None,
                          state=DEVICE_NOT_ACTIVABLE)
            if new and r.get("activable", True):
                granted, reason = await take_tokens(conn, new["id"], 1, now)
                if not granted:
                    errors.append(RowError(n, r["id"], None, reason or "no token"))
                    continue
                values.update(token_state=0, token_end=token_end(now, new["token_duration"]),
                              activation_time=now, state=DEVICE_OK, activable=True)
        await devices.edit(conn, r["id"], values, edited_by=who.api_user_id)
        keep_history = r.get("keepHistory", False)
        if not keep_history or device["group_id"] != device_type["group_id"]:
            # A new owner sees the history from the transfer on, unless keepHistory moves it along.
            await registrations.register_again(conn, r["id"], device["registration_id"], keep_history)
        done += 1
    return done, errors


async def restart(conn: asyncpg.Connection, who: Caller, rows: list[Row], now: int) -> tuple[int, list[RowError]]:
    """Give a new token to devices whose token has ended; live tokens are left alone."""
    found = await devices.scoped_rows(conn, who.group_id, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    terms = await device_types.token_terms(conn, list({found[r["id"]]["device_type_id"] for _, r in rows}))
    done = 0
    for n, r in rows:
        device = found[r["id"]]
        if holds_live_token(device, now):
            done += 1
            continue
        kind = terms[device["device_type_id"]]
        granted, reason = (await take_tokens(conn, kind["contract_id"], 1, now)) if kind["contract_id"] \
            else (0, "the device type has no contract")
        if not granted:
            errors.append(RowError(n, r["id"], None, reason or "no token"))
            continue
        await devices.edit(conn, r["id"], {
            "contract_id": kind["contract_id"], "token_state": 0, "token_end": token_end(now, kind["token_duration"]),
            "activation_time": now, "state": DEVICE_OK}, edited_by=who.api_user_id)
        done += 1
    return done, errors


async def set_suspended(conn: asyncpg.Connection, who: Caller, rows: list[Row],
                        suspended: bool) -> tuple[int, list[RowError]]:
    found = await devices.scoped_rows(conn, who.group_id, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    want, other = (SUSPENDED, DEVICE_OK) if suspended else (DEVICE_OK, SUSPENDED)
    allowed = (DEVICE_OK, SUSPENDED) if suspended else (SUSPENDED,)
    ok = []
    for n, r in rows:
        if found[r["id"]]["state"] in allowed:
            ok.append(r["id"])
        else:
            errors.append(RowError(n, r["id"], None, f"device state {found[r['id']]['state']} cannot be "
                                                     f"{'suspended' if suspended else 'resumed'}"))
    await devices.set_state(conn, ok, want, only_from=other, edited_by=who.api_user_id)
    return len(ok), errors


async def unsubscribe(conn: asyncpg.Connection, who: Caller, rows: list[Row], now: int) -> tuple[int, list[RowError]]:
    """End the token at `unsubscriptionTime` (default now) and stop automatic renewal."""
    found = await devices.scoped_rows(conn, who.group_id, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    for _, r in rows:
        await devices.unsubscribe(conn, r["id"], r.get("unsubscriptionTime") or now, edited_by=who.api_user_id)
    return len(rows), errors


async def delete(conn: asyncpg.Connection, who: Caller, rows: list[Row]) -> tuple[int, list[RowError]]:
    found = await devices.scoped_rows(conn, who.group_id, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    ids = [r["id"] for _, r in rows]
    await devices.delete(conn, ids)
    await registrations.purge(conn, [found[i]["registration_id"] for i in ids])
    return len(ids), errors


async def replace(conn: asyncpg.Connection, who: Caller, rows: list[Row], now: int) -> tuple[int, list[RowError]]:
    """Move each source device's token to its target; the source is left without one."""
    ids = [i for _, r in rows for i in (r["deviceId"], r["targetDeviceId"])]
    found: dict[str, Any] = await devices.scoped_rows(conn, who.group_id, ids)
    errors, done = [], 0
    for n, r in rows:
        source, target = found.get(r["deviceId"]), found.get(r["targetDeviceId"])
        problem = ("deviceId", "device not found") if source is None else \
            ("targetDeviceId", "device not found") if target is None else \
            ("targetDeviceId", "must differ from deviceId") if source["id"] == target["id"] else \
            ("deviceId", "has no valid token to move") if not holds_live_token(source, now) else \
            ("targetDeviceId", "already holds a valid token") if holds_live_token(target, now) else None
        if problem:
            errors.append(RowError(n, r["deviceId"], *problem))
            continue
        assert source is not None and target is not None  # else there was a problem
        await devices.edit(conn, target["id"], {
            "contract_id": source["contract_id"], "token_state": 0, "token_end": source["token_end"],
            "activation_time": now, "state": DEVICE_OK, "activable": True}, edited_by=who.api_user_id)
        await devices.edit(conn, source["id"], {"token_state": NO_TOKEN, "token_end": None,
                                                "state": DEVICE_OFF_CONTRACT}, edited_by=who.api_user_id)
        found[target["id"]] = {**dict(target), "token_state": 0, "token_end": source["token_end"]}
        found[source["id"]] = {**dict(source), "token_state": NO_TOKEN}
        done += 1
    return done, errors

"""Device operations on many devices at once, each row succeeding or failing with a reason.

Used by the single-device endpoints (one row) and by bulk jobs (chunks).
Every function runs inside the caller's transaction and returns the rows'
errors; a dry run is the same call in a transaction that is rolled back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from oss import registrations
from oss.auth import Caller
from oss.scope import in_subtree
from oss.tokens import DEVICE_NOT_ACTIVABLE, DEVICE_OFF_CONTRACT, DEVICE_OK, NO_TOKEN, take_tokens, token_end, \
    transfer_kind

SUSPENDED = 6
Row = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class RowError:
    row: int
    entity: str | None
    field: str | None
    message: str


async def scoped_devices(conn: asyncpg.Connection, who: Caller, ids: list[str], *, lock: bool = True) -> dict:
    rows = await conn.fetch(f"SELECT * FROM devices WHERE id = ANY($2) AND {in_subtree('group_id', '$1')} "
                            f"ORDER BY id{' FOR UPDATE' if lock else ''}", who.group_id, ids)
    return {r["id"]: r for r in rows}


def _missing(rows: list[Row], found: dict) -> tuple[list[Row], list[RowError]]:
    present = [(n, r) for n, r in rows if r["id"] in found]
    errors = [RowError(n, r["id"], "id", "device not found") for n, r in rows if r["id"] not in found]
    return present, errors


async def create(conn: asyncpg.Connection, who: Caller, device_type: asyncpg.Record, rows: list[Row],
                 now: int, *, prototype: bool = False, certificate: str | None = None,
                 prefix: str = "") -> tuple[int, list[RowError]]:
    """Create devices of `device_type`; activable ones take a token from its contract."""
    ids = [r["id"] for _, r in rows]
    existing = {r["id"] for r in await conn.fetch("SELECT id FROM devices WHERE id = ANY($1)", ids)}
    errors = [RowError(n, r["id"], "id", "device already exists") for n, r in rows if r["id"] in existing]
    rows = [(n, r) for n, r in rows if r["id"] not in existing]
    activable = [(n, r) for n, r in rows if r.get("activable", True)]
    contract = device_type["contract_id"]
    granted, reason = (await take_tokens(conn, contract, len(activable), now)) if activable and contract \
        else (0, None if not activable else "the device type has no contract")
    refused = {n for n, _ in activable[granted:]}
    errors += [RowError(n, r["id"], None, reason or "no token") for n, r in activable[granted:]]
    rows = [(n, r) for n, r in rows if n not in refused]
    end = token_end(now, await conn.fetchval("SELECT token_duration FROM contract_infos WHERE id = $1", contract)
                    or 0) if contract else None
    columns: dict[str, list[Any]] = {c: [] for c in (
        "id", "name", "pac", "lat", "lng", "prototype", "product_certificate", "automatic_renewal", "activable",
        "token_state", "token_end", "activation_time", "state")}
    for _, r in rows:
        takes = r.get("activable", True)
        cert = r.get("productCertificate", {}) or {}
        for column, value in (
                ("id", r["id"]), ("name", r.get("name") or f"{prefix}{r['id']}"), ("pac", r["pac"]),
                ("lat", r.get("lat")), ("lng", r.get("lng")), ("prototype", r.get("prototype", prototype)),
                ("product_certificate", cert.get("key", certificate)),
                ("automatic_renewal", r.get("automaticRenewal", True)), ("activable", takes),
                ("token_state", 0 if takes else NO_TOKEN), ("token_end", end if takes else None),
                ("activation_time", now if takes else None),
                ("state", DEVICE_OK if takes else DEVICE_NOT_ACTIVABLE)):
            columns[column].append(value)
    created = await conn.fetch(
        "INSERT INTO devices(id, name, pac, lat, lng, prototype, product_certificate, automatic_renewal, "
        "activable, token_state, token_end, activation_time, state, device_type_id, group_id, contract_id, "
        "created_by, last_edited_by) "
        "SELECT v.*, $14, $15, $16, $17, $17 FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], "
        "$5::float8[], $6::bool[], $7::text[], $8::bool[], $9::bool[], $10::int[], $11::int8[], $12::int8[], "
        "$13::int[]) AS v ON CONFLICT (id) DO NOTHING RETURNING id",
        *columns.values(), device_type["id"], device_type["group_id"], contract, who.api_user_id)
    done = {r["id"] for r in created}
    errors += [RowError(n, r["id"], "id", "device already exists") for n, r in rows if r["id"] not in done]
    return len(done), errors


EDITABLE = {"name": "name", "lat": "lat", "lng": "lng", "prototype": "prototype", "activable": "activable",
            "automaticRenewal": "automatic_renewal"}


async def edit(conn: asyncpg.Connection, who: Caller, rows: list[Row]) -> tuple[int, list[RowError]]:
    """Partial updates: absent properties are kept, `null` clears an optional one."""
    found = await scoped_devices(conn, who, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    for _, r in rows:
        changes = {EDITABLE[k]: v for k, v in r.items() if k in EDITABLE}
        if "productCertificate" in r:
            changes["product_certificate"] = (r["productCertificate"] or {}).get("key")
        if changes:
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=3))
            await conn.execute(f"UPDATE devices SET {sets}, last_edited_by = $2, updated_at = now() WHERE id = $1",
                               r["id"], who.api_user_id, *changes.values())
    return len(rows), errors


async def transfer(conn: asyncpg.Connection, who: Caller, device_type: asyncpg.Record, rows: list[Row],
                   now: int) -> tuple[int, list[RowError]]:
    """Move devices to `device_type`, applying the token rules of `oss.tokens`."""
    found = await scoped_devices(conn, who, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    new = await conn.fetchrow("SELECT * FROM contract_infos WHERE id = $1", device_type["contract_id"])
    old_contracts = {c["id"]: c for c in await conn.fetch(
        "SELECT * FROM contract_infos WHERE id = ANY($1)", list({found[r["id"]]["contract_id"] for _, r in rows}))}
    done = 0
    for n, r in rows:
        device = found[r["id"]]
        values: dict[str, Any] = {"device_type_id": device_type["id"], "group_id": device_type["group_id"]}
        live = device["token_state"] == 0 and (device["token_end"] is None or device["token_end"] > now)
        kind = transfer_kind(old_contracts.get(device["contract_id"]), new) if new else "none"
        if kind == "move" and live:
            granted, reason = await take_tokens(conn, new["id"], 1, now)
            if not granted:
                errors.append(RowError(n, r["id"], None, reason or "no token"))
                continue
            values["contract_id"] = new["id"]
        elif kind in ("new", "move", "none") and kind != "keep":
            values.update(contract_id=new["id"] if new else None, token_state=NO_TOKEN, token_end=None,
                          state=DEVICE_NOT_ACTIVABLE)
            if new and r.get("activable", True):
                granted, reason = await take_tokens(conn, new["id"], 1, now)
                if not granted:
                    errors.append(RowError(n, r["id"], None, reason or "no token"))
                    continue
                values.update(token_state=0, token_end=token_end(now, new["token_duration"]),
                              activation_time=now, state=DEVICE_OK, activable=True)
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(values, start=3))
        await conn.execute(f"UPDATE devices SET {sets}, last_edited_by = $2, updated_at = now() WHERE id = $1",
                           r["id"], who.api_user_id, *values.values())
        keep_history = r.get("keepHistory", False)
        if not keep_history or device["group_id"] != device_type["group_id"]:
            # A new owner sees the history from the transfer on, unless keepHistory moves it along.
            await registrations.register_again(conn, r["id"], device["registration_id"], keep_history)
        done += 1
    return done, errors


async def restart(conn: asyncpg.Connection, who: Caller, rows: list[Row], now: int) -> tuple[int, list[RowError]]:
    """Give a new token to devices whose token has ended; live tokens are left alone."""
    found = await scoped_devices(conn, who, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    types = {t["id"]: t for t in await conn.fetch(
        "SELECT t.id, t.contract_id, c.token_duration FROM device_types t "
        "LEFT JOIN contract_infos c ON c.id = t.contract_id WHERE t.id = ANY($1)",
        list({found[r["id"]]["device_type_id"] for _, r in rows}))}
    done = 0
    for n, r in rows:
        device = found[r["id"]]
        if device["token_state"] == 0 and (device["token_end"] is None or device["token_end"] > now):
            done += 1
            continue
        kind = types[device["device_type_id"]]
        granted, reason = (await take_tokens(conn, kind["contract_id"], 1, now)) if kind["contract_id"] \
            else (0, "the device type has no contract")
        if not granted:
            errors.append(RowError(n, r["id"], None, reason or "no token"))
            continue
        await conn.execute("UPDATE devices SET contract_id = $2, token_state = 0, token_end = $3, "
                           "activation_time = $4, state = $5, last_edited_by = $6, updated_at = now() "
                           "WHERE id = $1", r["id"], kind["contract_id"], token_end(now, kind["token_duration"]),
                           now, DEVICE_OK, who.api_user_id)
        done += 1
    return done, errors


async def set_suspended(conn: asyncpg.Connection, who: Caller, rows: list[Row],
                        suspended: bool) -> tuple[int, list[RowError]]:
    found = await scoped_devices(conn, who, [r["id"] for _, r in rows])
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
    await conn.execute("UPDATE devices SET state = $2, last_edited_by = $3, updated_at = now() "
                       "WHERE id = ANY($1) AND state = $4", ok, want, who.api_user_id, other)
    return len(ok), errors


async def unsubscribe(conn: asyncpg.Connection, who: Caller, rows: list[Row], now: int) -> tuple[int, list[RowError]]:
    """End the token at `unsubscriptionTime` (default now) and stop automatic renewal."""
    found = await scoped_devices(conn, who, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    for _, r in rows:
        at = r.get("unsubscriptionTime") or now
        await conn.execute("UPDATE devices SET unsubscription_time = $2, automatic_renewal = false, "
                           "token_end = LEAST(coalesce(token_end, $2), $2), last_edited_by = $3, "
                           "updated_at = now() WHERE id = $1", r["id"], at, who.api_user_id)
    return len(rows), errors


async def delete(conn: asyncpg.Connection, who: Caller, rows: list[Row]) -> tuple[int, list[RowError]]:
    found = await scoped_devices(conn, who, [r["id"] for _, r in rows])
    rows, errors = _missing(rows, found)
    ids = [r["id"] for _, r in rows]
    await conn.execute("DELETE FROM devices WHERE id = ANY($1)", ids)
    await registrations.purge(conn, [found[i]["registration_id"] for i in ids])
    return len(ids), errors


async def replace(conn: asyncpg.Connection, who: Caller, rows: list[Row], now: int) -> tuple[int, list[RowError]]:
    """Move each source device's token to its target; the source is left without one."""
    ids = [i for _, r in rows for i in (r["deviceId"], r["targetDeviceId"])]
    found = await scoped_devices(conn, who, ids)
    errors, done = [], 0
    for n, r in rows:
        source, target = found.get(r["deviceId"]), found.get(r["targetDeviceId"])
        problem = ("deviceId", "device not found") if source is None else \
            ("targetDeviceId", "device not found") if target is None else \
            ("targetDeviceId", "must differ from deviceId") if source["id"] == target["id"] else \
            ("deviceId", "has no valid token to move") if not _live(source, now) else \
            ("targetDeviceId", "already holds a valid token") if _live(target, now) else None
        if problem:
            errors.append(RowError(n, r["deviceId"], *problem))
            continue
        await conn.execute("UPDATE devices SET contract_id = $2, token_state = 0, token_end = $3, "
                           "activation_time = $4, state = $5, activable = true, last_edited_by = $6, "
                           "updated_at = now() WHERE id = $1", target["id"], source["contract_id"],
                           source["token_end"], now, DEVICE_OK, who.api_user_id)
        await conn.execute("UPDATE devices SET token_state = $2, token_end = NULL, state = $3, last_edited_by = $4, "
                           "updated_at = now() WHERE id = $1", source["id"], NO_TOKEN, DEVICE_OFF_CONTRACT,
                           who.api_user_id)
        found[target["id"]] = {**dict(target), "token_state": 0, "token_end": source["token_end"]}
        found[source["id"]] = {**dict(source), "token_state": NO_TOKEN}
        done += 1
    return done, errors


def _live(device: Any, now: int) -> bool:
    return device["token_state"] == 0 and (device["token_end"] is None or device["token_end"] > now)

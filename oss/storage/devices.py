"""Devices: their rows, their radio state (`device_status` of the current registration) and their tokens."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from oss.storage.scope import fetch_scoped, in_groups, in_subtree
from oss.storage.sql import Executor, Order, Page, Where, Window, select_page, update

# A device with its radio state, its type's keep-alive and contract, as the API shows it.
VIEW = """SELECT d.*, s.sequence_number, s.trash_sequence_number, s.last_com, s.com_state, s.lqi,
    s.last_computed_location, t.keep_alive, t.contract_id AS type_contract_id FROM devices d
    LEFT JOIN device_status s ON s.device_id = d.id AND s.registration_id = d.registration_id
    LEFT JOIN device_types t ON t.id = d.device_type_id"""
BY_ID = Order(key="d.id")
SORTS = {"id": BY_ID, "-id": Order(key="d.id DESC"), "name": Order(by=("d.name",), key="d.id"),
         "-name": Order(by=("d.name DESC",), key="d.id"),
         "lastCom": Order(by=("s.last_com NULLS FIRST",), key="d.id"),
         "-lastCom": Order(by=("s.last_com DESC NULLS LAST",), key="d.id"),
         # Backhaul extensions (README "API v2 compatibility")
         "creationTime": Order(by=("d.created_at",), key="d.id"),
         "-creationTime": Order(by=("d.created_at DESC",), key="d.id")}
# The columns of a new device, with their PostgreSQL types (inserted many at once through unnest).
NEW_COLUMNS = {"id": "text", "name": "text", "pac": "text", "lat": "float8", "lng": "float8", "prototype": "bool",
               "product_certificate": "text", "automatic_renewal": "bool", "activable": "bool",
               "token_state": "int", "token_end": "int8", "activation_time": "int8", "state": "int"}


def live_token(alias: str = "d", now: str = "$now") -> str:
    """SQL: the device holds a token that has not ended at `now`."""
    return f"({alias}.token_state = 0 AND ({alias}.token_end IS NULL OR {alias}.token_end > {now}))"


async def scoped(db: Executor, root: str, ident: str) -> asyncpg.Record:
    """The device (`VIEW`) if it lies in `root`'s subtree, else 404."""
    return await fetch_scoped(db, f"{VIEW} WHERE d.id = $2 AND {in_subtree('d.group_id', '$1')}", root, ident,
                              what="device")


def shown_state(now: str) -> str:
    """SQL: the device state the API shows (`oss.tokens.device_state`): OK with an ended token reads OFF_CONTRACT."""
    return (f"(CASE WHEN d.state = 0 AND d.token_state = 0 AND d.token_end IS NOT NULL AND d.token_end <= {now} "
            "THEN 2 ELSE d.state END)")


@dataclass(frozen=True)
class Filter:
    """Which devices a list shows: the one of id `ident`, those in `group_ids` (`deep`: or below), of
    `device_type_id`, with ids from `min_id` to `max_id` (compared as 8 hex digits). Empty is no filter.

    Backhaul extensions: `name` (contained, case-insensitive), `states` (the state the API shows, at `now`),
    last heard from `last_com_since` (included) to `last_com_before` (excluded)."""

    ident: str | None = None
    group_ids: list[str] = field(default_factory=list)
    deep: bool = False
    device_type_id: str | None = None
    min_id: str | None = None
    max_id: str | None = None
    name: str | None = None
    states: list[int] = field(default_factory=list)
    last_com_since: int | None = None
    last_com_before: int | None = None
    now: int = 0


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere (its own % _ and \\ taken literally)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filtered(root: str, wanted: Filter) -> Where:
    """The conditions of a device list (`VIEW`'s aliases) for `root`'s subtree."""
    where = Where(root)
    where.add(in_subtree("d.group_id", "$1"))
    if wanted.ident:
        where.add(f"d.id = {where.param(wanted.ident)}")
    if wanted.group_ids:
        where.add(in_groups("d.group_id", where.param(wanted.group_ids), deep=wanted.deep))
    if wanted.device_type_id:
        where.add(f"d.device_type_id = {where.param(wanted.device_type_id)}")
    for bound, op in ((wanted.min_id, ">="), (wanted.max_id, "<=")):
        if bound:
            where.add(f"lpad(d.id, 8, '0') {op} {where.param(bound.zfill(8))}")
    if wanted.name:
        where.add(f"lower(coalesce(d.name, d.id)) LIKE lower({where.param(like_pattern(wanted.name))})")
    if wanted.states:
        where.add(f"{shown_state(where.param(wanted.now))} = ANY({where.param(wanted.states)}::int[])")
    where.within("s.last_com", Window(since=wanted.last_com_since, before=wanted.last_com_before))
    return where


async def page(db: Executor, root: str, pg: Page, wanted: Filter, sort: str) -> list[asyncpg.Record]:
    """Devices of `root`'s subtree (`VIEW`), filtered, sorted by one of `SORTS`."""
    return await select_page(db, VIEW, filtered(root, wanted), SORTS[sort], pg)


async def count(db: Executor, root: str, wanted: Filter) -> int:
    """How many devices of `root`'s subtree the filter keeps (what `page` lists over all pages)."""
    where = filtered(root, wanted)
    status = wanted.last_com_since is not None or wanted.last_com_before is not None
    joined = ("devices d LEFT JOIN device_status s ON s.device_id = d.id AND s.registration_id = d.registration_id"
              if status else "devices d")  # the radio state only when the filter reads it
    value: int = await db.fetchval(f"SELECT count(*) FROM {joined} WHERE {where}", *where.args)
    return value


# A deleted device: its registration, ended by the deletion (its history is purged; only this stays).
DELETED = """SELECT r.device_id AS id, r.group_id, r.id AS registration_id,
    (extract(epoch FROM r.started_at) * 1000)::bigint AS creation_time,
    (extract(epoch FROM r.ended_at) * 1000)::bigint AS deletion_time FROM device_registrations r"""
BY_DELETION = Order(by=("r.ended_at DESC",), key="r.id DESC")


async def page_deleted(db: Executor, root: str, pg: Page, *, ident: str | None) -> list[asyncpg.Record]:
    """The devices deleted from `root`'s subtree (`DELETED`), the last deleted first."""
    where = Where(root)
    where.add("r.ended_by = 'deleted'")
    where.add(in_subtree("r.group_id", "$1"))
    if ident:
        where.add(f"r.device_id = {where.param(ident)}")
    return await select_page(db, DELETED, where, BY_DELETION, pg)


async def page_on_contract(db: Executor, root: str, pg: Page, contract_id: str, now: int, *,
                           device_type_id: str | None) -> list[asyncpg.Record]:
    """Devices of `root`'s subtree holding a live token of the contract (`VIEW`), by id."""
    where = Where(root, now, contract_id)
    where.add(in_subtree("d.group_id", "$1"))
    where.add("d.contract_id = $3")
    where.add(live_token(now="$2"))
    if device_type_id:
        where.add(f"d.device_type_id = {where.param(device_type_id)}")
    return await select_page(db, VIEW, where, BY_ID, pg)


async def scoped_rows(db: Executor, root: str, ids: list[str], *, lock: bool = True) -> dict[str, asyncpg.Record]:
    """The devices of `root`'s subtree among `ids`, by id; locked for update unless `lock` is False."""
    rows = await db.fetch(f"SELECT * FROM devices WHERE id = ANY($2) AND {in_subtree('group_id', '$1')} "
                          f"ORDER BY id{' FOR UPDATE' if lock else ''}", root, ids)
    return {r["id"]: r for r in rows}


async def existing(db: Executor, ids: list[str]) -> set[str]:
    """Which of `ids` are devices already (in any group)."""
    return {r["id"] for r in await db.fetch("SELECT id FROM devices WHERE id = ANY($1)", ids)}


async def create_many(db: Executor, rows: list[dict[str, Any]], *, device_type_id: str, group_id: str,
                      contract_id: str | None, author: str) -> set[str]:
    """Insert devices (`NEW_COLUMNS` each) of one device type; the ids inserted (one that exists is skipped)."""
    n = len(NEW_COLUMNS)
    arrays = ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(NEW_COLUMNS.values(), start=1))
    created = await db.fetch(
        f"INSERT INTO devices({', '.join(NEW_COLUMNS)}, device_type_id, group_id, contract_id, created_by, "
        f"last_edited_by) SELECT v.*, ${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}, ${n + 4} FROM unnest({arrays}) AS v "
        f"ON CONFLICT (id) DO NOTHING RETURNING id",
        *([r[column] for r in rows] for column in NEW_COLUMNS), device_type_id, group_id, contract_id, author)
    return {r["id"] for r in created}


async def edit(db: Executor, ident: str, changes: dict[str, Any], *, edited_by: str | None = None) -> None:
    await update(db, "devices", ident, changes, edited_by=edited_by)


async def set_state(db: Executor, ids: list[str], state: int, *, only_from: int, edited_by: str) -> None:
    """Move the devices that are in state `only_from` to `state`."""
    await db.execute("UPDATE devices SET state = $2, last_edited_by = $3, updated_at = now() "
                     "WHERE id = ANY($1) AND state = $4", ids, state, edited_by, only_from)


async def unsubscribe(db: Executor, ident: str, at: int, *, edited_by: str) -> None:
    """End the device's token at `at` (or earlier, if it ends before) and stop its automatic renewal."""
    await db.execute("UPDATE devices SET unsubscription_time = $2, automatic_renewal = false, "
                     "token_end = LEAST(coalesce(token_end, $2), $2), last_edited_by = $3, "
                     "updated_at = now() WHERE id = $1", ident, at, edited_by)


async def disengage_type(db: Executor, device_type_id: str, now: int) -> None:
    """Disengage the sequence number check of every device of the type (see `disengaged_at`)."""
    await db.execute("UPDATE devices SET disengaged_at = $2, updated_at = now() WHERE device_type_id = $1",
                     device_type_id, now)


async def delete(db: Executor, ids: list[str]) -> None:
    await db.execute("DELETE FROM devices WHERE id = ANY($1)", ids)


async def ids_of(db: Executor, root: str, *, device_type_id: str | None = None,
                 contract_id: str | None = None) -> list[str]:
    """The ids of the devices of `root`'s subtree of a device type, or on a contract (give one), in order."""
    if (device_type_id is None) == (contract_id is None):
        raise ValueError("ids_of takes a device type or a contract")
    column, owner = ("device_type_id", device_type_id) if device_type_id else ("contract_id", contract_id)
    rows = await db.fetch(f"SELECT id FROM devices WHERE {column} = $2 AND {in_subtree('group_id', '$1')} "
                          "ORDER BY id", root, owner)
    return [r["id"] for r in rows]


async def names(db: Executor, ids: list[str]) -> dict[str, str]:
    """Device names by id."""
    return {r["id"]: r["name"] for r in await db.fetch("SELECT id, name FROM devices WHERE id = ANY($1)", ids)}


async def count_live_tokens(db: Executor, contract_id: str, now: int) -> int:
    """How many devices hold a live token of the contract."""
    return await db.fetchval(f"SELECT count(*) FROM devices d WHERE d.contract_id = $1 AND {live_token(now='$2')}",
                             contract_id, now)

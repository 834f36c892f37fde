"""The certificate registry: modem and product certificates, and the devices declared under them.

The operator fills it (`backhaul registry load`, `oss.registry`); the API only reads it. A device's
product certificate is the one its `productCertificate.key` names, else the one its manufacturer
declared for its id and PAC; its modem certificate is the one that product certificate embeds.
"""
from __future__ import annotations

from typing import Any

import asyncpg

from oss.storage.sql import Executor, upsert

MODEM, PRODUCT = "modem", "product"


async def save(db: Executor, values: dict[str, Any]) -> None:
    """Create or update one certificate (its `id` is derived from its kind and key)."""
    await upsert(db, "certificates", ("id",), values, stamped=True)


async def declare_device(db: Executor, device_id: str, pac: str, product_certificate_id: str) -> None:
    """Record a device as its manufacturer declared it: its id, its PAC and its product certificate."""
    await upsert(db, "certified_devices", ("device_id",),
                 {"device_id": device_id, "pac": pac, "product_certificate_id": product_certificate_id})


async def ids_by_key(db: Executor, kind: str, keys: list[str]) -> dict[str, str]:
    """The ids of the certificates of `kind` among `keys`, by key."""
    rows = await db.fetch("SELECT key, id FROM certificates WHERE kind = $1 AND key = ANY($2)", kind, keys)
    return {r["key"]: r["id"] for r in rows}


async def by_id(db: Executor, ident: str) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM certificates WHERE id = $1", ident)


async def product_of_device(db: Executor, device: asyncpg.Record) -> asyncpg.Record | None:
    """The product certificate of a registered device (see the module's docstring), if the registry has it."""
    if device["product_certificate"]:
        return await db.fetchrow("SELECT * FROM certificates WHERE kind = $1 AND key = $2", PRODUCT,
                                 device["product_certificate"])
    return await declared(db, device["id"], device["pac"] or "")


async def declared(db: Executor, device_id: str, pac: str) -> asyncpg.Record | None:
    """The product certificate the manufacturer declared for this device id and PAC (any case)."""
    return await db.fetchrow("SELECT c.* FROM certified_devices d JOIN certificates c ON c.id = d.product_certificate_id "
                             "WHERE d.device_id = $1 AND d.pac = upper($2)", device_id.upper(), pac)

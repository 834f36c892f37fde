"""The registry the operator fills: certificates, the devices declared under them, geolocation payload formats.

`backhaul registry load FILE` reads one JSON document (`deploy/registry.example.json` shows every
field) and creates or updates its entries in one transaction; nothing is deleted. Sections:

- `modemCertificates`, `productCertificates`: `key` and `name` required; a product certificate
  names its modem by `modemCertificateKey` (in the same file or already loaded). A certificate's id
  is derived from its kind and key, so loading a file again updates it;
- `devices`: `{id, pac, productCertificateKey}`, as a manufacturer declares them: they answer
  `/devices/{id}/product-certificate?pac=`, and give a registered device without a
  `productCertificate` key its certificate;
- `geolocPayloads`: `{name, id?, groupId?}`, offered to `groupId` and the groups below it, or to
  every group without one.

Every problem is reported at once, each naming the entry and the field
(`productCertificates[1].modemCertificateKey: ...`); a file with any problem changes nothing.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from oss.openapi import DEVICE_ID, INT32, MS, OID, PAC, RADIO_CONFIGURATION, A, B, E, I, N, O, S, nullable
from oss.storage import certificates, geoloc_payloads, groups
from oss.storage.certificates import MODEM, PRODUCT
from oss.validate import schema_errors

_COMMON: dict[str, Any] = dict(
    key=S(1, 100), name=S(1, 100), status=E(0, 1, description="0 ongoing, 1 finalized (default)"),
    version=S(0, 100), description=S(0, 1000), manufacturer=O(("name",), id=OID, name=S(1, 100)),
    modes=A(E(0, 1), description="0 uplink only, 1 uplink and downlink"), inputSensitivity=I(-200, 0))
SCHEMA = O(
    modemCertificates=A(O(("key", "name"), **_COMMON, repeaterFunction=B, radioConfigurations=A(O(
        ("id",), id=RADIO_CONFIGURATION, outputPower=N(-50, 50), balancedLinkBudget=B)))),
    productCertificates=A(O(("key", "name"), **_COMMON, modemCertificateKey=S(1, 100), devKit=B,
                            radioConfigurations=A(O(("id",), id=RADIO_CONFIGURATION, uplinkClass=I(0, 7),
                                                    maxEirp=N(-50, 50))),
                            externalId=S(0, 100), certificateCode=I(0, INT32), certificateIndex=I(0, INT32),
                            qualificationTime=MS, reportNumber=S(0, 100), encryptionPayload=B)),
    devices=A(O(("id", "pac", "productCertificateKey"), id=DEVICE_ID, pac=PAC, productCertificateKey=S(1, 100))),
    geolocPayloads=A(O(("name",), id=OID, name=S(1, 100), groupId=nullable(OID))))
SECTIONS = tuple(SCHEMA["properties"])
# Entry field -> certificates column, where they differ only in spelling.
COLUMNS = {"key": "key", "name": "name", "version": "version", "description": "description",
           "inputSensitivity": "input_sensitivity", "radioConfigurations": "radio_configurations",
           "repeaterFunction": "repeater_function", "devKit": "dev_kit", "externalId": "external_id",
           "certificateCode": "certificate_code", "certificateIndex": "certificate_index",
           "qualificationTime": "qualification_time", "reportNumber": "report_number",
           "encryptionPayload": "encryption_payload"}


class RegistryError(ValueError):
    """A registry file that cannot be loaded; `problems` name each entry and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the registry file: " + "; ".join(problems[:5]))
        self.problems = problems


def stable_id(*parts: str) -> str:
    """A 24-hex-character id derived from names, so that loading an entry again updates it."""
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:24]


@dataclass
class Registry:
    """A checked registry file: certificate rows (column -> value), declared devices, geolocation formats."""

    modems: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    modem_keys: dict[str, str] = field(default_factory=dict)  # a product's key -> the key of its modem
    devices: list[tuple[str, str, str]] = field(default_factory=list)  # (device id, PAC, product key)
    geoloc: list[tuple[str, str, str | None]] = field(default_factory=list)  # (id, name, group id)


def certificate_row(kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The `certificates` row of a checked entry."""
    manufacturer = entry.get("manufacturer")
    row = {column: entry.get(name) for name, column in COLUMNS.items()}
    row.update(id=stable_id(kind, entry["key"]), kind=kind, status=entry.get("status", 1),
               modes=entry.get("modes", []), radio_configurations=entry.get("radioConfigurations", []),
               manufacturer_id=(manufacturer.get("id") or stable_id("manufacturer", manufacturer["name"]))
               if manufacturer else None,
               manufacturer_name=manufacturer["name"] if manufacturer else None)
    return row


def _unique(entries: list[dict[str, Any]], section: str, key: str, problems: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        value = str(entry[key]).upper() if key == "id" else entry[key]
        if value in seen:
            problems.append(f"{section}[{i}].{key}: {entry[key]!r} appears twice (also {section}[{seen[value]}])")
        seen.setdefault(value, i)


def parse_registry(document: Any) -> Registry:
    """Check a registry document (decoded JSON) and make its rows; RegistryError listing every problem."""
    if not isinstance(document, dict):
        raise RegistryError(["the registry file must hold a JSON object"])
    problems = [f"{name}: unknown section (sections: {', '.join(SECTIONS)})" for name in document
                if name not in SECTIONS]
    problems += [f"{e.field}: {e.message}" for e in schema_errors(document, SCHEMA)]
    if problems:
        raise RegistryError(problems)
    sections = {name: document.get(name, []) for name in SECTIONS}
    _unique(sections["modemCertificates"], "modemCertificates", "key", problems)
    _unique(sections["productCertificates"], "productCertificates", "key", problems)
    _unique(sections["devices"], "devices", "id", problems)
    if problems:
        raise RegistryError(problems)
    registry = Registry(modems=[certificate_row(MODEM, e) for e in sections["modemCertificates"]],
                        products=[certificate_row(PRODUCT, e) for e in sections["productCertificates"]])
    registry.modem_keys = {e["key"]: e["modemCertificateKey"] for e in sections["productCertificates"]
                           if e.get("modemCertificateKey")}
    registry.devices = [(e["id"].upper(), e["pac"].upper(), e["productCertificateKey"]) for e in sections["devices"]]
    registry.geoloc = [(e.get("id") or stable_id("geoloc", e["name"], e.get("groupId") or ""), e["name"],
                        e.get("groupId")) for e in sections["geolocPayloads"]]
    return registry


async def load_registry(conn: asyncpg.Connection, registry: Registry) -> dict[str, int]:
    """Create or update every entry, in one transaction; RegistryError (and no change) when an entry names a
    certificate or a group that exists neither in the file nor in the database. The counts loaded, by section."""
    async with conn.transaction():
        modem_ids = {r["key"]: r["id"] for r in registry.modems}
        modem_ids |= await certificates.ids_by_key(conn, MODEM, [k for k in registry.modem_keys.values()
                                                                 if k not in modem_ids])
        product_ids = {r["key"]: r["id"] for r in registry.products}
        product_ids |= await certificates.ids_by_key(conn, PRODUCT, [d[2] for d in registry.devices
                                                                     if d[2] not in product_ids])
        known_groups = await groups.summaries(conn, [g for _, _, g in registry.geoloc if g])
        problems = [f"productCertificates[{i}].modemCertificateKey: modem certificate {registry.modem_keys[r['key']]!r} "
                    f"is neither in this file nor in the registry"
                    for i, r in enumerate(registry.products)
                    if r["key"] in registry.modem_keys and registry.modem_keys[r["key"]] not in modem_ids]
        problems += [f"devices[{i}].productCertificateKey: product certificate {key!r} is neither in this file nor "
                     f"in the registry" for i, (_, _, key) in enumerate(registry.devices) if key not in product_ids]
        problems += [f"geolocPayloads[{i}].groupId: group {group} does not exist"
                     for i, (_, _, group) in enumerate(registry.geoloc) if group and group not in known_groups]
        if problems:
            raise RegistryError(problems)
        for row in registry.modems:
            await certificates.save(conn, row)
        for row in registry.products:
            modem_key = registry.modem_keys.get(row["key"])
            await certificates.save(conn, {**row, "modem_certificate_id": modem_ids[modem_key] if modem_key else None})
        for device, pac, key in registry.devices:
            await certificates.declare_device(conn, device, pac, product_ids[key])
        for ident, name, group in registry.geoloc:
            await geoloc_payloads.save(conn, ident, name, group)
    return {"modemCertificates": len(registry.modems), "productCertificates": len(registry.products),
            "devices": len(registry.devices), "geolocPayloads": len(registry.geoloc)}

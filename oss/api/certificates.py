"""Device certificates, from the registry the operator fills (`oss.registry`, `oss.storage.certificates`).

- `/devices/{id}/certificate/product`: the product certificate of a registered device (the one its
  `productCertificate.key` names, else the one declared for its id and PAC);
- `/devices/{id}/certificate/modem`: the modem certificate that product certificate embeds;
- `/devices/{id}/product-certificate?pac=`: the product certificate declared for an id and PAC,
  before anyone registered the device. The PAC is the proof of ownership; a device registered in
  another group is not found, as everywhere.

Certificates are not tenant data (every device of a model carries the same one); the device they
are asked through is, and is looked up in the caller's groups first.
"""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from oss.auth import Caller, caller
from oss.context import pool
from oss.errors import BadRequest, FieldError, NotFound, json_response
from oss.fields import Fields, fields
from oss.params import PAC, device_id, q_str
from oss.shape import compact
from oss.storage import certificates, devices

routes = web.RouteTableDef()
EXPANDABLE = ("manufacturer",)
DOWNLINK_MODE, PAC_DOWNLINK = 1, 1  # radio certificate mode "uplink and downlink"; the PAC answer's DOWNLINK


def common_body(r: asyncpg.Record, expand: Fields) -> dict[str, Any]:
    """The reference's `commonCertificate` part; `manufacturer` is `{id}`, and its name with `fields`."""
    manufacturer = compact({"id": r["manufacturer_id"],
                            "name": r["manufacturer_name"] if "manufacturer" in expand else None})
    return compact({"id": r["id"], "name": r["name"], "status": r["status"], "key": r["key"],
                    "manufacturer": manufacturer or None, "version": r["version"], "description": r["description"]})


def certificate_body(r: asyncpg.Record, expand: Fields) -> dict[str, Any]:
    """`modemCertificate` or `productCertificate`, by the certificate's kind."""
    own = ({"repeaterFunction": r["repeater_function"]} if r["kind"] == certificates.MODEM
           else {"devKit": r["dev_kit"]})
    return compact({**common_body(r, expand), "modes": list(r["modes"]), "inputSensitivity": r["input_sensitivity"],
                    "radioConfigurations": r["radio_configurations"], **own})


def with_pac_body(r: asyncpg.Record) -> dict[str, Any]:
    """`productCertificateWithPacResponse`: its `modes` are [1] (DOWNLINK) for a certificate with downlink."""
    return compact({
        **common_body(r, {}), "externalId": r["external_id"], "certificateCode": r["certificate_code"],
        "certificateIndex": r["certificate_index"], "qualificationTime": r["qualification_time"],
        "reportNumber": r["report_number"], "inputSensitivity": r["input_sensitivity"],
        "encryptionPayload": r["encryption_payload"], "devKit": r["dev_kit"],
        "modes": [PAC_DOWNLINK] if DOWNLINK_MODE in r["modes"] else [],
        "standards": [{"id": rc["id"]} for rc in r["radio_configurations"]],
        "standardCfgs": r["radio_configurations"]})


def _reader(request: web.Request) -> tuple[Caller, Fields]:
    who = caller(request)
    who.require("devices")
    return who, fields(request, EXPANDABLE)


async def _product_of(conn: asyncpg.Connection, who: Caller, request: web.Request) -> asyncpg.Record:
    device = await devices.scoped(conn, who.group_id, device_id(request))
    product = await certificates.product_of_device(conn, device)
    if product is None:
        raise NotFound("The device has no product certificate in the registry.")
    return product


@routes.get("/v2/devices/{id}/certificate/product")
async def product_certificate(request: web.Request) -> web.Response:
    who, expand = _reader(request)
    async with pool(request).acquire() as conn:
        product = await _product_of(conn, who, request)
    return json_response(certificate_body(product, expand))


@routes.get("/v2/devices/{id}/certificate/modem")
async def modem_certificate(request: web.Request) -> web.Response:
    who, expand = _reader(request)
    async with pool(request).acquire() as conn:
        product = await _product_of(conn, who, request)
        modem = await certificates.by_id(conn, product["modem_certificate_id"]) \
            if product["modem_certificate_id"] else None
    if modem is None:
        raise NotFound("The device's product certificate names no modem certificate in the registry.")
    return json_response(certificate_body(modem, expand))


@routes.get("/v2/devices/{id}/product-certificate")
async def declared_product_certificate(request: web.Request) -> web.Response:
    who = caller(request)
    who.require("devices")
    ident = device_id(request)
    pac = q_str(request, "pac")
    if pac is None:
        raise BadRequest(FieldError("pac", "is required", "query"))
    if not PAC.fullmatch(pac):
        raise BadRequest(FieldError("pac", "must be 16 hexadecimal characters", "query"))
    async with pool(request).acquire() as conn:
        if await devices.existing(conn, [ident]):
            await devices.scoped(conn, who.group_id, ident)  # registered elsewhere: not found, as everywhere
        product = await certificates.declared(conn, ident, pac)
    if product is None:
        raise NotFound("No product certificate is declared for this device id and PAC.")
    return json_response(with_pac_body(product))

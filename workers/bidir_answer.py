"""What a customer's server answered a BIDIR callback: the downlink for the device, none, or a fault.

BIDIR answer (Sigfox contract): HTTP 200 with a JSON object holding, for the
device, `{"downlinkData": "<16 hex>"}` or `{"noData": true}`; or HTTP 204 for
no downlink. Entries for other devices are ignored (batch answers carry one
per device). Device id keys match case-insensitively and ignoring leading
zeros ("00AB12" is "ab12"). The Content-Type is not checked (unconfirmed in
Sigfox; we accept any as long as the body is that JSON object).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from callback_language.downlink import check_downlink_hex


@dataclass(frozen=True)
class DownlinkAnswer:
    """What a BIDIR receiver answered for one device."""

    kind: Literal["data", "no_data", "invalid"]
    data_hex: str | None = None
    reason: str | None = None


def _device_key(device_id: str) -> str:
    return device_id.strip().lower().lstrip("0")


def _same_device(a: str, b: str) -> bool:
    return _device_key(a) == _device_key(b)


def parse_bidir_answer(device_id: str, status: int, content_type: str | None, body: bytes) -> DownlinkAnswer:
    """Read a BIDIR receiver's answer for `device_id` (see the module docstring)."""
    if status == 204:
        return DownlinkAnswer("no_data")
    if status != 200:
        return DownlinkAnswer("invalid", reason=f"HTTP status {status}: expected 200 with a JSON answer or 204")
    if not body.strip():
        return DownlinkAnswer("invalid", reason="HTTP 200 with an empty body: answer 204 for no downlink")
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        return DownlinkAnswer("invalid", reason=f"body is not JSON (Content-Type {content_type!r}): {exc}")
    if not isinstance(doc, dict):
        return DownlinkAnswer("invalid", reason=f"body must be a JSON object keyed by device id, got {type(doc).__name__}")
    matches = [value for key, value in doc.items() if _same_device(key, device_id)]
    if not matches:
        return DownlinkAnswer("invalid", reason=f"no entry for device {device_id} in the answer")
    if len(matches) > 1:
        return DownlinkAnswer("invalid", reason=f"more than one entry for device {device_id} in the answer")
    entry = matches[0]
    if not isinstance(entry, dict):
        return DownlinkAnswer("invalid", reason=f"entry for device {device_id} must be a JSON object")
    has_data = "downlinkData" in entry
    no_data = entry.get("noData") is True
    if has_data and no_data:
        return DownlinkAnswer("invalid", reason=f"entry for device {device_id} has both downlinkData and noData")
    if no_data:
        return DownlinkAnswer("no_data")
    if not has_data:
        return DownlinkAnswer("invalid", reason=f"entry for device {device_id} has neither downlinkData nor noData: true")
    problem = check_downlink_hex(entry["downlinkData"])
    if problem:
        return DownlinkAnswer("invalid", reason=problem)
    return DownlinkAnswer("data", data_hex=entry["downlinkData"].lower())

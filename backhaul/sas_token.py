"""Azure shared access signatures (SAS tokens), as IoT Hub checks them (Microsoft's "Control access to
IoT Hub with shared access signatures"): pure functions, no clock of their own.

    SharedAccessSignature sr={URL-encoded resource}&sig={signature}&se={expiry}[&skn={policy name}]

signature = URL-encoded base64(HMAC-SHA256(base64-decoded key, URL-encoded resource + "\\n" + expiry)),
expiry in seconds since the epoch. Microsoft's samples URL-encode with `quote_plus` (Python) and
`encodeURIComponent` (Node.js), which agree on the characters a resource URI holds.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote_plus

PREFIX = "SharedAccessSignature "


class SasKeyError(ValueError):
    """A shared access key that is not base64."""


def decode_key(key: str) -> bytes:
    """The HMAC key of a shared access key (base64 text); SasKeyError if it is not base64."""
    try:
        decoded = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SasKeyError("SharedAccessKey must be base64") from exc
    if not decoded:
        raise SasKeyError("SharedAccessKey must not be empty")
    return decoded


def signature(resource: str, key: str, expiry: int) -> str:
    """base64 HMAC-SHA256 of `URL-encoded resource \\n expiry` with the decoded key (not yet URL-encoded)."""
    to_sign = f"{quote_plus(resource)}\n{expiry}".encode()
    return base64.b64encode(hmac.new(decode_key(key), to_sign, hashlib.sha256).digest()).decode()


def sas_token(resource: str, key: str, expiry: int, policy: str | None = None) -> str:
    """The SAS token granting `resource` (e.g. `hub.azure-devices.net/devices/dev1`) until `expiry`
    (epoch seconds), signed with `key` (base64); `policy` names a shared access policy (skn)."""
    token = f"{PREFIX}sr={quote_plus(resource)}&sig={quote_plus(signature(resource, key, expiry))}&se={expiry}"
    return f"{token}&skn={quote_plus(policy)}" if policy else token

"""Standard Webhooks signatures (https://www.standardwebhooks.com/), HMAC-SHA256.

A signed request carries three headers: `webhook-id` (stable across retries,
so receivers can de-duplicate), `webhook-timestamp` (epoch seconds of this
attempt) and `webhook-signature` ("v1,<base64 HMAC-SHA256>" of
"<id>.<timestamp>.<body>"; several may be given, separated by spaces).

Secrets: "whsec_<base64>" (the standard's form) signs with the base64-decoded
bytes, exactly as the reference libraries do. Any other string signs with its
UTF-8 bytes. Note that the reference libraries base64-decode such a string
too, so receivers using them should be given secrets in the whsec_ form.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

from backhaul.callback_secrets import signing_key

# One reading of a secret for signing and for the API's check of it.
secret_key = signing_key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """'v1,<base64 HMAC-SHA256 of "msg_id.timestamp.body">'."""
    digest = _digest(secret_key(secret), msg_id, int(timestamp), body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(secret: str, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """webhook-id, webhook-timestamp and webhook-signature for one attempt."""
    timestamp = int(time.time() if now is None else now)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """True if one v1 signature matches and the timestamp is within tolerance of now."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and raw_timestamp and signatures):
        return False
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(secret_key(secret), msg_id, timestamp, body)
    for versioned in signatures.split():
        version, _, encoded = versioned.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(expected, given):
            return True
    return False

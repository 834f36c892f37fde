"""Standard Webhooks signatures."""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from backhaul.signing import secret_key, sign, signature_headers, verify

# The published test vector of the Standard Webhooks reference libraries
# (standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
# test_sign_function); checked independently with hmac below.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_published_vector():
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == EXPECTED


def test_published_vector_by_hand():
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    digest = hmac.new(key, f"{MSG_ID}.{TIMESTAMP}.".encode() + BODY, hashlib.sha256).digest()
    assert EXPECTED == "v1," + base64.b64encode(digest).decode()


def test_plain_secret_is_utf8_bytes():
    digest = hmac.new("pässword".encode(), b"id.1.{}", hashlib.sha256).digest()
    assert sign("pässword", "id", 1, b"{}") == "v1," + base64.b64encode(digest).decode()


def test_unpadded_whsec_secret_is_accepted():
    key = b"0123456789"
    unpadded = base64.b64encode(key).decode().rstrip("=")
    assert secret_key("whsec_" + unpadded) == key


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!"])
def test_bad_secrets_are_refused(secret):
    with pytest.raises(ValueError, match="secret"):
        secret_key(secret)


def test_headers_and_verify_round_trip():
    headers = signature_headers(SECRET, MSG_ID, BODY, now=TIMESTAMP)
    assert headers == {"webhook-id": MSG_ID, "webhook-timestamp": str(TIMESTAMP), "webhook-signature": EXPECTED}
    assert verify(SECRET, headers, BODY, now=TIMESTAMP + 10)


def test_verify_published_vector_with_mixed_case_headers_and_several_signatures():
    headers = {
        "Webhook-Id": MSG_ID,
        "WEBHOOK-TIMESTAMP": str(TIMESTAMP),
        "webhook-signature": "v1,bm9wZQ== v2,whatever v1a,x " + EXPECTED,
    }
    assert verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_verify_refuses_tampering_and_stale_or_future_timestamps():
    headers = signature_headers(SECRET, MSG_ID, BODY, now=TIMESTAMP)
    assert not verify(SECRET, headers, BODY + b" ", now=TIMESTAMP)
    assert not verify("whsec_" + base64.b64encode(b"other").decode(), headers, BODY, now=TIMESTAMP)
    assert not verify(SECRET, {**headers, "webhook-id": "msg_other"}, BODY, now=TIMESTAMP)
    assert not verify(SECRET, headers, BODY, now=TIMESTAMP + 301)
    assert not verify(SECRET, headers, BODY, now=TIMESTAMP - 301)
    assert verify(SECRET, headers, BODY, tolerance_s=600, now=TIMESTAMP + 301)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_needs_all_three_headers(missing):
    headers = signature_headers(SECRET, MSG_ID, BODY, now=TIMESTAMP)
    del headers[missing]
    assert not verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_verify_refuses_garbage_timestamp_and_signature():
    headers = signature_headers(SECRET, MSG_ID, BODY, now=TIMESTAMP)
    assert not verify(SECRET, {**headers, "webhook-timestamp": "soon"}, BODY, now=TIMESTAMP)
    assert not verify(SECRET, {**headers, "webhook-signature": "v1,%%%"}, BODY, now=TIMESTAMP)


def test_retries_keep_the_id_and_change_the_timestamp():
    first = signature_headers(SECRET, MSG_ID, BODY, now=TIMESTAMP)
    retry = signature_headers(SECRET, MSG_ID, BODY, now=TIMESTAMP + 60)
    assert first["webhook-id"] == retry["webhook-id"]
    assert first["webhook-signature"] != retry["webhook-signature"]

"""What in a callback is secret: header classification, URL credentials, sealing and opening a row,
scrubbing error texts, and the API's signing-secret rule."""
from __future__ import annotations

import base64

import pytest

from backhaul.callback_secrets import (
    CallbackSecrets,
    is_secret_header,
    open_callback,
    redact_url,
    seal_callback,
    split_userinfo,
    with_userinfo,
)
from backhaul.secretbox import Keyring, new_key
from oss.secret_fields import generate_signing_secret, signing_secret_error

BOX = Keyring([new_key()], "test")


@pytest.mark.parametrize("name", [
    "Authorization", "authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "x-apikey", "Api-Key",
    "X-Auth-Token", "X-Access-Token", "X-Client-Secret", "X-Signature", "X-Hub-Signature-256", "X-Password",
    "X-Passwd", "X-Credentials", "X-Session-Id", "Ocp-Apim-Subscription-Key", "X-AUTH", "Private-Token",
])
def test_secret_headers(name):
    assert is_secret_header(name)


@pytest.mark.parametrize("name", [
    "X-Tenant", "X-Fixed", "Accept", "User-Agent", "X-Request-Id", "X-Device", "Content-Language", "X-Txt",
    "Keep-Alive-Hint", "X-Forwarded-For",
])
def test_clear_headers(name):
    assert not is_secret_header(name)


def test_url_credentials_split_off_and_put_back():
    url = "https://alice:p%40ss@host.example:8443/in?x=a@b&d={device}#frag@x"
    bare, userinfo = split_userinfo(url)
    assert (bare, userinfo) == ("https://host.example:8443/in?x=a@b&d={device}#frag@x", "alice:p%40ss")
    assert redact_url(url) == bare
    assert with_userinfo(bare, userinfo) == url
    assert split_userinfo("http://host/path@x") == ("http://host/path@x", None), "an @ after the host is not userinfo"
    assert split_userinfo("http://u:p:q@h/") == ("http://h/", "u:p:q")


def test_a_row_sealed_then_opened():
    row = {"id": "cb", "url": "http://bob:hunter2-secret@127.0.0.1:9/x?d={device}",
           "headers": {"Authorization": "Bearer tok-123456", "X-Api-Key": "k-{device}-9876", "X-Tenant": "{device}"},
           "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "channel": "URL"}
    sealed = seal_callback(row, BOX)
    assert sealed["url"] == "http://127.0.0.1:9/x?d={device}" and sealed["headers"] == {"X-Tenant": "{device}"}
    assert set(sealed["secret_headers"]) == {"Authorization", "X-Api-Key"}
    text = repr(sealed)
    for secret in ("hunter2", "bob:", "tok-123456", "9876", "MfKQ9r8"):
        assert secret not in text
    opened = open_callback(sealed, BOX)
    assert opened.basic_auth == ("bob", "hunter2-secret")
    assert opened.headers == {"Authorization": "Bearer tok-123456", "X-Api-Key": "k-{device}-9876"}
    assert opened.signing_secret == row["signing_secret"]
    assert "hunter2" not in repr(opened) and "tok-123456" not in repr(opened)
    assert seal_callback({"url": "http://h/x", "headers": {"X-A": "1"}}) == {
        "url": "http://h/x", "url_credentials": None, "headers": {"X-A": "1"}, "secret_headers": {}}, \
        "a row without secrets needs no key"


def test_scrub_masks_every_form_of_a_secret():
    secrets = CallbackSecrets(("bob", "hunter2-secret"), {"X-Api-Key": "k-9876543"}, "whsec_abcdefgh")
    basic = base64.b64encode(b"bob:hunter2-secret").decode()
    text = f"failed: bob:hunter2-secret / {basic} / hunter2-secret / k-9876543 / whsec_abcdefgh / bob"
    scrubbed = secrets.scrub(text)
    for value in ("hunter2", basic, "k-9876543", "whsec_abcdefgh"):
        assert value not in scrubbed
    assert scrubbed.endswith("/ bob"), "short values (a user name) are left alone"
    assert secrets.scrub(None) is None


def test_signing_secret_rule():
    generated = generate_signing_secret()
    assert generated.startswith("whsec_") and len(base64.b64decode(generated[6:])) == 32
    assert generated != generate_signing_secret()
    assert signing_secret_error(generated) is None
    assert signing_secret_error("whsec_" + base64.b64encode(b"x" * 24).decode().rstrip("=")) is None
    assert signing_secret_error("whsec_" + base64.b64encode(b"x" * 64).decode()) is None
    assert "23 bytes" in signing_secret_error("whsec_" + base64.b64encode(b"x" * 23).decode())
    assert "65 bytes" in signing_secret_error("whsec_" + base64.b64encode(b"x" * 65).decode())
    assert "not valid base64" in signing_secret_error("whsec_***not-base64***")
    assert "whsec_" in signing_secret_error("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

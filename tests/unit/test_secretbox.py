"""The keyring: sealing round trip, rotation, wrong keys, where the keys come from."""
from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from backhaul.secretbox import (
    Keyring,
    SealedSecretError,
    SecretKeyError,
    ensure_dev_key_file,
    load_keyring,
    new_key,
    parse_key_file,
)
from backhaul.settings import Settings

OLD, NEW, OTHER = new_key(), new_key(), new_key()


def conf(tmp_path: Path, **values) -> Settings:
    return replace(Settings(), state_dir=tmp_path, **values)


def test_round_trip_and_tokens_differ():
    box = Keyring([OLD], "test")
    token = box.seal("alice:p@ss-w0rd")
    assert token != box.seal("alice:p@ss-w0rd"), "every sealing is fresh (random IV)"
    assert "p@ss" not in token and box.open(token) == "alice:p@ss-w0rd"
    assert box.open(box.seal("é ünïcode ✓")) == "é ünïcode ✓"


def test_wrong_key_and_tampering_are_refused_without_showing_anything():
    token = Keyring([OLD], "test").seal("hunter2-secret")
    with pytest.raises(SealedSecretError) as wrong:
        Keyring([OTHER], "BACKHAUL_SECRET_KEYS").open(token)
    assert "BACKHAUL_SECRET_KEYS" in str(wrong.value) and OTHER not in str(wrong.value)
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SealedSecretError):
        Keyring([OLD], "test").open(tampered)
    with pytest.raises(SealedSecretError):
        Keyring([OLD], "test").open("not a token")


def test_rotation_first_key_seals_every_key_opens():
    before = Keyring([OLD], "old").seal("whsec_abc")
    during = Keyring([NEW, OLD], "rotating")
    assert during.open(before) == "whsec_abc", "the old key still opens during the rotation"
    resealed = during.reseal(before)
    assert Keyring([NEW], "new").open(resealed) == "whsec_abc", "resealed with the first key"
    with pytest.raises(SealedSecretError):
        Keyring([OLD], "old").open(resealed)
    assert Keyring([NEW], "new").open(during.seal("x")) == "x", "new values are sealed with the first key"
    with pytest.raises(SealedSecretError):
        Keyring([NEW], "new").reseal(Keyring([OTHER], "other").seal("y"))


def test_bad_keys_are_named_not_shown():
    with pytest.raises(SecretKeyError, match="key 2 is not a Fernet key"):
        Keyring([OLD, "too-short"], "BACKHAUL_SECRET_KEYS")
    with pytest.raises(SecretKeyError, match="holds no key"):
        Keyring([], "the key file")
    assert OLD not in repr(Keyring([OLD], "env")) and "1 key(s)" in repr(Keyring([OLD], "env"))


def test_keys_from_the_environment_first(tmp_path):
    box = load_keyring(conf(tmp_path, secret_keys=f" {NEW} , {OLD} ", secret_key_file=str(tmp_path / "nope")))
    assert box.size == 2 and box.source == "BACKHAUL_SECRET_KEYS"
    assert Keyring([NEW], "x").open(box.seal("v")) == "v"
    assert "secret_keys" not in repr(conf(tmp_path, secret_keys=NEW)) and NEW not in repr(
        conf(tmp_path, secret_keys=NEW)), "settings never show the keys"


def test_key_file_one_key_per_line(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2026-01\n{NEW}\n\n  {OLD}  \n")
    assert parse_key_file(path.read_text()) == [NEW, OLD]
    box = load_keyring(conf(tmp_path, secret_key_file=str(path)))
    assert box.size == 2 and Keyring([NEW], "x").open(box.seal("v")) == "v"


def test_an_explicit_key_file_that_does_not_exist_refuses_to_start(tmp_path):
    with pytest.raises(SecretKeyError, match="BACKHAUL_SECRET_KEY_FILE=.*does not exist"):
        load_keyring(conf(tmp_path, secret_key_file=str(tmp_path / "missing")))


def test_no_key_at_all_refuses_with_the_variables_named(tmp_path):
    with pytest.raises(SecretKeyError) as missing:
        load_keyring(conf(tmp_path))
    text = str(missing.value)
    assert "BACKHAUL_SECRET_KEYS" in text and "BACKHAUL_SECRET_KEY_FILE" in text and "backhaul secret-key" in text


def test_development_key_file_is_made_once_mode_600(tmp_path):
    path = ensure_dev_key_file(tmp_path / "state" / "secret-keys")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = path.read_text()
    assert ensure_dev_key_file(path).read_text() == first, "an existing key is never replaced"
    box = load_keyring(conf(tmp_path / "state"))
    assert box.size == 1 and box.source == str(path)

"""The keyring that seals stored secrets, and where its keys come from.

Sealing is Fernet (the `cryptography` library): AES-128-CBC with an
HMAC-SHA256 over it, so a token that was changed, or sealed under another
key, is refused rather than opened into garbage. A keyring holds one or more
keys: the first seals, every one opens (MultiFernet), which is what key
rotation needs.

Where the keys come from, first found wins:
1. `BACKHAUL_SECRET_KEYS`: keys separated by commas;
2. `BACKHAUL_SECRET_KEY_FILE`: a file, one key per line (blank lines and
   `#` comments ignored). Naming a file that does not exist is an error;
3. `<state_dir>/secret-keys` (`.local/secret-keys`): the development key
   file, which only the development tooling creates (`backhaul up`, the
   tests), mode 600.
A process that needs the keyring and finds none of these refuses to start
(`SecretKeyError`, naming the variables). A key is 32 random bytes in
url-safe base64, as `backhaul secret-key` prints it.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from backhaul.settings import Settings, settings

KEY_FILE_NAME = "secret-keys"
KEY_HELP = "a key is 32 random bytes in url-safe base64: generate one with `backhaul secret-key`"


class SecretKeyError(RuntimeError):
    """The keys are missing or malformed (a configuration problem; the message never holds a key)."""


class SealedSecretError(ValueError):
    """A sealed value that no configured key opens."""


class Keyring:
    """Seals with the first key, opens with any. Never shows its keys."""

    def __init__(self, keys: Sequence[str], source: str) -> None:
        if not keys:
            raise SecretKeyError(f"{source} holds no key; {KEY_HELP}")
        fernets = []
        for number, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode() if isinstance(key, str) else key))
            except (ValueError, TypeError):
                raise SecretKeyError(f"{source}: key {number} is not a Fernet key; {KEY_HELP}") from None
        self.source = source
        self.size = len(fernets)
        self._box = MultiFernet(fernets)

    def __repr__(self) -> str:
        return f"Keyring({self.size} key(s) from {self.source})"

    def seal(self, plaintext: str) -> str:
        """The sealed form (a Fernet token, ASCII) of `plaintext`."""
        return self._box.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        """The plaintext of a sealed value; SealedSecretError if no key opens it."""
        try:
            return self._box.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, AttributeError):
            raise SealedSecretError(
                f"a stored secret cannot be opened with the {self.size} key(s) from {self.source}: "
                "it was sealed with a key that is not configured (removed too early in a rotation?)") from None

    def reseal(self, token: str) -> str:
        """`token` sealed again with the first key (for rotation)."""
        try:
            return self._box.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError, AttributeError):
            raise SealedSecretError(
                f"a stored secret cannot be opened with the {self.size} key(s) from {self.source}") from None


def new_key() -> str:
    """A fresh random key, in the form the key settings take."""
    return Fernet.generate_key().decode("ascii")


def parse_key_file(text: str) -> list[str]:
    """The keys of a key file: one per line, blank lines and `#` comments ignored."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def dev_key_file(conf: Settings | None = None) -> Path:
    """Where the development key file lives: <state_dir>/secret-keys."""
    return (conf or settings()).state_dir / KEY_FILE_NAME


def load_keyring(conf: Settings | None = None) -> Keyring:
    """The keyring the settings describe (see the module docstring); SecretKeyError if there is none."""
    conf = conf or settings()
    if conf.secret_keys.strip():
        return Keyring([k.strip() for k in conf.secret_keys.split(",") if k.strip()], "BACKHAUL_SECRET_KEYS")
    if conf.secret_key_file:
        path = Path(conf.secret_key_file)
        if not path.is_file():
            raise SecretKeyError(f"BACKHAUL_SECRET_KEY_FILE={path} does not exist or is not a file")
        return Keyring(parse_key_file(path.read_text()), f"BACKHAUL_SECRET_KEY_FILE={path}")
    path = dev_key_file(conf)
    if path.is_file():
        return Keyring(parse_key_file(path.read_text()), str(path))
    raise SecretKeyError(
        "no key to seal callback secrets: set BACKHAUL_SECRET_KEYS or BACKHAUL_SECRET_KEY_FILE "
        f"(see the README, section Secrets); {KEY_HELP}. `backhaul up` and the tests create a "
        f"development key in {path}")


@functools.lru_cache(maxsize=1)
def keyring() -> Keyring:
    """The process-wide keyring, loaded on first use."""
    return load_keyring()


def ensure_dev_key_file(path: Path | None = None) -> Path:
    """Create the development key file (mode 600) unless it exists; returns its path.

    Only the development tooling calls this: a production process is given its keys.
    """
    path = path or dev_key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as f:
        f.write("# Backhaul development key (backhaul.secretbox); first line seals, every line opens.\n")
        f.write(new_key() + "\n")
    return path

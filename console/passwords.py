"""Console passwords: argon2id (memory-hard) through argon2-cffi, and the rules a new password must meet."""
from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults follow RFC 9106's second recommendation (64 MiB, 3 passes, 4 lanes).
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches `stored`; an absent hash is checked against one nothing matches, at the
    same cost, so the answer's timing does not tell whether the account has a password."""
    try:
        return _HASHER.verify(stored or _no_password_hash(), password)
    except (VerificationError, InvalidHashError):
        return False


@functools.lru_cache(maxsize=1)
def _no_password_hash() -> str:
    return _HASHER.hash(secrets.token_hex(32))


def password_problem(password: str, minimum: int, email: str = "") -> str | None:
    """Why a new password is refused (None when it is fine)."""
    if len(password) < minimum:
        return f"must be at least {minimum} characters"
    if len(password) > 1024:
        return "must be at most 1024 characters"
    if email and password.strip().lower() == email.strip().lower():
        return "must not be the e-mail address"
    if len(set(password)) < 4:
        return "must use at least 4 different characters"
    return None

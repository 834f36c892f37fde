"""Small checks the channel settings validators share; every error names `channelSettings.<member>`."""
from __future__ import annotations

import re
from typing import Any

from oss.errors import FieldError

FIELD = "channelSettings"
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$|^\[?[0-9A-Fa-f:.]+\]?$")


class Checker:
    """Collects the errors of one settings object."""

    def __init__(self, settings: dict[str, Any], known: tuple[str, ...], prefix: str = FIELD) -> None:
        self.settings = settings
        self.prefix = prefix
        self.errors: list[FieldError] = [FieldError(self.name(k), "is not a member of these settings; "
                                                                   f"expected one of {', '.join(known)}")
                                         for k in settings if k not in known]

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}"

    def fail(self, key: str, why: str) -> None:
        self.errors.append(FieldError(self.name(key), why))

    def present(self, key: str, required: bool) -> bool:
        if key not in self.settings or self.settings[key] is None:
            if required:
                self.fail(key, "is required")
            return False
        return True

    def text(self, key: str, *, required: bool = False, max_length: int = 1000) -> str | None:
        if not self.present(key, required):
            return None
        value = self.settings[key]
        if not isinstance(value, str):
            self.fail(key, "must be of type string")
            return None
        if required and not value.strip():
            self.fail(key, "must not be empty")
            return None
        if len(value) > max_length:
            self.fail(key, f"must be at most {max_length} characters")
            return None
        if "\x00" in value:
            self.fail(key, "must not contain NUL characters")
            return None
        return value

    def host(self, key: str, *, required: bool = True) -> str | None:
        value = self.text(key, required=required, max_length=253)
        if value is not None and not _HOST.match(value):
            self.fail(key, "must be a host name or an IP address (no scheme, port or path)")
            return None
        return value

    def integer(self, key: str, *, required: bool = False, choices: tuple[int, ...] | None = None,
                low: int | None = None, high: int | None = None) -> int | None:
        if not self.present(key, required):
            return None
        value = self.settings[key]
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, "must be of type integer")
        elif choices is not None and value not in choices:
            self.fail(key, f"must be one of {', '.join(map(str, choices))}")
        elif low is not None and value < low or high is not None and value > high:
            self.fail(key, f"must be between {low} and {high}")
        else:
            return value
        return None

    def boolean(self, key: str, *, required: bool = False) -> bool | None:
        if not self.present(key, required):
            return None
        value = self.settings[key]
        if not isinstance(value, bool):
            self.fail(key, "must be of type boolean")
            return None
        return value

    def choice(self, key: str, choices: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self.text(key, required=required)
        if value is not None and value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}")
            return None
        return value

    def obj(self, key: str, *, required: bool = False) -> dict[str, Any] | None:
        if not self.present(key, required):
            return None
        value = self.settings[key]
        if not isinstance(value, dict):
            self.fail(key, "must be of type object")
            return None
        return value

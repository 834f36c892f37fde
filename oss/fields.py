"""`fields=` expansion: `deviceType(name),group(name,type,level)` -> nested sets."""
from __future__ import annotations

import re

from aiohttp import web

from oss.errors import BadRequest, FieldError
from oss.params import q_str

Fields = dict[str, "Fields"]

_TOKEN = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*|[(),])\s*")


def parse_fields(text: str) -> Fields:
    """Parse a fields expression; raises ValueError with the position on bad syntax."""
    tokens: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"unexpected character at {pos}")
        tokens.append((match.group(1), match.start(1)))
        pos = match.end()

    def parse_list(i: int, closing: bool) -> tuple[Fields, int]:
        out: Fields = {}
        while i < len(tokens):
            name, at = tokens[i]
            if name in "(),":
                raise ValueError(f"expected a field name at {at}")
            i += 1
            sub: Fields = {}
            if i < len(tokens) and tokens[i][0] == "(":
                sub, i = parse_list(i + 1, True)
            out[name] = sub
            if i < len(tokens) and tokens[i][0] == ",":
                i += 1
                continue
            if i < len(tokens) and tokens[i][0] == ")":
                if not closing:
                    raise ValueError(f"unbalanced ')' at {tokens[i][1]}")
                return out, i + 1
            if i < len(tokens):
                raise ValueError(f"expected ',' or ')' at {tokens[i][1]}")
        if closing:
            raise ValueError("missing ')'")
        return out, i

    result, _ = parse_list(0, False)
    return result


def fields(request: web.Request, allowed: tuple[str, ...]) -> Fields:
    """The `fields` query parameter, its top-level names checked against `allowed`."""
    text = q_str(request, "fields")
    if not text:
        return {}
    try:
        parsed = parse_fields(text)
    except ValueError as exc:
        raise BadRequest(FieldError("fields", str(exc), "query")) from None
    for name in parsed:
        if name not in allowed:
            raise BadRequest(FieldError("fields", f"{name!r} cannot be expanded here; expandable: "
                                                  f"{', '.join(allowed) or 'none'}", "query"))
    return parsed

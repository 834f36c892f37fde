"""Request bodies checked against the schemas of our OpenAPI document.

The document is the one declaration of every body's shape; this enforces the
subset of JSON Schema it uses (type, required, properties, items, enum,
minimum/maximum, minLength/maxLength, pattern, format email, nullable, oneOf
with a discriminator) and reports every bad field with its path, e.g.
`data[3].pac`.
"""
from __future__ import annotations

import functools
import re
from typing import Any

from oss.errors import BadRequest, FieldError

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TYPES = {"string": str, "boolean": bool, "object": dict, "array": list}


@functools.lru_cache(maxsize=None)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _schemas() -> dict[str, Any]:
    from oss.openapi import document
    return document()["components"]["schemas"]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return _schemas()[ref.rsplit("/", 1)[1]] if ref else schema


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def _check(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    schema = _resolve(schema)
    name = path or "body"
    if value is None:
        if not schema.get("nullable"):
            errors.append(FieldError(name, "must not be null"))
        return
    if "oneOf" in schema:
        _check_one_of(value, schema, path, errors)
        return
    kind = schema.get("type")
    if kind and not _type_ok(value, kind):
        errors.append(FieldError(name, f"must be of type {kind}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(FieldError(name, f"must be one of {', '.join(map(str, schema['enum']))}"))
        return
    if kind == "object":
        _check_object(value, schema, path, errors)
    elif kind == "array":
        _check_array(value, schema, path, errors)
    elif kind == "string":
        _check_string(value, schema, name, errors)
    elif kind in ("integer", "number"):
        _check_number(value, schema, name, errors)


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    for key in schema.get("required", ()):
        if key not in value:
            errors.append(FieldError(f"{path}.{key}" if path else key, "is required"))
    for key, sub in schema.get("properties", {}).items():
        if key in value:
            _check(value[key], sub, f"{path}.{key}" if path else key, errors)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, item in value.items():
            _check(item, extra, f"{path}.{key}" if path else key, errors)
            if len(errors) > 100:
                return


def _check_array(value: list[Any], schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    name = path or "body"
    if len(value) < schema.get("minItems", 0):
        errors.append(FieldError(name, f"must have at least {schema['minItems']} items"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(FieldError(name, f"must have at most {schema['maxItems']} items"))
    for i, item in enumerate(value):
        _check(item, schema.get("items", {}), f"{path}[{i}]", errors)
        if len(errors) > 100:
            return


def _check_number(value: float, schema: dict[str, Any], name: str, errors: list[FieldError]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(FieldError(name, f"must be at least {schema['minimum']}"))
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(FieldError(name, f"must be at most {schema['maximum']}"))


def _check_string(value: str, schema: dict[str, Any], name: str, errors: list[FieldError]) -> None:
    if "\x00" in value:
        errors.append(FieldError(name, "must not contain NUL characters"))
    elif len(value) < schema.get("minLength", 0):
        errors.append(FieldError(name, f"must be at least {schema['minLength']} characters"))
    elif "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(FieldError(name, f"must be at most {schema['maxLength']} characters"))
    elif "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        errors.append(FieldError(name, schema.get("x-pattern-message", f"must match {schema['pattern']}")))
    elif schema.get("format") == "email" and not _EMAIL.fullmatch(value):
        errors.append(FieldError(name, "must be an e-mail address"))
    elif schema.get("format") == "timezone" and value not in _timezones():
        errors.append(FieldError(name, "must be an IANA time zone such as Europe/Paris"))


@functools.lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    import zoneinfo
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _check_one_of(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    disc = schema["discriminator"]["propertyName"]
    mapping = schema["discriminator"]["mapping"]
    name = f"{path}.{disc}" if path else disc
    if not isinstance(value, dict):
        errors.append(FieldError(path or "body", "must be of type object"))
    elif disc not in value:
        errors.append(FieldError(name, "is required"))
    elif not isinstance(value[disc], str) or value[disc] not in mapping:
        errors.append(FieldError(name, f"must be one of {', '.join(mapping)}"))
    else:
        _check(value, {"$ref": mapping[value[disc]]}, path, errors)


def _nul_errors(value: Any, path: str, errors: list[FieldError]) -> None:
    """PostgreSQL text cannot hold NUL: refuse it anywhere, known property or not."""
    if isinstance(value, str):
        if "\x00" in value:
            errors.append(FieldError(path or "body", "must not contain NUL characters"))
    elif isinstance(value, dict):
        for key, item in value.items():
            shown = key.replace("\x00", "\\u0000")
            where = f"{path}.{shown}" if path else shown
            if "\x00" in key:
                errors.append(FieldError(path or "body", "property names must not contain NUL characters"))
            _nul_errors(item, where, errors)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _nul_errors(item, f"{path}[{i}]", errors)


def field_errors(value: Any, schema_name: str, *, rows: str | None = None) -> list[FieldError]:
    """Every bad field of `value`; the items of the `rows` array are left to be checked one by one."""
    errors: list[FieldError] = []
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{schema_name}"}
    if rows and isinstance(value, dict) and isinstance(value.get(rows), list):
        resolved = _resolve(schema)
        schema = {**resolved, "properties": {**resolved["properties"], rows: {"type": "array"}}}
        _nul_errors({k: v for k, v in value.items() if k != rows}, "", errors)
    else:
        _nul_errors(value, "", errors)
    if not errors:
        _check(value, schema, "", errors)
    return errors


def schema_errors(value: Any, schema: dict[str, Any]) -> list[FieldError]:
    """Every bad field of `value` against an inline schema (not one of the document's; its `$ref`s may name them)."""
    errors: list[FieldError] = []
    _nul_errors(value, "", errors)
    if not errors:
        _check(value, schema, "", errors)
    return errors


def _unset(value: Any, schema: dict[str, Any]) -> Any:
    schema = _resolve(schema)
    if "oneOf" in schema:
        disc = schema["discriminator"]["propertyName"]
        kind = value.get(disc) if isinstance(value, dict) else None
        chosen = schema["discriminator"]["mapping"].get(kind) if isinstance(kind, str) else None
        return _unset(value, {"$ref": chosen}) if isinstance(chosen, str) else value
    if isinstance(value, dict) and schema.get("type") == "object":
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if item is None and not (sub is not None and _resolve(sub).get("nullable")):
                continue  # null means "unset": as if the property had not been sent
            out[key] = item if sub is None else _unset(item, sub)
        return out
    if isinstance(value, list) and schema.get("type") == "array":
        return [_unset(item, schema.get("items", {})) for item in value]
    return value


def unset_nulls(value: Any, schema_name: str) -> Any:
    """`value` without the `null` properties the schema does not declare nullable.

    The reference's rule: `null` means "unset". A property that can be cleared is declared nullable
    and its `null` reaches the handler (which clears it); any other `null` (an optional property of a
    creation, a property that cannot be cleared, an unknown one) is as if it had not been sent, so
    clients that write every property of their model, unset ones as `null`, are understood."""
    return _unset(value, {"$ref": f"#/components/schemas/{schema_name}"})


def validated(value: Any, schema_name: str, *, rows: str | None = None) -> dict[str, Any]:
    """`value` (its `null`s read as "unset": `unset_nulls`) if it fits the named schema, else 400 listing
    every bad field."""
    value = unset_nulls(value, schema_name)
    errors = field_errors(value, schema_name, rows=rows)
    if errors:
        raise BadRequest(errors)
    return value


def known(value: dict[str, Any], schema_name: str) -> dict[str, Any]:
    """Only the properties the schema declares (what may be stored)."""
    props = _resolve({"$ref": f"#/components/schemas/{schema_name}"}).get("properties", {})
    return {k: v for k, v in value.items() if k in props}

"""Checking a decoded record against what its consumers rely on: the decoders' one helper.

A record's module lists the fields its consumers read without a default
(`required`) and, of those they read when present, the ones whose type they
depend on (`optional`: a dictionary key, a number compared, a boolean that
decides), each with the JSON types it may have. Fields that are only copied
on (into variables, a PostgreSQL column that checks its own type) are not
listed: each check costs about a tenth of parsing the record. `checked`
refuses a record that does not match, naming the record and the field:

* a value that is not a JSON object: `AttributeError("message: type must be a
  JSON object, got list")`;
* a required field that is missing: `KeyError("time")`;
* a field of the wrong type: `TypeError("message.time: type must be int, got str")`.

These are the built-in errors a consumer reading the record by hand raised
before the records had decoders, so a dead letter's `errorType` keeps its
meaning (and the tests that read dead letters keep passing); the message now
names the field. Types are compared exactly (`type(v) in kinds`): JSON gives
`str`, `int`, `float`, `bool`, `list`, `dict` and `None` and nothing else, so
`True` is never taken for an integer. Fields a record does not list are left
alone: a producer may add one before its consumers read it.
"""
from __future__ import annotations

from typing import Any

NoneType = type(None)
NUMBER = (int, float)

# (field, the types its value may have)
Fields = tuple[tuple[str, tuple[type, ...]], ...]


def type_names(kinds: tuple[type, ...]) -> str:
    """`int or float`, `str or null`: the types of a field as a reason says them."""
    return " or ".join("null" if k is NoneType else k.__name__ for k in kinds)


def wrong_type(record: str, field: str, kinds: tuple[type, ...], value: Any) -> TypeError:
    """The error for `record.field` holding `value` instead of one of `kinds`."""
    got = "null" if value is None else type(value).__name__
    return TypeError(f"{record}.{field}: type must be {type_names(kinds)}, got {got}")


def checked(obj: Any, record: str, required: Fields, optional: Fields = ()) -> dict[str, Any]:
    """`obj` itself when it is a JSON object whose fields match; else the error naming the field."""
    if type(obj) is not dict:
        raise AttributeError(f"{record}: type must be a JSON object, got {type(obj).__name__}")
    for field, kinds in required:
        value = obj[field]  # KeyError(field) when it is missing
        if type(value) not in kinds:
            raise wrong_type(record, field, kinds, value)
    for field, kinds in optional:
        if field in obj and type(obj[field]) not in kinds:
            raise wrong_type(record, field, kinds, obj[field])
    return obj

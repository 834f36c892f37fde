"""The `config` record: one configuration row, published by the relay to the compacted `config` topic.

Key `<entity>:<id>` (`device:00AB12CD`, `deviceType:...`, `callback:...`,
`station:...`, `group:...`, `contract:...`); value the row as PostgreSQL's
`to_jsonb` gives it (the columns of the entity's table, `schemas/sql`), plus
`_changed_at` (epoch ms of the change, for the propagation metric); no value
(a tombstone) when the row was deleted. Compaction keeps the latest row of
each key, so a worker's configuration view (`backhaul.configview`) is the
whole topic read from the beginning. Callback secrets are sealed in the row.
"""
from __future__ import annotations

from typing import Any

import orjson

ConfigRow = dict[str, Any]


def config_key(entity: str, ident: str) -> bytes:
    return f"{entity}:{ident}".encode()


def split_config_key(key: bytes | str) -> tuple[str, str]:
    """(entity, id) of a record key."""
    entity, _, ident = (key.decode() if isinstance(key, bytes) else key).partition(":")
    return entity, ident


def encode_config_row(row: ConfigRow, changed_at_ms: int) -> bytes:
    return orjson.dumps({**row, "_changed_at": changed_at_ms})


def decode_config_row(key: str, raw: bytes | ConfigRow) -> ConfigRow:
    """The row in a record's value (or the row itself, as tests give it); ValueError when it is not a
    JSON object, naming the record's key."""
    row = orjson.loads(raw) if isinstance(raw, bytes) else raw
    if not isinstance(row, dict):
        raise ValueError(f"config record {key[:100]!r}: the value must be a JSON object")
    return row

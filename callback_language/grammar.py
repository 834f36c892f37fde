"""The Sigfox custom payload grammar (`payloadConfig`): parse, decode, encode.

Grammar, as accepted here::

    format     = field { whitespace field }
    field      = name ":" [byteIndex] ":" type
    type       = "bool:" bit
               | "char:" length [":" bitOffset]
               | "float:" ("32"|"64") [":" [endianness] [":" bitOffset]]
               | ("uint"|"int") ":" 1..64 [":" [endianness] [":" bitOffset]]
    endianness = "big-endian" | "little-endian"      (empty means big-endian)

Choices where the reference is silent or loose:

- Names are `[A-Za-z0-9_-]+`, case-sensitive and unique. Fields are separated
  by any run of whitespace; leading and trailing whitespace is ignored. Type
  and endianness words are lower case. Text with no field at all is an error.
- Written numbers are plain ASCII decimals: byte index 0..255, char length
  1..255, bit and bit offset 0..7. A written bit offset may not be empty.
- A number where the endianness goes, with nothing after it, is the bit
  offset: `uint:32:2` means `uint:32::2`, as in Sigfox's own documentation.
- Bits are numbered 7 (MSB) to 0. A field starts at bit `bit_offset` of byte
  `byte_index` and reads its bits towards the LSB and on into the following
  bytes, as one big-endian bit stream: `uint:12::3` on `AB CD EF` reads the low
  nibble of 0xAB and then 0xCD, giving 0xBCD.
- little-endian reverses the byte order of what was read. On fields wider than
  8 bits it needs a byte-aligned field (bit offset 7, size a multiple of 8) and
  anything else is refused when parsing; on 8 bits or fewer it changes nothing.
- `int` is two's complement over its own size; `float` is IEEE 754; `char`
  reads `length` bytes as Latin-1, so every byte is one character and nothing
  (NUL included) is dropped.

Empty byte index: bools take no room. The first field starts at byte 0; a
`bool` takes the byte the previous field (of any type) started on; any other
type ignores the bools before it and takes the byte after the last byte of the
previous field that is not a bool (byte 0 when there is none), or that last
byte itself when that field was written with an explicit bit offset (a bool's
bit is not one). "Last byte" is the byte holding the field's last bit. The
explicit offset is what counts, so `a::uint:8::7 b::uint:8` puts b on byte 0.

That is the reference's rule ("bool -> the byte the previous field started
on; other types -> the byte after the previous field") with "previous field"
read, for the other types, as the previous field that is not a bool: the
reading a real Sigfox backend shows, and the only one of the two that fits
both its decoding and the reference's vectors. How they come out:

- A real backend decodes `s1::uint:24 s2::uint:24 s3::uint:16 s4::uint:16
  b7::bool:7 ... b0::bool:0 c::uint:8 bat::uint:8` (eight bools, bits 7 to 0)
  on `0000fa000000000000000026` as s1 = 250, the bools false, c = 0 and
  bat = 38 (0x26, the last byte). s1..s4 cover bytes 0-9; the bools sit on
  byte 8, where s4 starts; c skips them to byte 10 (after s4) and bat is
  byte 11. Were the bools the previous field, c would be byte 9 and bat 0.
- `b1::bool:7 b2::bool:6 i1:1:uint:16` on `C01234`: b1 is byte 0; b2, a bool,
  stays on byte 0; i1 is explicit. Left implicit it would be byte 0 too,
  under the bools (no field before them takes room): which is why the
  reference writes its 1.
- `Speed::uint:8 Direction::uint:4 Status:1:uint:4::3` on `3C5A`: Speed is
  byte 0 (60). Speed had no bit offset, so Direction takes byte 1 at the
  default bit 7 and reads the high nibble 0x5. Status is explicitly byte 1,
  bit 3: the low nibble 0xA (10). Left implicit, Status would land on byte 2,
  since Direction had no written bit offset either.
- `str::char:6 i1::uint:16 i2::uint:32`: str covers bytes 0-5, so i1 starts on
  6 and i2 on 8.

Bools therefore share a byte with the field they follow or precede: a
grammar wanting a bool byte of its own writes its index.

A field that runs past the end of the payload is left out of the result; the
other fields still decode, and its `customData#` variable is absent. (Sigfox's
public documentation shows `i2::uint:32:2` on a payload five bits too short
giving a truncated number; we do not guess at a partial value.)

`custom_data_variables` writes bools as `true`/`false`, integers in decimal,
chars as they are, and floats as the shortest decimal that reads back to the
same value at the field's precision (so float:32 0.1 is "0.1", not
"0.10000000149011612"); NaN and infinities are "nan", "inf", "-inf".

`encode_payload` is the inverse of `decode_payload`: it makes the shortest
payload covering every field, zero-filled, with later fields winning where
fields overlap. It raises ValueError on a missing, unknown or unfit value.
"""
from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, replace

MAX_BYTE_INDEX = 255
MAX_CHAR_LENGTH = 255
TYPES = ("bool", "char", "float", "uint", "int")

_TOKEN = re.compile(r"\S+")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_BAD_NAME_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_DIGITS = re.compile(r"[0-9]+")


class GrammarError(ValueError):
    """A payloadConfig that cannot be used, with where and why."""

    def __init__(self, position: int, field: str | None, reason: str) -> None:
        super().__init__(position, field, reason)
        self.position = position
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        where = f" (field {self.field!r})" if self.field else ""
        return f"payloadConfig at {self.position}{where}: {self.reason}"


@dataclass(frozen=True)
class FieldSpec:
    """One field with its byte index resolved; `bit_offset` is the bool's bit."""

    name: str
    byte_index: int
    type: str
    length: int
    bit_offset: int = 7
    little_endian: bool = False

    @property
    def bits(self) -> int:
        """How many payload bits the field covers."""
        return self.length * 8 if self.type == "char" else self.length

    @property
    def first_bit(self) -> int:
        """Index of the field's first bit in the payload bit stream (0 = MSB of byte 0)."""
        return self.byte_index * 8 + 7 - self.bit_offset

    @property
    def last_byte(self) -> int:
        """The byte holding the field's last bit."""
        return (self.first_bit + self.bits - 1) // 8


@dataclass
class _Part:
    text: str
    position: int


def parse_grammar(text: str) -> tuple[FieldSpec, ...]:
    """Parse and validate a payloadConfig; raise GrammarError on any fault."""
    fields: list[FieldSpec] = []
    seen: set[str] = set()
    # The previous field that is not a bool, and whether it had a written bit offset.
    sized: FieldSpec | None = None
    sized_had_offset = False  # pragma: no mutate (unread while `sized` is None)
    for token in _TOKEN.finditer(text):
        spec, explicit_index, has_offset = _parse_field(token.group(), token.start())
        if spec.name in seen:
            raise GrammarError(token.start(), spec.name, f"duplicate field name {spec.name!r}")
        seen.add(spec.name)
        if explicit_index is None:
            spec = replace(spec, byte_index=_implicit_index(spec, fields[-1] if fields else None, sized,
                                                            sized_had_offset))
        fields.append(spec)
        if spec.type != "bool":
            sized, sized_had_offset = spec, has_offset
    if not fields:
        raise GrammarError(0, None, "no fields: expected name:byteIndex:type")
    return tuple(fields)


def _implicit_index(spec: FieldSpec, previous: FieldSpec | None, sized: FieldSpec | None,
                    sized_had_offset: bool) -> int:
    """Where a field without a byte index starts: bools take no room (see the module's docstring)."""
    if spec.type == "bool":
        return previous.byte_index if previous else 0
    if sized is None:
        return 0
    if sized_had_offset:
        return sized.last_byte
    return sized.last_byte + 1


def _split(token: str, position: int) -> list[_Part]:
    parts = []
    for text in token.split(":"):
        parts.append(_Part(text, position))
        position += len(text) + 1
    return parts


def _parse_field(token: str, position: int) -> tuple[FieldSpec, int | None, bool]:
    parts = _split(token, position)
    name = _parse_name(parts[0])
    if len(parts) < 3:
        end = position + len(token)
        raise GrammarError(end, name, f"incomplete field {token!r}: expected name:byteIndex:type")
    index_part, type_part, params = parts[1], parts[2], parts[3:]
    byte_index = _number(index_part, name, "byte index", 0, MAX_BYTE_INDEX) if index_part.text else None
    kind = type_part.text
    if not kind:
        raise GrammarError(type_part.position, name, f"missing type: expected one of {', '.join(TYPES)}")
    if kind not in TYPES:
        raise GrammarError(type_part.position, name,
                           f"unknown type {kind!r}: expected one of {', '.join(TYPES)}")
    if not params:
        what = {"bool": "bit", "char": "length"}.get(kind, "size")
        raise GrammarError(type_part.position + len(kind), name, f"missing {kind} {what}")
    if kind == "bool":
        bit = _number(params[0], name, "bool bit", 0, 7)
        _no_more(params, 1, kind, name)
        return FieldSpec(name, byte_index or 0, kind, 1, bit), byte_index, False
    if kind == "char":
        length = _number(params[0], name, "char length", 1, MAX_CHAR_LENGTH)
        endian_part, offset_part, limit = None, _param(params, 1), 2
    else:
        length = _size(params[0], name, kind)
        endian_part, offset_part, limit = _param(params, 1), _param(params, 2), 3
        if endian_part is not None and offset_part is None and _DIGITS.fullmatch(endian_part.text):
            endian_part, offset_part = None, endian_part
    little = _endianness(endian_part, name)
    offset = 7 if offset_part is None else _number(offset_part, name, "bit offset", 0, 7)
    _no_more(params, limit, kind, name)
    spec = FieldSpec(name, byte_index or 0, kind, length, offset, little)
    if little and spec.bits > 8 and (offset != 7 or spec.bits % 8):
        assert endian_part is not None
        raise GrammarError(endian_part.position, name,
                           "little-endian needs a byte-aligned field: bit offset 7 and a size that is a multiple of 8")
    return spec, byte_index, offset_part is not None


def _param(params: list[_Part], index: int) -> _Part | None:
    return params[index] if len(params) > index else None


def _no_more(params: list[_Part], limit: int, kind: str, name: str) -> None:
    if len(params) > limit:
        garbage = ":" + ":".join(part.text for part in params[limit:])
        raise GrammarError(params[limit].position - 1, name, f"unexpected {garbage!r} after the {kind} definition")


def _parse_name(part: _Part) -> str:
    if not part.text:
        raise GrammarError(part.position, None, "empty field name")
    if not _NAME.fullmatch(part.text):
        bad = _BAD_NAME_CHAR.search(part.text)
        assert bad is not None
        raise GrammarError(part.position + bad.start(), None,
                           f"invalid character {bad.group()!r} in field name {part.text!r}: "
                           "use letters, digits, '_' and '-'")
    return part.text


def _number(part: _Part, name: str, what: str, low: int, high: int) -> int:
    if not part.text:
        raise GrammarError(part.position, name, f"missing {what}")
    if not _DIGITS.fullmatch(part.text):
        raise GrammarError(part.position, name, f"{what} must be a number, got {part.text!r}")
    if len(part.text) > 4 or not low <= int(part.text) <= high:
        raise GrammarError(part.position, name, f"{what} must be {low}..{high}, got {part.text}")
    return int(part.text)


def _size(part: _Part, name: str, kind: str) -> int:
    if not part.text:
        raise GrammarError(part.position, name, f"missing {kind} size")
    if kind == "float":
        if part.text not in ("32", "64"):
            if not _DIGITS.fullmatch(part.text):
                raise GrammarError(part.position, name, f"float size must be a number, got {part.text!r}")
            raise GrammarError(part.position, name, f"float size must be 32 or 64 bits, got {part.text}")
        return int(part.text)
    if not _DIGITS.fullmatch(part.text):
        raise GrammarError(part.position, name, f"{kind} size must be a number, got {part.text!r}")
    if len(part.text) > 4 or not 1 <= int(part.text) <= 64:
        raise GrammarError(part.position, name, f"{kind} size must be 1..64 bits, got {part.text}")
    return int(part.text)


def _endianness(part: _Part | None, name: str) -> bool:
    if part is None or part.text in ("", "big-endian"):
        return False
    if part.text == "little-endian":
        return True
    raise GrammarError(part.position, name,
                       f"endianness must be 'big-endian' or 'little-endian', got {part.text!r}")


def decode_payload(fields: tuple[FieldSpec, ...], data: bytes) -> dict[str, bool | int | float | str]:
    """Decode `data` by the fields; a field running past the end is left out."""
    total = len(data) * 8
    stream = int.from_bytes(data, "big")  # pragma: no mutate (byteorder "big" is the default)
    values: dict[str, bool | int | float | str] = {}
    for spec in fields:
        end = spec.first_bit + spec.bits
        if end > total:
            continue
        raw = (stream >> (total - end)) & ((1 << spec.bits) - 1)
        if spec.little_endian and spec.bits > 8:  # pragma: no mutate (8 bits reversed are the same byte)
            raw = int.from_bytes(raw.to_bytes(spec.bits // 8, "big"), "little")  # pragma: no mutate (default)
        values[spec.name] = _from_raw(spec, raw)
    return values


def _from_raw(spec: FieldSpec, raw: int) -> bool | int | float | str:
    if spec.type == "bool":
        return raw == 1
    if spec.type == "uint":
        return raw
    if spec.type == "int":
        return raw - (1 << spec.bits) if raw >> (spec.bits - 1) else raw
    if spec.type == "float":
        value: float = struct.unpack(_float_format(spec), raw.to_bytes(spec.bits // 8, "big"))[0]  # pragma: no mutate
        return value
    return raw.to_bytes(spec.length, "big").decode("latin-1")  # pragma: no mutate (default order; any case)


def _float_format(spec: FieldSpec) -> str:
    return ">f" if spec.length == 32 else ">d"


def encode_payload(fields: tuple[FieldSpec, ...], values: dict[str, bool | int | float | str]) -> bytes:
    """Build the shortest payload that decodes to `values` (every field needs one)."""
    unknown = set(values) - {spec.name for spec in fields}
    if unknown:
        raise ValueError(f"no field named {sorted(unknown)[0]!r}")
    total = max(spec.last_byte + 1 for spec in fields) * 8 if fields else 0
    stream = 0
    for spec in fields:
        if spec.name not in values:
            raise ValueError(f"field {spec.name!r}: no value")
        raw = _to_raw(spec, values[spec.name])
        if spec.little_endian and spec.bits > 8:  # pragma: no mutate (8 bits reversed are the same byte)
            raw = int.from_bytes(raw.to_bytes(spec.bits // 8, "little"), "big")  # pragma: no mutate (default)
        shift = total - spec.first_bit - spec.bits
        mask = ((1 << spec.bits) - 1) << shift
        stream = (stream & ~mask) | (raw << shift)
    return stream.to_bytes(total // 8, "big")  # pragma: no mutate (byteorder "big" is the default)


def _to_raw(spec: FieldSpec, value: object) -> int:
    problem = f"field {spec.name!r}: {spec.type}:{spec.length} cannot hold {value!r}"
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise ValueError(problem)
        return int(value)
    if spec.type in ("uint", "int"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(problem)
        low, high = (0, 1 << spec.bits) if spec.type == "uint" else (-(1 << (spec.bits - 1)), 1 << (spec.bits - 1))
        if not low <= value < high:
            raise ValueError(problem)
        return value & ((1 << spec.bits) - 1)
    if spec.type == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(problem)
        try:
            return int.from_bytes(struct.pack(_float_format(spec), value), "big")  # pragma: no mutate
        except (OverflowError, struct.error):
            raise ValueError(problem) from None
    if not isinstance(value, str) or len(value) != spec.length:
        raise ValueError(problem)
    try:
        return int.from_bytes(value.encode("latin-1"), "big")  # pragma: no mutate (default order; any case)
    except UnicodeEncodeError:
        raise ValueError(problem) from None


def custom_data_variables(fields: tuple[FieldSpec, ...], data: bytes) -> dict[str, str]:
    """The `customData#<name>` template variables for a payload."""
    specs = {spec.name: spec for spec in fields}
    return {f"customData#{name}": _text(specs[name], value)
            for name, value in decode_payload(fields, data).items()}


def _text(spec: FieldSpec, value: bool | int | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float_text(value, spec.length)
    return str(value)


def _float_text(value: float, size: int) -> str:
    if not math.isfinite(value):
        return repr(value)
    if size == 32:
        packed = struct.pack(">f", value)
        for digits in range(1, 10):  # pragma: no mutate (.0g is .1g, and 9 digits always read back)
            shorter = float(f"{value:.{digits}g}")
            try:
                if struct.pack(">f", shorter) == packed:
                    return repr(shorter)
            except OverflowError:
                continue
    return repr(value)

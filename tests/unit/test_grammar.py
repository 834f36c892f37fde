"""The custom payload grammar: reference vectors, errors, short payloads, round trips."""
from __future__ import annotations

import math
import pickle
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callback_language.grammar import (
    FieldSpec,
    GrammarError,
    custom_data_variables,
    decode_payload,
    encode_payload,
    parse_grammar,
)

BOOLS = [f"b{bit}" for bit in range(7, -1, -1)]
REAL_BACKEND_GRAMMAR = ("s1::uint:24 s2::uint:24 s3::uint:16 s4::uint:16 "
                        + " ".join(f"{name}::bool:{name[1]}" for name in BOOLS) + " c::uint:8 bat::uint:8")
REFERENCE_VECTORS = [
    ("int1::uint:8 int2::uint:8", "1234", {"int1": 0x12, "int2": 0x34}),
    ("b1::bool:7 b2::bool:6 i1:1:uint:16", "C01234", {"b1": True, "b2": True, "i1": 0x1234}),
    ("b1::bool:7 b2::bool:6 i1:1:uint:16:little-endian", "801234", {"b1": True, "b2": False, "i1": 0x3412}),
    ("str::char:6 i1::uint:16 i2::uint:32", "41424344454601234567890A",
     {"str": "ABCDEF", "i1": 0x0123, "i2": 0x4567890A}),
    ("temp::int:8 humidity::uint:16:little-endian", "F41027", {"temp": -12, "humidity": 10000}),
    ("Speed::uint:8 Direction::uint:4 Status:1:uint:4::3", "3C5A", {"Speed": 60, "Direction": 5, "Status": 10}),
    ("b1::bool:7 b2::bool:6 i1:1:uint:16:little-endian i2::uint:8", "80123456",
     {"b1": True, "b2": False, "i1": 0x3412, "i2": 0x56}),
    # As a real Sigfox backend decodes it (issue 16): the bools take no room, so c and bat are bytes 10 and 11.
    (REAL_BACKEND_GRAMMAR, "0000fa000000000000000026",
     {"s1": 250, "s2": 0, "s3": 0, "s4": 0, **dict.fromkeys(BOOLS, False), "c": 0, "bat": 38}),
]


def decode(grammar: str, payload_hex: str) -> dict:
    return decode_payload(parse_grammar(grammar), bytes.fromhex(payload_hex))


@pytest.mark.parametrize(("grammar", "payload", "expected"), REFERENCE_VECTORS)
def test_reference_vectors(grammar: str, payload: str, expected: dict) -> None:
    result = decode(grammar, payload)
    assert result == expected
    assert [type(v) for v in result.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize(("grammar", "payload", "expected"), REFERENCE_VECTORS)
def test_reference_vectors_encode_back(grammar: str, payload: str, expected: dict) -> None:
    assert encode_payload(parse_grammar(grammar), expected) == bytes.fromhex(payload)


def test_bools_read_the_byte_where_the_previous_field_starts_and_take_no_room() -> None:
    payload = "0000fa0000000000a5ff0026"
    assert decode(REAL_BACKEND_GRAMMAR, payload) == {
        "s1": 250, "s2": 0, "s3": 0, "s4": 0xA5FF, "b7": True, "b6": False, "b5": True, "b4": False,
        "b3": False, "b2": True, "b1": False, "b0": True, "c": 0, "bat": 38}
    assert custom_data_variables(parse_grammar(REAL_BACKEND_GRAMMAR), bytes.fromhex(payload))[
        "customData#bat"] == "38"


def test_resolved_specs_of_the_nibble_vector() -> None:
    assert parse_grammar("Speed::uint:8 Direction::uint:4 Status:1:uint:4::3") == (
        FieldSpec("Speed", 0, "uint", 8, 7, False),
        FieldSpec("Direction", 1, "uint", 4, 7, False),
        FieldSpec("Status", 1, "uint", 4, 3, False),
    )


def byte_indexes(grammar: str) -> list[int]:
    return [spec.byte_index for spec in parse_grammar(grammar)]


@pytest.mark.parametrize(("grammar", "expected"), [
    ("a::bool:0", [0]),
    ("a::uint:8 b::uint:16 c::uint:8", [0, 1, 3]),
    ("s::char:3 i::int:8", [0, 3]),
    ("i::uint:16 b::bool:7", [0, 0]),
    ("i:4:uint:16 b::bool:7 c::bool:6", [4, 4, 4]),
    ("b::bool:7 i::uint:8", [0, 0]),
    ("b::bool:7 c::bool:0 i::uint:16 j::uint:8", [0, 0, 0, 2]),
    ("i::uint:16 b::bool:7 c::uint:8", [0, 0, 2]),
    ("i::uint:16 b::bool:7 c::bool:6 d::char:2 e::int:8", [0, 0, 0, 2, 4]),
    ("a::uint:8 b:3:bool:1 c::bool:0 d::uint:8", [0, 3, 3, 1]),
    ("a:6:uint:8 b:2:bool:1 c::uint:8", [6, 2, 7]),
    ("a::uint:12::3 b::bool:0 c::uint:8", [0, 0, 1]),
    ("a::uint:8::3 b::bool:0 c::uint:8", [0, 0, 1]),
    ("a::uint:8::7 b::bool:0 c::uint:8", [0, 0, 0]),
    (REAL_BACKEND_GRAMMAR, [0, 3, 6, 8, *[8] * 8, 10, 11]),
    ("a::uint:4 b::uint:4", [0, 1]),
    ("Speed::uint:8 Direction::uint:4 Status::uint:4::3", [0, 1, 2]),
    ("a::uint:4::7 b::uint:4::3 c::uint:8", [0, 0, 0]),
    ("a::uint:12::3 b::uint:8", [0, 1]),
    ("a::uint:8::3 b::uint:8", [0, 1]),
    ("a::uint:8::7 b::uint:8", [0, 0]),
    ("a::uint:8:big-endian:7 b::uint:8", [0, 0]),
    ("a::char:2:3 b::uint:8", [0, 2]),
    ("a:5:uint:8 b::bool:1 c::uint:8", [5, 5, 6]),
    ("a::float:64 b::float:32", [0, 8]),
])
def test_empty_byte_index_resolution(grammar: str, expected: list[int]) -> None:
    assert byte_indexes(grammar) == expected


@pytest.mark.parametrize(("grammar", "payload", "expected"), [
    ("x::uint:12::3", "ABCDEF", {"x": 0xBCD}),
    ("x::uint:16::0", "01FF80", {"x": 0b1_11111111_1000000}),
    ("x::uint:9::0", "01FF", {"x": 0x1FF}),
    ("t::int:4::3", "0F", {"t": -1}),
    ("t::int:12::3", "0800", {"t": -2048}),
    ("s::char:2:3", "041420", {"s": "AB"}),
    ("f::float:32::3", "03DCCCCCD0", {"f": struct.unpack(">f", bytes.fromhex("3DCCCCCD"))[0]}),
    ("b::bool:0", "01", {"b": True}),
])
def test_reads_with_a_bit_offset_continue_into_following_bytes(grammar: str, payload: str, expected: dict) -> None:
    assert decode(grammar, payload) == expected


def test_unaligned_reads_ignore_the_surrounding_bits() -> None:
    assert decode("x:1:uint:4::5", "FF00FF") == {"x": 0}
    assert decode("x:1:uint:4::5", "00FF00") == {"x": 0xF}
    assert decode("x:1:uint:4::5", "001E00") == {"x": 0x7}


@pytest.mark.parametrize(("grammar", "payload", "expected"), [
    ("x::uint:8:little-endian", "12", {"x": 0x12}),
    ("x::uint:4:little-endian:3", "0A", {"x": 0xA}),
    ("x::uint:24:little-endian", "010203", {"x": 0x030201}),
    ("x::int:16:little-endian", "FEFF", {"x": -2}),
    ("x::int:64:little-endian", "FFFFFFFFFFFFFF7F", {"x": 2**63 - 1}),
    ("x::float:32:little-endian", "0000C03F", {"x": 1.5}),
    ("x::float:64:little-endian", "000000000000F83F", {"x": 1.5}),
    ("x::float:64", "3FF8000000000000", {"x": 1.5}),
])
def test_little_endian(grammar: str, payload: str, expected: dict) -> None:
    assert decode(grammar, payload) == expected


def test_char_is_latin1_and_keeps_every_byte() -> None:
    assert decode("s::char:4", "41E90042") == {"s": "A\u00e9\x00B"}


def test_field_past_the_payload_end_is_left_out() -> None:
    fields = parse_grammar("int1::uint:8 int2::uint:8")
    assert decode_payload(fields, bytes.fromhex("12")) == {"int1": 0x12}
    assert decode_payload(fields, b"") == {}
    assert custom_data_variables(fields, bytes.fromhex("12")) == {"customData#int1": "18"}


def test_only_the_overrunning_field_is_left_out() -> None:
    grammar = "a:2:uint:16 b:0:bool:7 c:1:uint:4::3"
    assert decode(grammar, "80A5") == {"b": True, "c": 5}


def test_sigfox_documentation_example_with_a_short_payload_leaves_the_field_out() -> None:
    grammar = "str::char:6 i1::uint:16 i2::uint:32:2"
    assert decode(grammar, "41424344454601234567890A") == {"str": "ABCDEF", "i1": 0x0123}
    assert decode(grammar, "41424344454601234567890AFF") == {
        "str": "ABCDEF", "i1": 0x0123, "i2": 0b101_01100111_10001001_00001010_11111,
    }


def test_field_ending_exactly_at_the_payload_end_is_kept() -> None:
    assert decode("x::uint:12::3", "ABCD") == {"x": 0xBCD}
    assert decode("x::uint:12::3", "AB") == {}


ERRORS = [
    ("", 0, None, "no fields: expected name:byteIndex:type"),
    ("   ", 0, None, "no fields: expected name:byteIndex:type"),
    ("::uint:8", 0, None, "empty field name"),
    ("a::uint:8 :1:uint:8", 10, None, "empty field name"),
    ("t!x::uint:8", 1, None, "invalid character '!' in field name 't!x': use letters, digits, '_' and '-'"),
    ("caf\u00e9::uint:8", 3, None,
     "invalid character '\u00e9' in field name 'caf\u00e9': use letters, digits, '_' and '-'"),
    ("a::uint:8 a::int:8", 10, "a", "duplicate field name 'a'"),
    ("temp::uint8", 6, "temp", "unknown type 'uint8': expected one of bool, char, float, uint, int"),
    ("a::UINT:8", 3, "a", "unknown type 'UINT': expected one of bool, char, float, uint, int"),
    ("a:: b::uint:8", 3, "a", "missing type: expected one of bool, char, float, uint, int"),
    ("a", 1, "a", "incomplete field 'a': expected name:byteIndex:type"),
    ("x::uint:8 a:1", 13, "a", "incomplete field 'a:1': expected name:byteIndex:type"),
    ("a:x:uint:8", 2, "a", "byte index must be a number, got 'x'"),
    ("a:-1:uint:8", 2, "a", "byte index must be a number, got '-1'"),
    ("a:\u0661:uint:8", 2, "a", "byte index must be a number, got '\u0661'"),
    ("a:256:uint:8", 2, "a", "byte index must be 0..255, got 256"),
    ("a::bool", 7, "a", "missing bool bit"),
    ("a::bool:", 8, "a", "missing bool bit"),
    ("a::bool:8", 8, "a", "bool bit must be 0..7, got 8"),
    ("a::bool:x", 8, "a", "bool bit must be a number, got 'x'"),
    ("a::bool:1:2", 9, "a", "unexpected ':2' after the bool definition"),
    ("a::char", 7, "a", "missing char length"),
    ("a::char:0", 8, "a", "char length must be 1..255, got 0"),
    ("a::char:256", 8, "a", "char length must be 1..255, got 256"),
    ("a::char:6:big-endian", 10, "a", "bit offset must be a number, got 'big-endian'"),
    ("a::char:6:8", 10, "a", "bit offset must be 0..7, got 8"),
    ("a::char:6:3:1", 11, "a", "unexpected ':1' after the char definition"),
    ("a::uint", 7, "a", "missing uint size"),
    ("a::uint:", 8, "a", "missing uint size"),
    ("a::uint:0", 8, "a", "uint size must be 1..64 bits, got 0"),
    ("a::uint:65", 8, "a", "uint size must be 1..64 bits, got 65"),
    ("a::int:99999999999", 7, "a", "int size must be 1..64 bits, got 99999999999"),
    ("a::int:x", 7, "a", "int size must be a number, got 'x'"),
    ("a::float:16", 9, "a", "float size must be 32 or 64 bits, got 16"),
    ("a::float:x", 9, "a", "float size must be a number, got 'x'"),
    ("a::float", 8, "a", "missing float size"),
    ("a::uint:8:le", 10, "a", "endianness must be 'big-endian' or 'little-endian', got 'le'"),
    ("a::uint:8:Big-Endian", 10, "a", "endianness must be 'big-endian' or 'little-endian', got 'Big-Endian'"),
    ("a::uint:8:3:4", 10, "a", "endianness must be 'big-endian' or 'little-endian', got '3'"),
    ("a::uint:8::", 11, "a", "missing bit offset"),
    ("a::uint:8::9", 11, "a", "bit offset must be 0..7, got 9"),
    ("a::uint:8:9", 10, "a", "bit offset must be 0..7, got 9"),
    ("a::uint:8:big-endian:3:x", 22, "a", "unexpected ':x' after the uint definition"),
    ("a::int:8:::", 10, "a", "missing bit offset"),
    ("a::uint:12:little-endian", 11, "a",
     "little-endian needs a byte-aligned field: bit offset 7 and a size that is a multiple of 8"),
    ("a::float:32:little-endian:3", 12, "a",
     "little-endian needs a byte-aligned field: bit offset 7 and a size that is a multiple of 8"),
    ("a::uint:16:little-endian:6", 11, "a",
     "little-endian needs a byte-aligned field: bit offset 7 and a size that is a multiple of 8"),
]


@pytest.mark.parametrize(("text", "position", "field", "reason"), ERRORS)
def test_errors_name_position_field_and_reason(text: str, position: int, field: str | None, reason: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse_grammar(text)
    assert (caught.value.position, caught.value.field, caught.value.reason) == (position, field, reason)


def test_error_text_and_type() -> None:
    with pytest.raises(ValueError) as caught:
        parse_grammar("a::uint:8 temp::uint8")
    assert str(caught.value) == (
        "payloadConfig at 16 (field 'temp'): unknown type 'uint8': expected one of bool, char, float, uint, int")
    assert str(GrammarError(0, None, "empty field name")) == "payloadConfig at 0: empty field name"


def test_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(GrammarError(3, "a", "missing type")))
    assert (error.position, error.field, error.reason) == (3, "a", "missing type")


def test_first_error_in_text_order_is_reported() -> None:
    with pytest.raises(GrammarError) as caught:
        parse_grammar("a::bool:9:x b::nope:1")
    assert caught.value.reason == "bool bit must be 0..7, got 9"


def test_whitespace_between_fields_is_free() -> None:
    assert parse_grammar("  a::uint:8\t\n b::uint:8  ") == parse_grammar("a::uint:8 b::uint:8")


def test_names_allow_letters_digits_underscore_and_dash() -> None:
    assert [spec.name for spec in parse_grammar("a-b::uint:8 _9::uint:8 Temp::uint:8 temp::uint:8")] == [
        "a-b", "_9", "Temp", "temp"]


def test_leading_zeros_and_shorthand_offset() -> None:
    assert parse_grammar("a:007:uint:08:big-endian:03") == (FieldSpec("a", 7, "uint", 8, 3, False),)
    assert parse_grammar("a::uint:32:2") == (FieldSpec("a", 0, "uint", 32, 2, False),)
    assert parse_grammar("a::uint:4::3") == (FieldSpec("a", 0, "uint", 4, 3, False),)
    assert parse_grammar("a::uint:4:") == (FieldSpec("a", 0, "uint", 4, 7, False),)


def test_custom_data_variables_string_forms() -> None:
    fields = parse_grammar("b::bool:7 c::bool:6 t:1:int:8 s::char:2 f::float:32 d::float:64")
    data = encode_payload(fields, {"b": True, "c": False, "t": -12, "s": "Hi", "f": 0.1, "d": 0.1})
    assert custom_data_variables(fields, data) == {
        "customData#b": "true", "customData#c": "false", "customData#t": "-12", "customData#s": "Hi",
        "customData#f": "0.1", "customData#d": "0.1",
    }


@pytest.mark.parametrize(("payload", "text"), [
    ("7F7FFFFF", "3.4028235e+38"),
    ("00000001", "1e-45"),
    ("3F800000", "1.0"),
    ("80000000", "-0.0"),
    ("7F800000", "inf"),
    ("FF800000", "-inf"),
    ("7FC00000", "nan"),
    ("40490FDB", "3.1415927"),
])
def test_float32_text_is_the_shortest_that_reads_back(payload: str, text: str) -> None:
    assert custom_data_variables(parse_grammar("f::float:32"), bytes.fromhex(payload)) == {"customData#f": text}


def test_float64_text_is_repr() -> None:
    data = struct.pack(">d", math.pi)
    assert custom_data_variables(parse_grammar("f::float:64"), data) == {"customData#f": repr(math.pi)}


@pytest.mark.parametrize(("values", "message"), [
    ({"u": 1}, "field 'i': no value"),
    ({"u": 1, "i": 0, "x": 1}, "no field named 'x'"),
    ({"u": 256, "i": 0}, "field 'u': uint:8 cannot hold 256"),
    ({"u": -1, "i": 0}, "field 'u': uint:8 cannot hold -1"),
    ({"u": True, "i": 0}, "field 'u': uint:8 cannot hold True"),
    ({"u": 1, "i": -9}, "field 'i': int:4 cannot hold -9"),
    ({"u": 1, "i": 8}, "field 'i': int:4 cannot hold 8"),
    ({"u": 1.0, "i": 0}, "field 'u': uint:8 cannot hold 1.0"),
])
def test_encode_refuses_bad_values(values: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        encode_payload(parse_grammar("u::uint:8 i::int:4"), values)
    assert str(caught.value) == message


@pytest.mark.parametrize(("grammar", "value"), [
    ("f::float:32", 1e39),
    ("f::float:32", "1.0"),
    ("b::bool:0", 1),
    ("s::char:2", "abc"),
    ("s::char:2", "\u20ac1"),
    ("s::char:1", 65),
])
def test_encode_refuses_values_that_do_not_fit(grammar: str, value: object) -> None:
    with pytest.raises(ValueError):
        encode_payload(parse_grammar(grammar), {grammar.split(":")[0]: value})


def test_encode_zero_fills_gaps_and_later_fields_win() -> None:
    assert encode_payload(parse_grammar("a:2:uint:8"), {"a": 0xAB}) == bytes.fromhex("0000AB")
    assert encode_payload(parse_grammar("a::uint:8 b:0:uint:4:3"), {"a": 0xFF, "b": 0}) == bytes.fromhex("F0")


# Property tests.

NUMERIC = ("float", "uint", "int")


@st.composite
def layouts(draw: st.DrawFn) -> tuple[str, tuple[FieldSpec, ...]]:
    """Non-overlapping fields at explicit positions, with the grammar that writes them."""
    cursor = 0
    texts, specs = [], []
    for number in range(draw(st.integers(1, 8))):
        name = f"f{number}"
        kind = draw(st.sampled_from(("bool", "char", "float", "uint", "int")))
        length = {
            "bool": 1,
            "char": draw(st.integers(1, 4)),
            "float": draw(st.sampled_from((32, 64))),
        }.get(kind) or draw(st.integers(1, 64))
        bits = length * 8 if kind == "char" else length
        little = kind in NUMERIC and draw(st.booleans()) and (bits <= 8 or bits % 8 == 0)
        cursor += draw(st.integers(0, 11))
        if little and bits > 8:
            cursor = -(-cursor // 8) * 8
        byte, offset = cursor // 8, 7 - cursor % 8
        cursor += bits
        specs.append(FieldSpec(name, byte, kind, length, offset, little))
        if kind == "bool":
            texts.append(f"{name}:{byte}:bool:{offset}")
        elif kind == "char":
            texts.append(f"{name}:{byte}:char:{length}:{offset}")
        else:
            endianness = "little-endian" if little else draw(st.sampled_from(("", "big-endian")))
            texts.append(f"{name}:{byte}:{kind}:{length}:{endianness}:{offset}")
    order = draw(st.permutations(range(len(specs))))
    return " ".join(texts[i] for i in order), tuple(specs[i] for i in order)


def value_for(spec: FieldSpec) -> st.SearchStrategy:
    if spec.type == "bool":
        return st.booleans()
    if spec.type == "uint":
        return st.integers(0, 2**spec.length - 1)
    if spec.type == "int":
        return st.integers(-(2 ** (spec.length - 1)), 2 ** (spec.length - 1) - 1)
    if spec.type == "float":
        return st.floats(width=spec.length, allow_nan=False)
    return st.text(st.characters(max_codepoint=255), min_size=spec.length, max_size=spec.length)


def same(spec: FieldSpec, left: object, right: object) -> bool:
    if spec.type == "float":
        fmt = ">f" if spec.length == 32 else ">d"
        return struct.pack(fmt, left) == struct.pack(fmt, right)
    return type(left) is type(right) and left == right


@given(st.data())
@settings(max_examples=400)
def test_encode_then_decode_gives_the_values_back(data: st.DataObject) -> None:
    text, specs = data.draw(layouts())
    assert parse_grammar(text) == specs
    values = {spec.name: data.draw(value_for(spec)) for spec in specs}
    payload = encode_payload(specs, values)
    assert len(payload) == max(spec.last_byte for spec in specs) + 1
    decoded = decode_payload(specs, payload)
    assert decoded.keys() == values.keys()
    assert all(same(spec, decoded[spec.name], values[spec.name]) for spec in specs)
    cut = data.draw(st.integers(0, len(payload)))
    short = decode_payload(specs, payload[:cut])
    assert short.keys() == {spec.name for spec in specs if spec.first_bit + spec.bits <= cut * 8}
    assert all(same(spec, short[spec.name], values[spec.name]) for spec in specs if spec.name in short)


@given(st.lists(st.sampled_from(("uint:8", "int:16", "uint:24:little-endian", "char:3", "float:32", "float:64",
                                 "int:64:big-endian")), min_size=1, max_size=10))
def test_implicit_whole_byte_fields_are_packed_back_to_back(types: list[str]) -> None:
    specs = parse_grammar(" ".join(f"f{i}::{kind}" for i, kind in enumerate(types)))
    starts = [0]
    for spec in specs[:-1]:
        starts.append(starts[-1] + spec.bits // 8)
    assert [spec.byte_index for spec in specs] == starts


IMPLICIT_KINDS = st.sampled_from(("uint:8", "uint:4", "uint:12::3", "int:16:big-endian", "char:2", "float:32",
                                   "uint:8::7", "uint:24:little-endian", "bool:7", "bool:0"))


@given(st.lists(IMPLICIT_KINDS, min_size=1, max_size=12))
def test_implicit_bools_take_no_room(kinds: list[str]) -> None:
    """Taking the bools out moves no other field; each bool sits where the field before it starts."""
    specs = parse_grammar(" ".join(f"f{i}::{kind}" for i, kind in enumerate(kinds)))
    sized = [f"f{i}::{kind}" for i, kind in enumerate(kinds) if not kind.startswith("bool")]
    without_bools = parse_grammar(" ".join(sized)) if sized else ()
    assert [spec for spec in specs if spec.type != "bool"] == list(without_bools)
    assert all(spec.byte_index == (specs[i - 1].byte_index if i else 0)
               for i, spec in enumerate(specs) if spec.type == "bool")


def check_parse(text: str) -> None:
    try:
        fields = parse_grammar(text)
    except GrammarError as error:
        assert 0 <= error.position <= len(text)
        assert error.reason
        assert str(error).startswith(f"payloadConfig at {error.position}")
    else:
        assert fields and all(isinstance(spec, FieldSpec) for spec in fields)


@given(st.text())
def test_parse_raises_only_grammar_error_on_any_text(text: str) -> None:
    check_parse(text)


GRAMMAR_PIECES = st.sampled_from((
    ":", " ", "a", "b", "_", "-", "0", "1", "3", "7", "8", "9", "12", "16", "32", "64", "65", "256",
    "bool", "char", "float", "uint", "int", "big-endian", "little-endian", "\t", "!", "\u0661",
))


@given(st.lists(GRAMMAR_PIECES, max_size=30).map("".join))
@settings(max_examples=500)
def test_parse_raises_only_grammar_error_on_grammar_like_text(text: str) -> None:
    check_parse(text)


# Limits and texts at their edges (issue 18) ----------------------------------------------------

@pytest.mark.parametrize(("text", "position", "field", "reason"), [
    ("a::uint:9:little-endian", 10, "a",
     "little-endian needs a byte-aligned field: bit offset 7 and a size that is a multiple of 8"),
    ("a:00001:uint:8", 2, "a", "byte index must be 0..255, got 00001"),
    ("a::uint:00008", 8, "a", "uint size must be 1..64 bits, got 00008"),
    ("a::bool:1:x:y", 9, "a", "unexpected ':x:y' after the bool definition"),
    ("a::uint:8:big-endian:7:x:y", 22, "a", "unexpected ':x:y' after the uint definition"),
])
def test_limits_refused_at_their_edges(text: str, position: int, field: str, reason: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse_grammar(text)
    assert (caught.value.position, caught.value.field, caught.value.reason) == (position, field, reason)


def test_four_written_digits_are_still_a_number() -> None:
    assert parse_grammar("a:0001:uint:0008") == (FieldSpec("a", 1, "uint", 8),)
    assert decode_payload(parse_grammar("a::uint:16:little-endian b::uint:8:little-endian"),
                          bytes.fromhex("3412ab")) == {"a": 0x1234, "b": 0xAB}


def test_an_error_reads_the_same_in_a_log():
    assert repr(GrammarError(3, "a", "missing type")) == "GrammarError(3, 'a', 'missing type')"


@pytest.mark.parametrize(("grammar", "value", "message"), [
    ("f::float:32", 1e39, "field 'f': float:32 cannot hold 1e+39"),
    ("f::float:32", "1.0", "field 'f': float:32 cannot hold '1.0'"),
    ("b::bool:0", 1, "field 'b': bool:1 cannot hold 1"),
    ("s::char:2", "abc", "field 's': char:2 cannot hold 'abc'"),
    ("s::char:2", "\u20ac1", "field 's': char:2 cannot hold '\u20ac1'"),
    ("s::char:1", 65, "field 's': char:1 cannot hold 65"),
])
def test_encode_says_which_field_cannot_hold_what(grammar: str, value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        encode_payload(parse_grammar(grammar), {grammar.split(":")[0]: value})
    assert str(caught.value) == message


def test_encode_starts_from_zero_bits() -> None:
    assert encode_payload((), {}) == b""
    assert encode_payload(parse_grammar("a::uint:4"), {"a": 0}) == b"\x00"
    assert encode_payload(parse_grammar("a::uint:16:little-endian"), {"a": 0x1234}) == bytes.fromhex("3412")

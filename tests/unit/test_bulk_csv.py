"""CSV uploads of bulk operations (oss.bulk_rows): every bad line is reported with its number and reason,
the good ones are kept, whatever bytes arrive."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oss import bulk_rows
from oss.bulk_rows import CSV_COLUMNS, checked_rows, csv_rows
from oss.errors import BadRequest


def parsed(kind: str, data: bytes):
    return checked_rows(kind, *csv_rows(kind, data))


def test_create_lines_each_bad_one_named_with_its_reason():
    data = ("id;pac;name\n"          # 1 header
            "A1;0123456789ABCDEF;one\n"  # 2 good
            "ZZ;0123456789ABCDEF\n"  # 3 bad hex id
            "a1;0123456789ABCDEF\n"  # 4 repeats line 2 (ids are upper-cased)
            "A2;12\n"                # 5 bad PAC
            "A3;0123456789ABCDEF;n;1;2;3\n"  # 6 six cells
            "A4;0123456789ABCDEF;four\r\n").encode()  # 7 good, Windows line end
    rows, errors = parsed("create", data)
    assert rows == [(2, {"id": "A1", "pac": "0123456789ABCDEF", "name": "one"}),
                    (7, {"id": "A4", "pac": "0123456789ABCDEF", "name": "four"})]
    assert [(e.row, e.entity, e.field) for e in errors] == [
        (3, "ZZ", "id"), (4, "A1", "id"), (5, "A2", "pac"), (6, "A3", None)]
    assert "repeats the device of row 2" in errors[1].message
    assert "6 cells" in errors[3].message and "id;pac;name;lat;lng" in errors[3].message


def test_a_line_that_is_not_utf8_is_reported_and_the_others_are_read():
    data = b"\xef\xbb\xbfA1\nB\xff2\nA3\n"  # a byte order mark first, as spreadsheets write it
    rows, errors = parsed("delete", data)
    assert rows == [(1, {"id": "A1"}), (3, {"id": "A3"})]
    assert [(e.row, e.entity) for e in errors] == [(2, None)]
    assert errors[0].message == "not UTF-8 text (byte 2 of the line)"


def test_replace_lines_need_two_hex_ids():
    rows, errors = parsed("replace", b"oldId;newId\nA1;B1\nA2\nA3;B3;C3\n")
    assert rows == [(2, {"deviceId": "A1", "targetDeviceId": "B1"})]
    assert [(e.row, e.field) for e in errors] == [(3, "targetDeviceId"), (4, None)]


def test_more_rows_than_the_limit_refuse_the_upload_naming_the_line(monkeypatch):
    monkeypatch.setattr(bulk_rows, "MAX_ROWS", 3)
    assert len(csv_rows("delete", b"A1\nA2\n\nA3\n")[0]) == 3
    with pytest.raises(BadRequest) as refused:
        csv_rows("delete", b"id\nA1\nA2\nA3\nA4\n")
    assert refused.value.errors[0].message == "line 5: more than 3 rows; at most 3 rows per operation"


@given(st.binary(max_size=400), st.sampled_from(sorted(CSV_COLUMNS)))
def test_any_bytes_give_rows_or_line_errors_never_a_crash(data, kind):
    rows, errors = parsed(kind, data)
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    numbers = [n for n, _ in rows] + [e.row for e in errors]
    assert all(1 <= n <= len(lines) for n in numbers)
    assert len(set(n for n, _ in rows)) == len(rows) and not {n for n, _ in rows} & {e.row for e in errors}
    assert all(e.message for e in errors)


hex_ids = st.integers(0, 0xFFFFFFFF).map(lambda v: f"{v:X}")


@given(st.lists(hex_ids, min_size=1, max_size=30, unique=True), st.data())
def test_good_create_lines_all_come_back_in_order(ids, data):
    pacs = [data.draw(st.integers(0, 2**64 - 1)).to_bytes(8, "big").hex() for _ in ids]
    text = "\n".join(f"{i.lower()};{p}" for i, p in zip(ids, pacs, strict=True))
    rows, errors = parsed("create", text.encode())
    assert errors == []
    assert rows == [(n, {"id": i, "pac": p}) for n, (i, p) in enumerate(zip(ids, pacs, strict=True), start=1)]

"""callback_language.positions: the line, column and caret of a parser's offset, and the console form's
placement of the API's errors (headers written one a line)."""
from __future__ import annotations

import pytest

from callback_language.grammar import GrammarError, parse_grammar
from callback_language.positions import place
from callback_language.templates import TemplateError, compile_template
from console.callback_form import form_body, form_texts, parse_headers, placed


@pytest.mark.parametrize(("text", "offset", "line", "column", "shown"), [
    ("abc", 0, 1, 1, "abc"),
    ("abc", 2, 1, 3, "abc"),
    ("ab\ncd", 3, 2, 1, "cd"),
    ("ab\ncd", 4, 2, 2, "cd"),
    ("ab\r\ncd\r\nef", 5, 2, 2, "cd"),   # the CR belongs to the line's end
    ("ab\n", 3, 2, 1, ""),                # past the last break: an empty last line
    ("ab", 2, 1, 3, "ab"),                # the end: just after the last character (an unclosed brace)
    ("ab", 99, 1, 3, "ab"),               # clamped
    ("ab", -5, 1, 1, "ab"),
])
def test_place_gives_line_column_and_the_line(text, offset, line, column, shown):
    where = place(text, offset)
    assert (where.line, where.column, where.text) == (line, column, shown)
    assert where.caret == " " * (column - 1) + "^"
    assert str(where) == f"line {line}, column {column}"


def test_a_template_error_on_line_two_is_placed_under_the_faulty_variable():
    text = "device={device}\ntemp={tmp}"
    with pytest.raises(TemplateError) as caught:
        compile_template(text, kind="DATA_UPLINK", field="bodyTemplate")
    where = place(text, caught.value.position)
    assert (where.line, where.column) == (2, 6)
    assert where.text[where.column - 1:].startswith("{tmp}")


def test_a_grammar_error_is_placed_in_its_line():
    text = "a::uint:8\nb::uint:77"
    with pytest.raises(GrammarError) as caught:
        parse_grammar(text)
    where = place(text, caught.value.position)
    assert where.line == 2 and where.text == "b::uint:77"


def test_headers_are_read_one_a_line_with_where_each_value_starts():
    text = "X-Api-Key: abc\r\n\nX-Tenant:{device}\nbroken"
    headers, starts = parse_headers(text)
    assert headers == {"X-Api-Key": "abc", "X-Tenant": "{device}", "broken": ""}
    assert text[starts["X-Api-Key"]:].startswith("abc") and text[starts["X-Tenant"]:].startswith("{device}")


def test_a_header_error_is_placed_in_the_headers_box():
    form = {"headers": "A: ok\nB: x{nope}"}
    problem = placed("headers.B", "unknown variable", 1, form)
    assert problem.control == "headers" and problem.where is not None
    assert (problem.where.line, problem.where.column) == (2, 5)


def test_errors_of_the_type_go_beside_the_type_select_without_a_place():
    problem = placed("callbackSubtype", "must be one of", None, {"type": "1/1"})
    assert (problem.control, problem.where) == ("type", None)


def test_the_form_makes_the_api_body_of_each_channel():
    url = form_body({"channel": "URL", "type": "0/3", "enabled": "on", "url": "http://h/x", "httpMethod": "POST",
                     "headers": "X-A: 1", "bodyTemplate": "", "contentType": "text/plain", "sendSni": "on",
                     "signingAction": "generate", "recipient": "ignored"}, creating=True)
    assert url == {"channel": "URL", "enabled": True, "callbackType": 0, "callbackSubtype": 3, "url": "http://h/x",
                   "httpMethod": "POST", "contentType": "text/plain", "headers": {"X-A": "1"}, "sendSni": True,
                   "signingSecret": "generate"}
    error = form_body({"channel": "EMAIL", "type": "2", "recipient": "a@b.c", "subject": "", "message": "m"},
                      creating=True)
    assert error == {"channel": "EMAIL", "enabled": False, "callbackType": 2, "recipient": "a@b.c", "message": "m"}
    # An edit clears an emptied text, keeps an empty secret, removes one when asked.
    edit = form_body({"channel": "BATCH_URL", "type": "0/2", "url": "http://h/b", "httpMethod": "POST",
                      "linePattern": "{device}", "payloadConfig": "", "signingAction": "remove"}, creating=False)
    assert edit["payloadConfig"] is None and edit["signingSecret"] is None and "channel" not in edit
    kept = form_body({"channel": "URL", "type": "0/2", "url": "http://h", "signingAction": "keep"}, creating=False)
    assert "signingSecret" not in kept


def test_form_texts_turn_crlf_into_lf_and_drop_the_csrf_token():
    assert form_texts({"csrf": "t", "bodyTemplate": "a\r\nb"}) == {"bodyTemplate": "a\nb"}


def test_console_times_are_utc_text():
    from console.times import utc_text

    assert utc_text(1_764_165_600_000) == "2025-11-26 14:00:00 UTC"
    assert utc_text(None) == ""

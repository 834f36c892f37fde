"""Page tokens of time-ordered lists (`pageId`): what a next link carries, and what is refused."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oss.errors import BadRequest
from oss.paging import page_key, page_token

KEYS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=80)


@given(KEYS)
def test_a_token_gives_its_key_back_and_is_url_safe(key: str) -> None:
    token = page_token(key)
    assert page_key(token) == key
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_a_message_id_token() -> None:
    assert page_token("00AB12CD-123-1764165600000") == "MDBBQjEyQ0QtMTIzLTE3NjQxNjU2MDAwMDA"
    assert page_key("MDBBQjEyQ0QtMTIzLTE3NjQxNjU2MDAwMDA") == "00AB12CD-123-1764165600000"


@pytest.mark.parametrize("token", ["not base64!", "A", "AA", "_w", "4pyT\u00e9", "=", "QQ=x"])
def test_what_is_not_a_token_is_a_400_naming_page_id(token: str) -> None:
    with pytest.raises(BadRequest) as caught:
        page_key(token)
    assert [e.as_dict() for e in caught.value.errors] == [
        {"type": "query", "field": "pageId", "message": "not a page token of this API: take it from paging.next"}]

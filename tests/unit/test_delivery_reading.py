"""What the delivery worker makes of a `deliveries` record before anything is sent (workers/delivery.py)."""
from __future__ import annotations

from schemas.deliveries import InvalidDelivery, encode_delivery, new_delivery
from workers.delivery import Send, read_delivery


def test_a_record_is_a_delivery_or_says_why_not():
    d = new_delivery({"id": "m1", "device": "AB", "time": 1}, callback_id="cb", kind="DATA_UPLINK", channel="URL",
                     device_type_id="dt", message_id="m1", origin_ms=1, created_ms=2, variables={})
    d["request"] = {"method": "GET", "url": "https://r.example/"}
    assert read_delivery(encode_delivery(d)) == (d, None)
    delivery, problem = read_delivery(b'{"id": 5}')
    assert delivery is None and isinstance(problem, InvalidDelivery) and str(problem).startswith("channel:")
    assert read_delivery(None)[0] is None


def test_every_send_has_an_id_of_its_own_and_is_not_yet_announced():
    a, b = Send(), Send()
    assert a.id != b.id and len(a.id) == 32 and a.at_ms == 0

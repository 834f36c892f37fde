"""A drain round never sends a device's message past an older one of that device claimed elsewhere."""
from hypothesis import given
from hypothesis import strategies as st

from workers.backlog import behind_older_claims


def delivery(device: str, n: int, callback: str = "data") -> dict:
    return {"id": f"{device}:{n}/{callback}", "device": device, "messageTime": 1_000 * n}


def test_the_same_message_on_another_callback_is_not_held_back():
    claimed = [(delivery("A", 2), 0), (delivery("A", 3), 0)]
    now, later = behind_older_claims(claimed, {"A": 2_000})  # A:2's other callback is out elsewhere
    assert [d["id"] for d, _ in now] == ["A:2/data"] and [d["id"] for d, _ in later] == ["A:3/data"]


def test_without_a_message_time_a_delivery_goes():
    assert behind_older_claims([({"id": "x", "device": "A"}, 1)], {"A": 5}) == ([({"id": "x", "device": "A"}, 1)], [])


@given(st.lists(st.tuples(st.sampled_from("ABC"), st.integers(1, 30)), max_size=40),
       st.dictionaries(st.sampled_from("ABCD"), st.integers(1, 30).map(lambda n: 1_000 * n)))
def test_what_goes_now_never_overtakes_a_claim_elsewhere_and_nothing_is_lost(pairs, elsewhere):
    claimed = sorted(((delivery(d, n), 0) for d, n in pairs), key=lambda c: c[0]["messageTime"])
    now, later = behind_older_claims(claimed, elsewhere)
    assert sorted(map(repr, now + later)) == sorted(map(repr, claimed))
    assert all(d["messageTime"] <= elsewhere.get(d["device"], d["messageTime"]) for d, _ in now)
    assert all(d["messageTime"] > elsewhere[d["device"]] for d, _ in later)
    # Order kept within each part.
    assert [c for c in claimed if c in now] == now and [c for c in claimed if c in later] == later

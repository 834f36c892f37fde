"""The overload step's verdict (bench.findmax.saturation): holds within 10 % and drains, or not."""
from bench.findmax import saturation


def step(data: list[int], advanced: list[int], *, warmup: float, sent_s: float, lost: int = 0) -> dict:
    return {"series": {"dataReceived": data, "advancedReceived": advanced}, "warmupS": warmup,
            "sent": {"seconds": sent_s}, "offered": {"messagesPerS": 150.0},
            "accounting": {"lostMessages": lost}}


BEST = {"offered": {"messagesPerS": 100.0}}


def test_an_overload_delivered_at_the_sustainable_rate_that_drains_holds():
    # 2 s warm-up, loaded until second 6, the backlog delivered until second 9
    got = saturation(step([150, 150, 100, 95, 100, 98, 100, 100, 50, 0], [0] * 10, warmup=2, sent_s=6), BEST)
    assert got["dataPerSWhileLoaded"] == 98.2 and got["ratio"] == 0.983
    assert got["drained"] and got["drainS"] == 3 and got["holds"]


def test_a_collapse_below_90_percent_does_not_hold_even_when_it_drains():
    got = saturation(step([150, 150, 60, 50, 40, 50, 80, 80], [0, 0, 30, 30, 30, 30, 0, 0], warmup=2, sent_s=6), BEST)
    assert got["ratio"] == 0.5 and got["deliveriesPerSWhileLoaded"] == 80.0
    assert got["drained"] and not got["holds"]


def test_a_backlog_that_did_not_drain_does_not_hold():
    got = saturation(step([100] * 8, [0] * 8, warmup=2, sent_s=6, lost=3), BEST)
    assert got["ratio"] == 1.0 and not got["drained"] and not got["holds"]

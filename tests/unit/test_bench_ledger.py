"""The benchmark's accounting, without the stack: delivered, lost, duplicates, unmatched, percentiles."""
from __future__ import annotations

from bench.accounting import Ledger, percentiles
from bench.load import first_frames
from bench.receiver import ADVANCED, DATA


def test_ledger_counts_add_up():
    record = [{"device": "A", "seqNumber": 1, "time": 1_000_030}, {"device": "A", "seqNumber": 1, "time": 1_000_010},
              {"device": "A", "seqNumber": 2, "time": 1_001_010}, {"device": "B", "seqNumber": 7, "time": 1_000_500}]
    first = first_frames(record)
    assert first == {("A", 1): 1_000_010, ("A", 2): 1_001_010, ("B", 7): 1_000_500}
    ledger = Ledger(first, window_s=2.0)
    ledger.add([(DATA, "A", 1, 1000.110), (DATA, "A", 1, 1000.200), (DATA, "B", 7, 1000.600),
                (ADVANCED, "A", 1, 1002.060), (DATA, "C", 1, 1000.0)])
    assert not ledger.complete()
    s = ledger.summary()
    assert s["sent"] == 3 and s["unmatched"] == 1 and s["duplicates"] == 1
    assert s["data"] == {"delivered": 2, "lost": 1, "duplicates": 1, "lostSample": [["A", 2]]}
    assert s["advanced"]["delivered"] == 1 and s["advanced"]["lost"] == 2
    assert s["lostMessages"] == 2
    assert sorted(round(x) for x in ledger.latencies_ms()) == [100, 100]
    assert [round(x) for x in ledger.lateness_ms()] == [50]


def test_percentiles_nearest_rank():
    p = percentiles([float(x) for x in range(1, 101)])
    assert (p["p50"], p["p95"], p["p99"], p["max"], p["count"]) == (50, 95, 99, 100, 100)
    assert percentiles([])["p99"] is None

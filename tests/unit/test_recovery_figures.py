"""bench/recovery.py's figures around one kill, on a made-up timeline."""
from __future__ import annotations

from bench.recovery import kill_figures


def test_outage_gap_and_delays_around_a_kill():
    # One message a second from t=0; a kill at t=10.5; nothing is delivered until t=13.2, then all at once.
    first = {("D", i): float(i) for i in range(20)}
    done = {("D", i): i + 0.05 for i in range(11)}
    done.update({("D", i): max(13.2, i + 0.05) for i in range(11, 19)})  # message 19 never arrives
    figures = kill_figures(10.5, 20.0, first, done)
    assert figures["outageS"] == 2.2          # message 11 (sent at 11.0) arrived at 13.2
    assert figures["gapS"] == 2.7             # silence from the kill (10.5) to 13.2
    assert figures["undelivered"] == 1
    assert figures["delays"][0] == [0.5, 2200] and len(figures["delays"]) == 8  # sent from 11 to 18
    assert (figures["delayMs"]["p50"], figures["delayMs"]["max"]) == (50, 2200)


def test_a_kill_with_no_message_sent_after_it_has_no_outage():
    figures = kill_figures(5.0, 6.0, {("D", 1): 1.0}, {("D", 1): 1.1})
    assert (figures["outageS"], figures["gapS"], figures["delayMs"]["count"]) == (None, 1.0, 0)

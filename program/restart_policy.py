"""When a supervised process is started again, and when it is left stopped.

The rule is systemd's `Restart=on-failure` with an exponential pause and a
start limit (the unit files in deploy/systemd say the same in systemd's
words):

- **A failure** is an exit with a code other than 0, or the end by a signal
  other than the four "clean" ones (SIGHUP, SIGINT, SIGTERM, SIGPIPE). A
  clean exit (code 0, or one of those signals: someone stopped it) is not
  restarted.
- **The pause** before a restart is `first_s`, doubled after each failure in
  a row, at most `max_s`; a process that ran `stable_s` or longer before
  failing starts over from `first_s`.
- **A crash loop** is `loop_exits` failures within `loop_window_s`: the
  process is left stopped, with the reason, until someone starts it.
"""
from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field

from backhaul.settings import Settings

CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})


def is_failure(returncode: int) -> bool:
    """True for an exit a supervisor restarts (see the module's rule)."""
    if returncode >= 0:
        return returncode != 0
    return -returncode not in CLEAN_SIGNALS


def describe_exit(returncode: int) -> str:
    """'exited with code 1', 'killed by SIGKILL', ... for an exit status as subprocess reports it."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


@dataclass(frozen=True)
class RestartPolicy:
    first_s: float = 0.5
    max_s: float = 30.0
    stable_s: float = 30.0
    loop_exits: int = 5
    loop_window_s: float = 60.0

    @classmethod
    def from_settings(cls, s: Settings) -> "RestartPolicy":
        return cls(s.restart_first_s, s.restart_max_s, s.restart_stable_s, s.crash_loop_exits,
                   s.crash_loop_window_s)


@dataclass
class RestartTracker:
    """The failures of one process, and what to do after the next one."""

    policy: RestartPolicy
    in_a_row: int = 0
    recent: deque[float] = field(default_factory=deque)

    def failed(self, at: float, ran_s: float) -> float | None:
        """Record a failure at `at` (epoch s) after `ran_s` seconds of running: the pause before
        the restart, or None for a crash loop (do not restart)."""
        p = self.policy
        if ran_s >= p.stable_s:
            self.in_a_row = 0
        self.recent.append(at)
        while self.recent and self.recent[0] <= at - p.loop_window_s:
            self.recent.popleft()
        if len(self.recent) >= p.loop_exits:
            return None
        pause = min(p.max_s, p.first_s * 2 ** self.in_a_row)
        self.in_a_row += 1
        return pause

    def reset(self) -> None:
        """Forget past failures (someone started the process by hand)."""
        self.in_a_row = 0
        self.recent.clear()

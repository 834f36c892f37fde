"""BATCH_URL deliveries gathered per callback until their batch goes.

A batch goes once `window_s` has passed since its *first* member came (the reference's "all the
messages of the callback received within 1 second"), however many members keep arriving meanwhile;
or at once when it holds `max_members`, so that a busy callback's request stays bounded. The member
after either starts the next batch. Time is read from `clock` (monotonic seconds; tests pass their own).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

Member = TypeVar("Member")


class Batches(Generic[Member]):
    """Open batches by key (the callback id), each with the time its first member came."""

    def __init__(self, window_s: float, max_members: int, clock: Callable[[], float] = time.monotonic) -> None:
        if not window_s >= 0:
            raise ValueError(f"window_s={window_s!r}: must be >= 0")
        if max_members < 1:
            raise ValueError(f"max_members={max_members!r}: must be >= 1")
        self.window_s = window_s
        self.max_members = max_members
        self._clock = clock
        self._members: dict[str, list[Member]] = {}
        self._opened: dict[str, float] = {}

    def add(self, key: str, member: Member) -> list[Member] | None:
        """Put `member` in the key's open batch (opening one if needed); the batch itself, taken out,
        when this member filled it: it goes now."""
        members = self._members.get(key)
        if members is None:
            members = self._members[key] = []
            self._opened[key] = self._clock()
        members.append(member)
        if len(members) >= self.max_members:
            return self._take(key)
        return None

    def due(self) -> list[tuple[str, list[Member]]]:
        """The batches whose window has passed (at or after `window_s`), taken out, oldest first."""
        now = self._clock()
        return [(key, self._take(key)) for key in [k for k, t in self._opened.items() if now - t >= self.window_s]]

    def _take(self, key: str) -> list[Member]:
        del self._opened[key]
        return self._members.pop(key)

    def __len__(self) -> int:
        """Members waiting in open batches."""
        return sum(len(m) for m in self._members.values())

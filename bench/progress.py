"""One progress line on stderr: rewritten in place on a terminal, a line every few seconds otherwise."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, enabled: bool = True, every_s: float = 5.0) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.every_s = every_s
        self._last = 0.0
        self._width = 0

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            pad = max(0, self._width - len(text))
            self._width = len(text)
            print(f"\r{text}{' ' * pad}", end="", file=sys.stderr, flush=True)
        elif time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            print(text, file=sys.stderr, flush=True)

    def done(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.update(text)
            print(file=sys.stderr, flush=True)
            self._width = 0
        else:
            print(text, file=sys.stderr, flush=True)

"""Where in a template or grammar an error is: line, column and a caret under the place.

The parsers (`templates`, `grammar`) report 0-based character offsets into the field's text; people
read lines and columns. Lines are split on LF (a CR before it belongs to the line's end); line and
column are 1-based, columns count characters.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """An offset of a text as a person reads it."""

    offset: int
    line: int
    column: int
    text: str   # the line the offset is on (without its line break)

    @property
    def caret(self) -> str:
        """Spaces up to the column, then `^`: written under `text`, it points at the faulty character."""
        return " " * (self.column - 1) + "^"

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}"


def place(text: str, offset: int) -> Place:
    """The line and column of `offset` in `text` (an offset past the end points just after the last
    character: an unclosed brace is reported at the end)."""
    offset = max(0, min(offset, len(text)))
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    line_text = text[start:] if end < 0 else text[start:end]
    return Place(offset, text.count("\n", 0, offset) + 1, offset - start + 1, line_text.rstrip("\r"))

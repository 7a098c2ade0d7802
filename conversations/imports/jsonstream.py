"""The items of a JSON document's top-level list, read a piece at a time, with exact positions for errors.

A ChatGPT conversations.json can be hundreds of MB: it is never held in memory whole. Each item (one
conversation) is decoded by the standard library's C decoder, `json.JSONDecoder.raw_decode`, from a buffer
that holds that item's text and at most one read beyond; text already decoded is dropped. Chosen over ijson
(installable here, and fast with its C backend) because errors must say where: raw_decode reports the exact
character of a fault, which becomes a line and column in the file, while ijson's yajl errors carry no line or
column; and the standard library adds no dependency.

A document that is one object (our own export of one conversation) yields that object.
"""

import json
from collections.abc import Iterator
from typing import TextIO

READ_CHARS = 1 << 20
_WHITESPACE = " \t\n\r"
# A decode error this close to the end of the buffer may only mean the text goes on in the next read (a
# number, a literal or a \\u escape cut in two): read more and decode again before calling it an error.
_TAIL = 16


class JSONError(Exception):
    """Not valid JSON at `line`, `column` (1-based): `reason` is the decoder's ("Expecting ',' delimiter")."""

    def __init__(self, reason: str, line: int, column: int):
        super().__init__(f"{reason}: line {line} column {column}")
        self.reason, self.line, self.column = reason, line, column


class ItemTooLarge(Exception):
    """An item (starting at `line`, `column`) is longer than the limit: it is not decoded at all."""

    def __init__(self, line: int, column: int):
        super().__init__(f"item at line {line} column {column} is too large")
        self.line, self.column = line, column


class NotAListOrObject(Exception):
    """The document is valid so far but holds a string, a number ... rather than a list or an object."""


class JSONItems:
    """Iterate over the items of `stream`'s top-level list (or its one object). Raises JSONError,
    ItemTooLarge (an item longer than `max_item_chars`) or NotAListOrObject."""

    def __init__(self, stream: TextIO, *, max_item_chars: int):
        self.stream = stream
        self.max_item_chars = max_item_chars
        self.decoder = json.JSONDecoder()
        self.buffer = ""
        self.pos = 0
        self.eof = False
        self.lines_dropped = 0  # newlines in the text dropped from the front of the buffer
        self.column_base = 0  # how far into its line buffer[0] is

    def __iter__(self) -> Iterator:
        if not self._skip_whitespace():
            raise self._error("Expecting value", self.pos)
        first = self.buffer[self.pos]
        if first == "{":
            yield self._item()
            self._expect_end()
            return
        if first != "[":
            if first in '"-0123456789tfn':
                raise NotAListOrObject()
            raise self._error("Expecting value", self.pos)
        self.pos += 1
        if not self._skip_whitespace():
            raise self._error("Expecting value", self.pos)
        if self.buffer[self.pos] == "]":
            self.pos += 1
            self._expect_end()
            return
        while True:
            yield self._item()
            if not self._skip_whitespace():
                raise self._error("Expecting ',' delimiter", self.pos)
            separator = self.buffer[self.pos]
            self.pos += 1
            if separator == "]":
                self._expect_end()
                return
            if separator != ",":
                raise self._error("Expecting ',' delimiter", self.pos - 1)
            if not self._skip_whitespace():
                raise self._error("Expecting value", self.pos)

    def _item(self):
        start = self.pos
        while True:
            try:
                item, end = self.decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                cut_short = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buffer) - _TAIL
                if self.eof or not cut_short:
                    raise self._error(exc.msg, exc.pos) from None
            except RecursionError:  # lists in lists thousands deep: the C decoder recurses
                raise self._error("Nested too deeply", self.pos) from None
            except ValueError:  # an integer of thousands of digits (sys.get_int_max_str_digits)
                raise self._error("A number too long", self.pos) from None
            else:
                if end < len(self.buffer) or self.eof:
                    if end - self.pos > self.max_item_chars:
                        raise ItemTooLarge(*self._position(self.pos))
                    self.pos = end
                    return item
            # The item goes on past the buffer: read as much again as it has so far, so a large item is
            # decoded a few times (its size doubling), not once per read.
            if len(self.buffer) - self.pos > self.max_item_chars:
                raise ItemTooLarge(*self._position(start))
            self._read(max(READ_CHARS, len(self.buffer) - self.pos))
            start = self.pos

    def _skip_whitespace(self) -> bool:
        """Move past whitespace; False at the end of the document."""
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buffer):
                return True
            if self.eof:
                return False
            self._read(READ_CHARS)

    def _expect_end(self) -> None:
        if self._skip_whitespace():
            raise self._error("Extra data", self.pos)

    def _read(self, size: int) -> None:
        """Drop what was decoded already, and append up to `size` more characters."""
        if self.pos:
            dropped = self.buffer[: self.pos]
            newlines = dropped.count("\n")
            if newlines:
                self.lines_dropped += newlines
                self.column_base = len(dropped) - dropped.rfind("\n") - 1
            else:
                self.column_base += len(dropped)
            self.buffer = self.buffer[self.pos :]
            self.pos = 0
        more = self.stream.read(size)
        if more:
            self.buffer += more
        else:
            self.eof = True

    def _position(self, index: int) -> tuple[int, int]:
        """The 1-based line and column in the document of buffer[index]."""
        line_start = self.buffer.rfind("\n", 0, index)
        line = self.lines_dropped + self.buffer.count("\n", 0, index) + 1
        column = index - line_start if line_start >= 0 else self.column_base + index + 1
        return line, column

    def _error(self, reason: str, index: int) -> JSONError:
        return JSONError(reason, *self._position(index))

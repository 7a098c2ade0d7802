"""An incremental Server-Sent Events decoder (the WHATWG event-stream format).

Bytes go in as they come off the network, in pieces of any size; complete
events come out. Lines may end in LF, CRLF or CR; comment lines (":" keep-
alives) are skipped; several data lines join with a newline. Unlike a
browser, an event left without its closing blank line when the stream ends
is still delivered: some servers end the stream right after the last data
line, and dropping it would lose the end of a reply. And a line whose field
name is `error`, which the format would drop as unknown, comes out as an event
of its own (`field="error"`): llama.cpp's server reports a failure mid-stream
on such a line, `error: {"code":500,"message":"…"}`, and dropping it would make
a cut reply look finished.
"""

from dataclasses import dataclass

MAX_LINE_BYTES = 16 * 1024 * 1024


class SSEError(ValueError):
    pass


@dataclass(slots=True)  # not frozen: built once per event of every reply, and a frozen one costs twice as much
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str | None = None
    field: str = "data"  # the line that carried `data`: "data", or "error" for an `error:` line


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event = ""
        self._last_id: str | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Take the next bytes off the wire; return the events they complete."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._started and buffer:
            if len(buffer) < 3 and b"\xef\xbb\xbf".startswith(buffer):
                self._buffer = buffer
                return []
            self._started = True
            if buffer.startswith(b"\xef\xbb\xbf"):
                buffer = buffer[3:]
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF: wait for the next piece.
            held = b"\r" if buffer.endswith(b"\r") else b""
            if held:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + held
        events: list[ServerSentEvent] = []
        if not self._data and not self._event and b"\n\n" in buffer:
            # The common case, a whole event or several: take them a block at a time.
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                self._take_block(block, events)
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        if len(self._buffer) > MAX_LINE_BYTES:
            raise SSEError("An event-stream line is longer than 16 MiB.")
        for line in lines:
            self._take_line(line, events)
        return events

    def close(self) -> list[ServerSentEvent]:
        """The stream ended: return what was still pending."""
        events: list[ServerSentEvent] = []
        tail, self._buffer = self._buffer.rstrip(b"\r"), b""
        if tail:
            self._take_line(tail, events)
        self._dispatch(events)
        return events

    def _take_block(self, block: bytes, events: list[ServerSentEvent]) -> None:
        """A complete event (the lines between two blank lines)."""
        if block.startswith(b"data: ") and b"\n" not in block:
            events.append(ServerSentEvent(data=block[6:].decode("utf-8", "replace"), id=self._last_id))
            return
        for line in block.split(b"\n"):
            self._take_line(line, events)
        self._dispatch(events)

    def _take_line(self, line: bytes, events: list[ServerSentEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line[0] == 0x3A:  # ":" starts a comment, used as a keep-alive
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._last_id = value.decode("utf-8", "replace")
        elif name == b"error":
            self._dispatch(events)  # text before the failure comes out before it
            data = value.decode("utf-8", "replace")
            events.append(ServerSentEvent(data=data, event="error", id=self._last_id, field="error"))
        # "retry" and other unknown fields are ignored, as the format says.

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        if self._data:
            data = b"\n".join(self._data).decode("utf-8", "replace")
            events.append(ServerSentEvent(data=data, event=self._event or "message", id=self._last_id))
        self._data = []
        self._event = ""

"""The websocket protocol: one builder per server frame, and the parser for client frames.

The README documents the same schema; keep them together.

client → server
    {"type": "send", "content": str, "model": int | null (optional)}
    {"type": "stop"}
    {"type": "regenerate", "model": int | null (optional)}
server → client
    {"type": "message", "message": {"id", "role", "content", "status", "html", "note", "note_class", "author",
                                    "context_start", ...}}
    {"type": "start", "message_id", "replaces"?, "context_start"?}   context_start: the first message sent, older ones left out
    {"type": "delta", "message_id", "offset", "content"}
    {"type": "done", "message_id", "status", "finish_reason", "usage", "html", "content", "error", "note", "note_class"}
        a `done` or `message` too big for one frame has "content" and "html" null and "fetch": the URL to get them from
    {"type": "error", "code", "message", "message_id"?}
    {"type": "access", "role": "viewer" | "collaborator" | "owner"}   your role changed
    {"type": "presence", "people": [username, ...], "guests": int}      who else is here now
"""

import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from .validators import check_message_content

# --- server → client ---------------------------------------------------------


def message_frame(payload: dict) -> dict:
    return {"type": "message", "message": payload}


def start_frame(message_id: int, replaces: int | None = None, context_start: int | None = None) -> dict:
    frame = {"type": "start", "message_id": message_id}
    if replaces is not None:
        frame["replaces"] = replaces
    if context_start is not None:
        frame["context_start"] = context_start
    return frame


def delta_frame(message_id: int, offset: int, content: str) -> dict:
    """`offset` is where `content` starts in the reply, in characters (Unicode code points)."""
    return {"type": "delta", "message_id": message_id, "offset": offset, "content": content}


def done_frame(
    message_id: int, *, status: str, finish_reason, usage, html: str, content: str, error: str, note: str, note_class: str
) -> dict:
    """`note` is the line shown under the reply (its error, or why it was cut off), `note_class` its CSS class."""
    return {
        "type": "done",
        "message_id": message_id,
        "status": status,
        "finish_reason": finish_reason or None,
        "usage": usage,
        "html": html,
        "content": content,
        "error": error,
        "note": note,
        "note_class": note_class,
    }


def error_frame(code: str, message: str, message_id: int | None = None) -> dict:
    frame = {"type": "error", "code": code, "message": message}
    if message_id is not None:
        frame["message_id"] = message_id
    return frame


def access_frame(role: str) -> dict:
    return {"type": "access", "role": role}


def presence_frame(people: list[str], guests: int) -> dict:
    return {"type": "presence", "people": people, "guests": guests}


# The largest frame a socket is sent: daphne refuses to send a message over 1 MiB (and closes the socket).
MAX_FRAME_BYTES = 512 * 1024
DELTA_PIECE_CHARS = 64 * 1024  # at most 4 bytes a character in UTF-8, so a piece is well within the limit


def within_limit(frame: dict, encoded: str, fetch_url) -> list[dict]:
    """`frame` as frames a socket can be sent: itself, or, over MAX_FRAME_BYTES, a delta split in pieces, or a
    `done` / `message` whose text and HTML the page fetches from `fetch_url(message_id)` (field "fetch")."""
    if len(encoded) * 4 <= MAX_FRAME_BYTES or len(encoded.encode()) <= MAX_FRAME_BYTES:
        return [frame]
    kind = frame["type"]
    if kind == "delta":
        content, offset = frame["content"], frame["offset"]
        return [
            delta_frame(frame["message_id"], offset + start, content[start : start + DELTA_PIECE_CHARS])
            for start in range(0, len(content), DELTA_PIECE_CHARS)
        ]
    if kind == "done":
        return [{**frame, "content": None, "html": None, "fetch": fetch_url(frame["message_id"])}]
    if kind == "message":
        payload = frame["message"]
        return [message_frame({**payload, "content": None, "html": None, "fetch": fetch_url(payload["id"])})]
    return [frame]


# --- client → server ---------------------------------------------------------


class FrameError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Send:
    content: str
    model: int | None = None


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Regenerate:
    model: int | None = None


ClientFrame = Send | Stop | Regenerate


def parse_client_frame(text: str | None, *, max_chars: int) -> ClientFrame:
    """Validate one frame from the browser. Raises FrameError with a code and a readable message."""
    if text is None:
        raise FrameError("invalid_frame", "Send frames as JSON text, not binary.")
    try:
        data = json.loads(text)
    except ValueError:
        raise FrameError("invalid_json", "The frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise FrameError("invalid_frame", "A frame must be a JSON object with a 'type'.")
    kind = data.get("type")
    if kind == "send":
        return Send(content=_content(data, max_chars), model=_model(data))
    if kind == "stop":
        return Stop()
    if kind == "regenerate":
        return Regenerate(model=_model(data))
    if not isinstance(kind, str):
        raise FrameError("invalid_frame", "A frame must have a string 'type'.")
    raise FrameError("unknown_type", f"Unknown frame type {kind[:40]!r}; use send, stop or regenerate.")


def _content(data: dict, max_chars: int) -> str:
    content = data.get("content")
    if not isinstance(content, str):
        raise FrameError("invalid_frame", "'content' must be a string.")
    try:
        return check_message_content(content, max_chars)
    except ValidationError as exc:
        raise FrameError(exc.code, exc.message) from None


def _model(data: dict) -> int | None:
    model = data.get("model")
    if model is None or model == "":
        return None
    if isinstance(model, bool) or not isinstance(model, int) or model < 1:
        raise FrameError("invalid_frame", "'model' must be a model id (a positive whole number) or null.")
    return model

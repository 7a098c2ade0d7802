"""The websocket protocol: one builder per server frame, and the parser for client frames.

The README documents the same schema; keep them together.

client → server
    {"type": "send", "content": str, "model": int | null (optional), "parent_id": int | null (optional)}
        parent_id: the message this one follows (null: a new first message); absent: the current branch's last
    {"type": "stop"}
    {"type": "regenerate", "model": int | null (optional), "message_id": int (optional)}
        message_id: the reply to make a new version of; absent: the current branch's last reply
    {"type": "select", "message_id": int}   show (and, for those who may write, save) the branch through it
    A frame longer than max_frame_chars(CHAT_MAX_MESSAGE_CHARS) or nested more than MAX_FRAME_DEPTH deep
    is refused before it is parsed.
server → client
    {"type": "message", "message": {"id", "parent_id", "versions", "role", "content", "status", "html", "note",
                                    "note_class", "meta", "author", "context_start", ...}}
        versions: the message and its siblings (its other versions), oldest first
    {"type": "start", "message_id", "parent_id"?, "versions"?, "context_start"?}
        context_start: the first message sent, older ones left out; no parent_id: its place is not known yet
    {"type": "branch", "parent_id", "leaf_id"}   the answer to a select: drop what follows parent_id; the
        branch's messages from there down to leaf_id follow as `message` frames
    {"type": "delta", "message_id", "offset", "content"}
    {"type": "done", "message_id", "status", "finish_reason", "usage", "html", "content", "error", "note", "note_class",
     "meta"}   meta: {"model", "tokens", "created"} (ISO 8601), for the line under a reply
        a `done` or `message` too big for one frame has "content" and "html" null and "fetch": the URL to get them from
    {"type": "error", "code", "message", "message_id"?}
    {"type": "access", "role": "viewer" | "collaborator" | "owner"}   your role changed
    {"type": "presence", "people": [username, ...], "guests": int, "more"?: int}   who else is here now
    {"type": "presence", "people": [], "guests": 0, "others": int}     the same, for a public link's socket
    {"type": "title", "title": str}   a model titled the conversation (after its first reply): plain text
"""

import json
import re
from dataclasses import dataclass
from json.decoder import scanstring

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from .tree import CURRENT
from .validators import check_message_content

# --- server → client ---------------------------------------------------------


def message_frame(payload: dict) -> dict:
    return {"type": "message", "message": payload}


def start_frame(
    message_id: int, *, parent_id: int | None = None, versions=None, context_start: int | None = None
) -> dict:
    """Without `versions`, the reply's place is not known here (a socket that heard of it only by its deltas)."""
    frame = {"type": "start", "message_id": message_id}
    if versions is not None:
        frame.update(parent_id=parent_id, versions=list(versions))
    if context_start is not None:
        frame["context_start"] = context_start
    return frame


def delta_frame(message_id: int, offset: int, content: str) -> dict:
    """`offset` is where `content` starts in the reply, in characters (Unicode code points)."""
    return {"type": "delta", "message_id": message_id, "offset": offset, "content": content}


def done_frame(
    message_id: int,
    *,
    status: str,
    finish_reason,
    usage,
    html: str,
    content: str,
    error: str,
    note: str,
    note_class: str,
    meta: dict | None = None,
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
        "meta": meta,
    }


def title_frame(title: str) -> dict:
    """The conversation's new title, written by a model: plain text, for the page's heading and the sidebar."""
    return {"type": "title", "title": title}


def branch_frame(parent_id: int | None, leaf_id: int | None) -> dict:
    return {"type": "branch", "parent_id": parent_id, "leaf_id": leaf_id}


def error_frame(code: str, message: str, message_id: int | None = None) -> dict:
    frame = {"type": "error", "code": code, "message": str(message)}
    if message_id is not None:
        frame["message_id"] = message_id
    return frame


def access_frame(role: str) -> dict:
    return {"type": "access", "role": role}


def presence_frame(people: list[str], guests: int, *, more: int = 0, others: int | None = None) -> dict:
    """Who else is here: `people` (at most a few names), `more` people not named, `guests` (anonymous
    visitors). A public link's socket gets only `others`: how many are here besides itself."""
    frame = {"type": "presence", "people": people, "guests": guests}
    if more:
        frame["more"] = more
    if others is not None:
        frame["others"] = others
    return frame


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
        self.message = str(message)  # a lazy translation is worded now, in the socket's language


@dataclass(frozen=True)
class Send:
    content: str
    model: int | None = None
    parent_id: int | str | None = CURRENT  # or CURRENT


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Regenerate:
    model: int | None = None
    message_id: int | None = None


@dataclass(frozen=True)
class Select:
    message_id: int


ClientFrame = Send | Stop | Regenerate | Select


def parse_client_frame(text: str | None, *, max_chars: int) -> ClientFrame:
    """Validate one frame from the browser. Raises FrameError with a code and a readable message.

    A frame longer than any valid one, or nested deeper than MAX_FRAME_DEPTH, is refused before it is
    parsed: json.loads recurses once per level and would raise RecursionError on thousands of them.
    """
    if text is None:
        raise FrameError("invalid_frame", _("Send frames as JSON text, not binary."))
    if len(text) > max_frame_chars(max_chars):
        raise FrameError(
            "content_too_long",
            _("The frame is %(length)s characters: too long for a message (the limit is %(limit)s characters).")
            % {"length": f"{len(text):,}", "limit": f"{max_chars:,}"},
        )
    if _nested_deeper_than(text, MAX_FRAME_DEPTH):
        raise FrameError("invalid_frame", _("The frame is nested too deeply."))
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise FrameError("invalid_json", _("The frame is not valid JSON.")) from None
    except ValueError:
        # Valid JSON all the same: an integer longer than Python reads from a string (sys.get_int_max_str_digits).
        raise FrameError("invalid_frame", _("A number in the frame is too long.")) from None
    except RecursionError:
        # The depth check above should make this impossible; it is the safety net that keeps the socket open.
        raise FrameError("invalid_frame", _("The frame is nested too deeply.")) from None
    if not isinstance(data, dict):
        raise FrameError("invalid_frame", _("A frame must be a JSON object with a 'type'."))
    kind = data.get("type")
    if kind == "send":
        parent_id = _message_id(data, "parent_id", allow_null=True) if "parent_id" in data else CURRENT
        return Send(content=_content(data, max_chars), model=_model(data), parent_id=parent_id)
    if kind == "stop":
        return Stop()
    if kind == "regenerate":
        return Regenerate(model=_model(data), message_id=_message_id(data, "message_id", allow_null=True))
    if kind == "select":
        return Select(message_id=_message_id(data, "message_id"))
    if not isinstance(kind, str):
        raise FrameError("invalid_frame", _("A frame must have a string 'type'."))
    raise FrameError(
        "unknown_type", _("Unknown frame type %(type)r; use send, stop, regenerate or select.") % {"type": kind[:40]}
    )


# --- bounds checked before parsing --------------------------------------------

MAX_FRAME_DEPTH = 8  # our frames are one object deep; this leaves room for whatever extra keys a client adds
# JSON may write any character as a \uXXXX escape (6 characters), and one outside the Basic Multilingual
# Plane, an emoji say, as two: Python's json.dumps does so by default. A valid frame is at most its content
# written that way, plus the keys, a model id and whatever whitespace the client's encoder adds.
_ESCAPED_CHARS_PER_CHAR = 12
_FRAME_ENVELOPE_CHARS = 1_000

_BRACKETS_AS_SQUARE = bytes.maketrans(b"{}", b"[]")  # the kind does not change the depth; json.loads checks it
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_MANY_STRINGS = 64  # our frames hold at most six; past this many, one regex pass costs less than a call each
# A JSON string with its escapes. Possessive, so a scan is linear; one left open runs to the end of the text.
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)


def max_frame_chars(max_chars: int) -> int:
    """The longest a valid frame can be when a message holds at most `max_chars` characters."""
    return max_chars * _ESCAPED_CHARS_PER_CHAR + _FRAME_ENVELOPE_CHARS


def _nested_deeper_than(text: str, limit: int) -> bool:
    """Whether arrays and objects in the JSON `text` nest more than `limit` deep, found without parsing it.

    Linear in the text, and almost free for a frame with few brackets; brackets inside strings do not
    count. For text that is not valid JSON the answer can go either way, but when it is False,
    json.loads fails before nesting more than 2 * limit deep.
    """
    if not _has_more_opening_brackets_than(text, limit):
        return False  # too few brackets to nest that deep, wherever they are: most frames stop here
    brackets = _outside_strings(text).encode("utf-8", "surrogatepass").translate(_BRACKETS_AS_SQUARE, _NOT_BRACKETS)
    for _pass in range(limit):
        # Each pass takes out the innermost pairs, so a pair still there after `limit` passes held more levels.
        fewer = brackets.replace(b"[]", b"")
        if len(fewer) == len(brackets):
            break
        brackets = fewer
    # Left: such a pair, or brackets without a partner (closing ones first, then opening ones).
    return b"[]" in brackets or len(brackets.lstrip(b"]")) > limit


def _has_more_opening_brackets_than(text: str, limit: int) -> bool:
    found = 0
    for bracket in "[{":
        at = text.find(bracket)  # memchr-fast on ASCII, unlike str.count
        while at >= 0:
            found += 1
            if found > limit:
                return True
            at = text.find(bracket, at + 1)
    return False


def _outside_strings(text: str) -> str:
    """`text` with its JSON strings cut out, up to the first string json.loads would refuse."""
    parts, at = [], 0
    for _string in range(_MANY_STRINGS):
        quote = text.find('"', at)
        if quote < 0:
            parts.append(text[at:])
            return "".join(parts)
        parts.append(text[at:quote])
        try:
            at = scanstring(text, quote + 1)[1]  # json's own C string scanner: escapes, strictness and all
        except ValueError:
            return "".join(parts)  # json.loads stops at this string too
    parts.append(_JSON_STRING.sub("", text[at:]))
    return "".join(parts)


def _content(data: dict, max_chars: int) -> str:
    content = data.get("content")
    if not isinstance(content, str):
        raise FrameError("invalid_frame", _("'content' must be a string."))
    try:
        return check_message_content(content, max_chars)
    except ValidationError as exc:
        raise FrameError(exc.code, exc.message) from None


def _message_id(data: dict, key: str, *, allow_null: bool = False) -> int | None:
    value = data.get(key)
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise FrameError("invalid_frame", _("'%(key)s' must be a message id (a positive whole number).") % {"key": key})
    return value


def _model(data: dict) -> int | None:
    model = data.get("model")
    if model is None or model == "":
        return None
    if isinstance(model, bool) or not isinstance(model, int) or model < 1:
        raise FrameError("invalid_frame", _("'model' must be a model id (a positive whole number) or null."))
    return model

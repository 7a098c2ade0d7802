"""Reading a response's body: bounded reads, what a 200's body is, and its reply as `Chunk`s.

Everything read here is size-bounded or parsed event by event, and leaves as
plain data (a Chunk, a dict) or as an UpstreamError (see errors.py). The text
of a reply is cleaned on the way in, so that whatever reaches the caller can
be stored as it is.

A 200 is not taken at its word: gateways and proxies answer 200 with an HTML
page, and some servers stream real events under a wrong or missing
Content-Type. So the first bytes decide (`body_kind`): an event stream, a
whole JSON completion (the server ignored `stream`), or no reply at all, which
is an error that shows how the body starts. And a stream that ends with
neither `data: [DONE]` nor a finish_reason says so: its last chunk carries
INCOMPLETE, so a reply cut off by a proxy or a crash is not taken as whole.
"""

import json
import re
from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx
import orjson

from .errors import api_error_message, error_from_status, not_a_reply_error
from .phrases import gettext_noop
from .sse import ServerSentEvent, SSEDecoder
from .types import INCOMPLETE, Chunk, ModelSpec, UpstreamError, Usage

MAX_ERROR_BODY_BYTES = 64 * 1024
MAX_COMPLETION_BODY_BYTES = 16 * 1024 * 1024  # a whole reply sent at once, when the server ignores `stream`

# How an event stream can start, once a byte order mark and blank lines are skipped: a field (llama.cpp's
# `error:` included) or a comment. JSON starts with "{", an HTML page with "<".
EVENT_STREAM_STARTS = (b"data:", b"event:", b"id:", b"retry:", b"error:", b":")
SNIFF_BYTES = max(map(len, EVENT_STREAM_STARTS))
REPLY_EVENTS = ("message", "error")  # the event names that carry the reply ("" is "message"), or its failure
REPORTED_AN_ERROR = gettext_noop("The model server reported an error")
REPORTED_AN_ERROR_MID_REPLY = gettext_noop("The model server reported an error mid-reply")
NO_DETAILS = gettext_noop("no details given")
NOT_JSON = gettext_noop("The model server sent a piece of the reply that is not valid JSON.")
NOT_AN_OBJECT = gettext_noop("The model server sent a piece of the reply that is not a JSON object.")
NO_REPLY_SENT = gettext_noop("The model server ended the stream without sending any part of a reply.")


async def take_bytes(body: AsyncIterator[bytes], limit: int) -> bytes:
    """At most the next `limit` bytes of a body being read: a server cannot make us hold more."""
    if limit <= 0:
        return b""
    taken = bytearray()
    async for data in body:
        taken += data
        if len(taken) >= limit:
            break
    return bytes(taken[:limit])


async def read_limited(response: httpx.Response, limit: int = MAX_ERROR_BODY_BYTES) -> bytes:
    """At most the first `limit` bytes of the body: a server cannot make us hold more."""
    return await take_bytes(response.aiter_bytes(), limit)


async def error_from_response(response: httpx.Response, spec: ModelSpec) -> UpstreamError:
    """The UpstreamError for a response that is not a 200, from its status, headers and the start of its body."""
    return error_from_status(response.status_code, response.headers, await read_limited(response), spec)


async def read_reply(response: httpx.Response, spec: ModelSpec) -> AsyncIterator[Chunk]:
    """The reply in a 200's body as Chunks: streamed events, or one chunk for a whole JSON completion.

    Raises UpstreamError for a body that holds no reply (an HTML page, an error object, nothing) and
    for a failure the stream reports. A stream that ends with neither `[DONE]` nor a finish_reason
    ends with a chunk whose finish_reason is INCOMPLETE.
    """
    content_type = response.headers.get("content-type", "")
    async with aclosing(response.aiter_bytes()) as body:
        head = await _read_head(body)
        kind = body_kind(head, content_type)
        if kind == "sse":
            async with aclosing(_stream_chunks(head, body, spec)) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        limit = MAX_COMPLETION_BODY_BYTES if kind == "json" else MAX_ERROR_BODY_BYTES
        raw = head + await take_bytes(body, limit - len(head))
    if kind != "json":
        raise not_a_reply_error(kind, raw, content_type, spec)
    yield chunk_from_completion(parse_completion(raw, content_type, spec))


def body_kind(head: bytes, content_type: str) -> str:
    """What a 200's body is, from its first bytes: "sse", "json", or no reply: "html", "other" or "empty".

    The bytes decide before the Content-Type does: a server that streams events as text/plain (or
    with no type) streams all the same, and a JSON error sent as text/event-stream is still JSON.
    """
    start = _content_start(head)
    if not start:
        return "sse" if head else "empty"  # only blank lines so far: an event stream's keep-alives
    if start.startswith(EVENT_STREAM_STARTS):
        return "sse"
    if start.startswith(b"{"):
        return "json"
    if start.startswith(b"<") or "html" in content_type.lower():
        return "html"
    return "other"


async def _read_head(body: AsyncIterator[bytes]) -> bytes:
    """The body's first bytes, enough for body_kind: a field name's worth past any blank lines, or a whole line."""
    head = b""
    async for data in body:
        head += data
        start = _content_start(head)
        if len(start) >= SNIFF_BYTES or b"\n" in start or len(head) >= MAX_ERROR_BODY_BYTES:
            break
    return head


def _content_start(head: bytes) -> bytes:
    """The body past a byte order mark and leading whitespace (blank lines, in an event stream)."""
    return head.removeprefix(b"\xef\xbb\xbf").lstrip()


async def _stream_chunks(head: bytes, body: AsyncIterator[bytes], spec: ModelSpec) -> AsyncIterator[Chunk]:
    """An event stream's chunks, one per network read, `head` (already read) first."""
    decoder = SSEDecoder()
    replied = said_finished = False
    async with aclosing(_events_per_read(decoder, head, body)) as reads:
        async for events in reads:
            chunk, error, finished = merge_events(events, spec)
            if chunk is not None:
                replied = True
                said_finished = said_finished or bool(chunk.finish_reason)
                yield chunk
            if error is not None:
                raise error
            if finished:
                return
    # The body ended, the HTTP response complete, without `[DONE]`.
    if not replied:
        raise UpstreamError(
            "bad_response", NO_REPLY_SENT
        )
    if not said_finished:
        yield Chunk(finish_reason=INCOMPLETE)


async def _events_per_read(
    decoder: SSEDecoder, head: bytes, body: AsyncIterator[bytes]
) -> AsyncIterator[list[ServerSentEvent]]:
    """The events each read completes, `head` first, and last what the stream's end leaves pending."""
    yield decoder.feed(head)
    async for data in body:
        yield decoder.feed(data)
    yield decoder.close()


def parse_completion(raw: bytes, content_type: str, spec: ModelSpec) -> dict:
    """A whole JSON completion (the server ignored `stream`), or the error it holds instead."""
    try:
        payload = json.loads(raw)
    except ValueError:
        raise not_a_reply_error("unparsable_json", raw, content_type, spec) from None
    if isinstance(payload, dict) and payload.get("error"):
        message = api_error_message(payload, spec)
        raise UpstreamError("upstream_error", f"{REPORTED_AN_ERROR}: {message or NO_DETAILS}")
    if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
        raise not_a_reply_error("json", raw, content_type, spec)
    return payload


def merge_events(events: list[ServerSentEvent], spec: ModelSpec) -> tuple[Chunk | None, UpstreamError | None, bool]:
    """One chunk for all the events of one network read (most reads hold several).

    Returns the merged chunk, an error that followed it, and whether the stream is finished
    (`[DONE]`, or the error). Named events other than the reply's (pings) are skipped.
    """
    merged, error, finished = None, None, False
    for event in events:
        if event.field == "error":
            error = error_line_error(event.data, spec)
            if error is None:
                continue  # not a JSON error object: an unknown field, ignored as the format says
            break
        if event.event not in REPLY_EVENTS:
            continue  # a ping or another event outside the API: no part of the reply
        if event.data == "[DONE]":
            finished = True
            break
        try:
            chunk = parse_chunk(event.data, event.event, spec)
        except UpstreamError as exc:
            error = exc
            break
        if merged is None:
            merged = chunk
            continue
        merged.text += chunk.text
        merged.finish_reason = chunk.finish_reason or merged.finish_reason
        merged.usage = chunk.usage or merged.usage
        merged.model = merged.model or chunk.model
    if merged is not None and merged.text:
        merged.text = clean_text(merged.text)
    return merged, error, finished or error is not None


def error_line_error(value: str, spec: ModelSpec) -> UpstreamError | None:
    """The failure llama.cpp reports on an `error: {...}` line; None when the value is not a JSON object."""
    try:
        payload = json.loads(value)
    except ValueError:
        return None
    return mid_reply_error(payload, spec) if isinstance(payload, dict) else None


def mid_reply_error(payload: dict, spec: ModelSpec) -> UpstreamError:
    """The error a stream reported after it began, in the server's words."""
    message = api_error_message(payload, spec) or "no details given"
    return UpstreamError("upstream_error", f"{REPORTED_AN_ERROR_MID_REPLY}: {message}")


def parse_chunk(data: str, event: str, spec: ModelSpec) -> Chunk:
    """One streamed event: a chat.completion.chunk (text in choices[0].delta) or a text_completion (choices[0].text)."""
    payload = _load_event(data, event, spec)
    text, finish_reason = "", None
    for choice in payload.get("choices") or ():
        if choice.get("index", 0) == 0:
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal") or choice.get("text") or ""
            finish_reason = choice.get("finish_reason")
            break
    usage = payload.get("usage")
    return Chunk(text, finish_reason, parse_usage(usage) if usage else None, payload.get("model"))


def _load_event(data: str, event: str, spec: ModelSpec) -> dict:
    try:
        payload = load_json(data)
    except ValueError:
        raise UpstreamError("bad_response", NOT_JSON) from None
    if not isinstance(payload, dict):
        raise UpstreamError("bad_response", NOT_AN_OBJECT)
    if payload.get("error") or event == "error":
        raise mid_reply_error(payload, spec)
    return payload


def load_json(data: str):
    """json.loads, four times faster for the events every reply is made of (orjson); what orjson refuses and
    the standard library takes (a lone surrogate escape, NaN) still parses as before."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def chunk_from_completion(payload: dict) -> Chunk:
    """The whole reply of a JSON completion as one chunk."""
    choice = (payload.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") or choice.get("text") or ""
    return Chunk(
        text=text,
        finish_reason=choice.get("finish_reason"),
        usage=parse_usage(payload.get("usage")),
        model=payload.get("model"),
    )


def parse_usage(raw) -> Usage | None:
    """The API's `usage` object, keeping only token counts that are whole numbers."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else None,
        completion_tokens=completion if isinstance(completion, int) else None,
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Model output the database can store: no NUL characters, no lone surrogates (from bad JSON escapes)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text

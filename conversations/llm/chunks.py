"""Reading a response's body: bounded reads, a whole JSON completion, and streamed events merged into `Chunk`s.

Everything read here is size-bounded or parsed event by event, and leaves as
plain data (a Chunk, a dict) or as an UpstreamError (see errors.py). The text
of a reply is cleaned on the way in, so that whatever reaches the caller can
be stored as it is.
"""

import json
import re

import httpx

from .errors import api_error_message, error_from_status
from .sse import ServerSentEvent
from .types import Chunk, ModelSpec, UpstreamError, Usage

MAX_ERROR_BODY_BYTES = 64 * 1024
MAX_COMPLETION_BODY_BYTES = 16 * 1024 * 1024  # a whole reply sent at once, when the server ignores `stream`
REPLY_EVENTS = ("message", "error")  # the event names that carry the reply ("" is "message"), or its failure


async def read_limited(response: httpx.Response, limit: int = MAX_ERROR_BODY_BYTES) -> bytes:
    """At most the first `limit` bytes of the body: a server cannot make us hold more."""
    body = bytearray()
    async for data in response.aiter_bytes():
        body += data
        if len(body) >= limit:
            break
    return bytes(body[:limit])


async def error_from_response(response: httpx.Response, spec: ModelSpec) -> UpstreamError:
    """The UpstreamError for a response that is not a 200, from its status, headers and the start of its body."""
    return error_from_status(response.status_code, response.headers, await read_limited(response), spec)


async def read_json(response: httpx.Response, spec: ModelSpec) -> dict:
    """A whole JSON completion (the server ignored `stream`), or the error it holds instead."""
    raw = await read_limited(response, MAX_COMPLETION_BODY_BYTES)
    try:
        payload = json.loads(raw)
    except ValueError:
        raise UpstreamError("bad_response", "The model server answered with JSON that does not parse.") from None
    if not isinstance(payload, dict) or payload.get("error"):
        message = api_error_message(payload, spec) if isinstance(payload, dict) else ""
        raise UpstreamError("upstream_error", f"The model server reported an error: {message or 'no details given'}")
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
    return UpstreamError("upstream_error", f"The model server reported an error mid-reply: {message}")


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
        payload = json.loads(data)
    except ValueError:
        raise UpstreamError("bad_response", "The model server sent a piece of the reply that is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise UpstreamError("bad_response", "The model server sent a piece of the reply that is not a JSON object.")
    if payload.get("error") or event == "error":
        raise mid_reply_error(payload, spec)
    return payload


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

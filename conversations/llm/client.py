"""The upstream client: one streamed reply from an OpenAI-compatible server.

`stream_reply` is the whole contract: an async generator of `Chunk`s that
either ends normally or raises `UpstreamError` with a message fit for a
person. Closing the generator (or cancelling the task iterating it) closes
the HTTP request at once, and also ends a wait between two attempts.

Retries: a 429 or a 500/502/503/504, or a connection that drops before any
text arrived, is tried again (CHAT_UPSTREAM_RETRIES times) after a backoff of
0.5 s, 1 s, 2 s … with jitter, or after the server's Retry-After when it sends
one. A Retry-After longer than CHAT_UPSTREAM_RETRY_MAX_WAIT is not waited for:
the error is reported at once, with the wait in its message. Once text has
arrived nothing is retried: the person has seen it, and a second answer would
not continue the first.
"""

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, contextmanager

import httpx
from django.conf import settings

from . import demo
from .prompts import request_body
from .providers import request_headers, request_url
from .sse import SSEDecoder, SSEError
from .transport import StreamingTransport
from .types import Chunk, ModelSpec, UpstreamError, Usage

log = logging.getLogger(__name__)

MAX_ERROR_BODY_BYTES = 64 * 1024
MAX_COMPLETION_BODY_BYTES = 16 * 1024 * 1024  # a whole reply sent at once, when the server ignores `stream`

_client: httpx.AsyncClient | None = None
_client_loop: asyncio.AbstractEventLoop | None = None


def shared_client() -> httpx.AsyncClient:
    """The process's pooled client (one per event loop, which in a server means one)."""
    global _client, _client_loop
    loop = asyncio.get_running_loop()
    if _client is None or _client_loop is not loop or _client.is_closed:
        limits = httpx.Limits(max_connections=settings.CHAT_UPSTREAM_MAX_CONNECTIONS, keepalive_expiry=30)
        _client = httpx.AsyncClient(
            transport=StreamingTransport(limits=limits),
            timeout=httpx.Timeout(60.0, connect=10.0),
            mounts={demo.BASE_URL: demo.DemoTransport(delay=settings.CHAT_DEMO_DELAY)},
            follow_redirects=False,
            trust_env=False,
        )
        _client_loop = loop
    return _client


async def close_shared_client() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
        _client = None


async def stream_reply(
    spec: ModelSpec,
    history: list[dict],
    *,
    user: str = "",
    read_interval: Callable[[], float] | None = None,
    retries: int | None = None,
) -> AsyncIterator[Chunk]:
    """Ask `spec` to answer `history` (dicts with role and content) and yield the reply as it streams.

    Each chunk holds what one network read brought: with a reply arriving faster
    than it is read, one chunk may carry several of the API's events.
    `read_interval`, if given, returns the least time between two reads of the
    stream; the caller batches by that much anyway (see transport.py).
    `retries` overrides CHAT_UPSTREAM_RETRIES (0: one attempt only, as a connection check wants).
    """
    retries = settings.CHAT_UPSTREAM_RETRIES if retries is None else retries
    attempt = 1
    while True:
        text_arrived = False
        try:
            async with aclosing(_stream_once(spec, history, user, read_interval)) as chunks:
                async for chunk in chunks:
                    text_arrived = text_arrived or bool(chunk.text)
                    yield chunk
            return
        except UpstreamError as exc:
            wait = None if text_arrived or attempt > retries else retry_wait(exc, attempt)
            if wait is None:
                raise _after_attempts(exc, attempt) from None
            log.info(
                "%s: %s; attempt %d of %d in %.1f s", _host(spec), exc.message, attempt + 1, retries + 1, wait
            )
        await asyncio.sleep(wait)  # a stop cancels the task here, at once
        attempt += 1


RETRY_STATUSES = {429, 500, 502, 503, 504}
RETRY_CODES = {"connection_lost"}  # the connection dropped before any text: nothing was shown or half-done
RETRY_BASE_DELAY = 0.5


def retry_wait(error: UpstreamError, attempt: int) -> float | None:
    """Seconds to wait before trying again after failed attempt number `attempt`, or None: do not retry.

    The server's Retry-After when it gave one (None when longer than
    CHAT_UPSTREAM_RETRY_MAX_WAIT), else 0.5 s, 1 s, 2 s … less up to a quarter
    at random, so that many replies refused at once do not all come back together.
    """
    if error.status not in RETRY_STATUSES and error.code not in RETRY_CODES:
        return None
    if error.code == "quota_exceeded":
        return None  # a 429 that waiting does not cure
    longest = settings.CHAT_UPSTREAM_RETRY_MAX_WAIT
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= longest else None
    return min(longest, RETRY_BASE_DELAY * 2 ** (attempt - 1)) * (1 - 0.25 * random.random())


def _after_attempts(error: UpstreamError, attempts: int) -> UpstreamError:
    if attempts == 1:
        return error
    message = f"{error.message.rstrip('.')} (after {attempts} attempts)."
    return UpstreamError(error.code, message, status=error.status, retry_after=error.retry_after)


async def _stream_once(
    spec: ModelSpec, history: list[dict], user: str, read_interval: Callable[[], float] | None
) -> AsyncIterator[Chunk]:
    """One request and its streamed reply (stream_reply without the retries)."""
    path, body = request_body(spec, history, user)
    headers = request_headers(spec)
    url = request_url(spec, path)
    timeout = httpx.Timeout(connect=spec.connect_timeout, read=spec.timeout, write=30.0, pool=30.0)
    with network_errors(spec):
        async with shared_client().stream(
            "POST",
            url,
            content=json.dumps(body).encode(),
            headers=headers,
            timeout=timeout,
            extensions={"read_interval": read_interval} if read_interval else None,
        ) as response:
            if response.status_code != 200:
                raise await _error_from_response(response, spec)
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type and "json" in content_type:
                # The server ignored `stream: true` and sent the whole completion at once.
                yield _chunk_from_completion(await _read_json(response, spec))
                return
            decoder = SSEDecoder()
            async for data in response.aiter_bytes():
                chunk, error, finished = _merge(decoder.feed(data), spec)
                if chunk is not None:
                    yield chunk
                if error is not None:
                    raise error
                if finished:
                    return
            chunk, error, _ = _merge(decoder.close(), spec)
            if chunk is not None:
                yield chunk
            if error is not None:
                raise error


@contextmanager
def network_errors(spec: ModelSpec, *, lost: str = "The connection to the model server dropped mid-reply.") -> Iterator[None]:
    """Network and stream failures as the one UpstreamError a person reads; `lost` for a dropped connection."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise _timeout_error(exc, spec) from None
    except httpx.ConnectError:
        raise UpstreamError(
            "unreachable", f"Could not connect to the model server at {_host(spec)}. Is it running?"
        ) from None
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        raise UpstreamError("connection_lost", lost) from None
    except httpx.HTTPError as exc:
        raise UpstreamError("upstream_error", f"The request to the model server failed: {type(exc).__name__}.") from None
    except SSEError as exc:
        raise UpstreamError("bad_response", f"The model server sent a malformed stream: {exc}") from None


def _merge(events, spec: ModelSpec) -> tuple[Chunk | None, UpstreamError | None, bool]:
    """One chunk for all the events of one network read (most reads hold several).

    Returns the merged chunk, an error that followed it, and whether the stream is finished.
    """
    merged = None
    for event in events:
        if event.data == "[DONE]":
            return merged, None, True
        try:
            chunk = _parse_chunk(event.data, event.event, spec)
        except UpstreamError as exc:
            return merged, exc, True
        if merged is None:
            merged = chunk
            continue
        merged.text += chunk.text
        merged.finish_reason = chunk.finish_reason or merged.finish_reason
        merged.usage = chunk.usage or merged.usage
        merged.model = merged.model or chunk.model
    if merged is not None and merged.text:
        merged.text = _clean_text(merged.text)
    return merged, None, False


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_text(text: str) -> str:
    """Model output the database can store: no NUL characters, no lone surrogates (from bad JSON escapes)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


def _parse_chunk(data: str, event: str, spec: ModelSpec) -> Chunk:
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
    return Chunk(text, finish_reason, _usage(usage) if usage else None, payload.get("model"))


def _load_event(data: str, event: str, spec: ModelSpec) -> dict:
    try:
        payload = json.loads(data)
    except ValueError:
        raise UpstreamError("bad_response", "The model server sent a piece of the reply that is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise UpstreamError("bad_response", "The model server sent a piece of the reply that is not a JSON object.")
    if payload.get("error") or event == "error":
        message = _api_error_message(payload, spec) or "no details given"
        raise UpstreamError("upstream_error", f"The model server reported an error mid-reply: {message}")
    return payload


def _chunk_from_completion(payload: dict) -> Chunk:
    choice = (payload.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") or choice.get("text") or ""
    return Chunk(
        text=text,
        finish_reason=choice.get("finish_reason"),
        usage=_usage(payload.get("usage")),
        model=payload.get("model"),
    )


def _usage(raw) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else None,
        completion_tokens=completion if isinstance(completion, int) else None,
    )


async def _read_json(response: httpx.Response, spec: ModelSpec) -> dict:
    raw = await _read_limited(response, MAX_COMPLETION_BODY_BYTES)
    try:
        payload = json.loads(raw)
    except ValueError:
        raise UpstreamError("bad_response", "The model server answered with JSON that does not parse.") from None
    if not isinstance(payload, dict) or payload.get("error"):
        message = _api_error_message(payload, spec) if isinstance(payload, dict) else ""
        raise UpstreamError("upstream_error", f"The model server reported an error: {message or 'no details given'}")
    return payload


async def _read_limited(response: httpx.Response, limit: int = MAX_ERROR_BODY_BYTES) -> bytes:
    body = bytearray()
    async for data in response.aiter_bytes():
        body += data
        if len(body) >= limit:
            break
    return bytes(body[:limit])


STATUS_ERRORS = {
    400: ("bad_request", "The model server rejected the request"),
    401: ("unauthorized", "The model server did not accept the API key"),
    403: ("forbidden", "The model server refused access"),
    404: ("not_found", "The model server does not know this model or address"),
    408: ("timeout", "The model server timed out"),
    413: ("bad_request", "The conversation is too long for the model server"),
    422: ("bad_request", "The model server rejected the request"),
    429: ("rate_limited", "The model server is rate limiting requests"),
    500: ("server_error", "The model server failed"),
    502: ("unavailable", "The model server is unavailable"),
    503: ("unavailable", "The model server is unavailable"),
    504: ("unavailable", "The model server is unavailable"),
}


# How servers say the prompt is too long: OpenAI's error code, and the words of OpenAI, vLLM and llama.cpp.
CONTEXT_TOO_LONG_PHRASES = ("context_length_exceeded", "maximum context length", "exceeds the available context size")


async def _error_from_response(response: httpx.Response, spec: ModelSpec) -> UpstreamError:
    status = response.status_code
    code, summary = STATUS_ERRORS.get(
        status, ("server_error", "The model server failed") if status >= 500 else ("bad_request", "The model server refused")
    )
    raw = await _read_limited(response)
    api_code = ""
    try:
        payload = json.loads(raw)
        detail = _api_error_message(payload, spec)
        api_code = _api_error_code(payload)
    except ValueError:
        detail = _scrub(raw.decode("utf-8", "replace").strip()[:300], spec)
    if status in (400, 413, 422) and _context_too_long(api_code, detail):
        return _context_length_error(status, detail, spec)
    if status == 429 and api_code == "insufficient_quota":
        code, summary = "quota_exceeded", "The model provider's account has run out of credit or quota"
    retry_after = _retry_after(response.headers) if status == 429 or status >= 500 else None
    message = f"{summary} ({status})"
    if retry_after is not None and code != "quota_exceeded":
        message += f"; try again in {max(1, round(retry_after))} s"
    if detail:
        message += f": {detail}"
    return UpstreamError(code, message, status=status, retry_after=retry_after)


def _context_too_long(api_code: str, detail: str) -> bool:
    text = f"{api_code} {detail}".lower()
    return any(phrase in text for phrase in CONTEXT_TOO_LONG_PHRASES)


def _context_length_error(status: int, detail: str, spec: ModelSpec) -> UpstreamError:
    message = f"The conversation is too long for this model's context window ({status})"
    if detail:
        message += f": {detail.rstrip('.')}"
    if spec.context_window:
        advice = (
            f"Older messages were already left out to fit the {spec.context_window}-token window set in the admin, "
            "so your last message may be too long on its own, or that window is larger than the model's. "
            "Shorten the message, lower the model's context window in the admin, or start a new chat."
        )
    else:
        advice = (
            "Ask an admin to set the model's context window in the admin so older messages are left out, "
            "or start a new chat."
        )
    return UpstreamError("context_length_exceeded", f"{message}. {advice}", status=status)


def _api_error_code(payload) -> str:
    """The API's machine-readable error code (OpenAI: error.code), if any."""
    error = payload.get("error", payload) if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else ""


def _api_error_message(payload, spec: ModelSpec) -> str:
    """The human part of the API's error JSON, whichever of the common shapes it takes."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        text = error.get("message") or error.get("detail") or error.get("code") or ""
    else:
        text = error
    if isinstance(text, list | dict):
        text = json.dumps(text)
    return _scrub(str(text or "").strip()[:500], spec)


SECRET_PATTERN = re.compile(r"\b(sk-|key-)[A-Za-z0-9_\-*.]{6,}")


def _scrub(text: str, spec: ModelSpec) -> str:
    """Take API keys out of a message before it can reach a page or a log."""
    if spec.api_key and len(spec.api_key) >= 6:
        text = text.replace(spec.api_key, "[key]")
    return SECRET_PATTERN.sub(lambda match: match.group(1) + "…", text)


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asks to wait: retry-after-ms (OpenAI's), else Retry-After in seconds or as an HTTP date."""
    try:
        return _seconds(float(headers["retry-after-ms"]) / 1000)
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _seconds(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(value)
    return max(0.0, value)


def _timeout_error(exc: httpx.TimeoutException, spec: ModelSpec) -> UpstreamError:
    if isinstance(exc, httpx.ConnectTimeout):
        return UpstreamError("unreachable", f"Connecting to the model server at {_host(spec)} timed out.")
    if isinstance(exc, httpx.PoolTimeout):
        return UpstreamError("busy", "Too many replies are streaming at once; try again shortly.")
    return UpstreamError(
        "timeout", f"The model server sent nothing for {spec.timeout:g} s, so the reply was given up."
    )


def _host(spec: ModelSpec) -> str:
    return httpx.URL(spec.base_url).host or spec.base_url

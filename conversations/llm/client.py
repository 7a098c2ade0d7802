"""The upstream client: one streamed reply from an OpenAI-compatible server.

`stream_reply` is the whole contract: an async generator of `Chunk`s that
either ends normally or raises `UpstreamError` with a message fit for a
person. Closing the generator (or cancelling the task iterating it) closes
the HTTP request at once, and also ends a wait between two attempts.

Retries: a 429 or a 500/502/503/504, or a connection that drops before any
text arrived, is tried again (`ClientOptions.retries` times) after a backoff of
0.5 s, 1 s, 2 s … with jitter, or after the server's Retry-After when it sends
one. A Retry-After longer than `ClientOptions.retry_max_wait` is not waited
for: the error is reported at once, with the wait in its message. Once text
has arrived nothing is retried: the person has seen it, and a second answer
would not continue the first.

A 200 is read for what its body is, not what its Content-Type claims: an
HTML page or an error object in place of a stream raises UpstreamError, and a
stream that ends without saying it finished (no `[DONE]`, no finish_reason)
ends with a chunk whose finish_reason is INCOMPLETE. What a response says is
read in chunks.py and mapped to errors in errors.py.
The options come from the caller: this package reads no settings.
"""

import asyncio
import functools
import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import httpx

from . import demo
from .chunks import error_from_response, read_reply
from .errors import network_errors
from .phrases import gettext_noop
from .prompts import request_body
from .providers import request_headers, request_url, server_host
from .transport import ALLOW_INTERNAL, StreamingTransport
from .types import Chunk, ClientOptions, ModelSpec, UpstreamError

log = logging.getLogger(__name__)

DEFAULT_OPTIONS = ClientOptions()  # frozen, so one instance can be every call's default

# One pooled client per shape (max_connections, demo_delay), for the running event loop only: in a
# server, whose options come from its settings, that is one client.
_clients: dict[tuple, httpx.AsyncClient] = {}
_clients_loop: asyncio.AbstractEventLoop | None = None


def shared_client(options: ClientOptions = DEFAULT_OPTIONS) -> httpx.AsyncClient:
    """The process's pooled client for these options, built again when its shape or the event loop changes."""
    global _clients_loop
    loop = asyncio.get_running_loop()
    if _clients_loop is not loop:
        _clients.clear()  # bound to a loop that is gone
        _clients_loop = loop
    shape = (options.max_connections, options.demo_delay, options.translate)
    client = _clients.get(shape)
    if client is None or client.is_closed:
        limits = httpx.Limits(max_connections=options.max_connections, keepalive_expiry=30)
        client = _clients[shape] = httpx.AsyncClient(
            transport=StreamingTransport(limits=limits),
            timeout=httpx.Timeout(60.0, connect=10.0),
            mounts={demo.BASE_URL: demo.DemoTransport(delay=options.demo_delay, translate=options.translate)},
            follow_redirects=False,
            trust_env=False,
        )
    return client


async def close_shared_client() -> None:
    """Close the pooled clients: before the event loop ends (each test's does), or at shutdown."""
    clients = list(_clients.values())
    _clients.clear()
    for client in clients:
        await client.aclose()


async def stream_reply(
    spec: ModelSpec,
    history: list[dict],
    *,
    user: str = "",
    read_interval: Callable[[], float] | None = None,
    options: ClientOptions = DEFAULT_OPTIONS,
) -> AsyncIterator[Chunk]:
    """Ask `spec` to answer `history` (dicts with role and content) and yield the reply as it streams.

    Each chunk holds what one network read brought: with a reply arriving faster
    than it is read, one chunk may carry several of the API's events.
    `read_interval`, if given, returns the least time between two reads of the
    stream; the caller batches by that much anyway (see transport.py).
    `options` says how often to retry, how long to wait at most, and shapes the pooled client.
    """
    retries = options.retries
    attempt = 1
    while True:
        text_arrived = False
        try:
            async with aclosing(_stream_once(spec, history, user, read_interval, options)) as chunks:
                async for chunk in chunks:
                    text_arrived = text_arrived or bool(chunk.text)
                    yield chunk
            return
        except UpstreamError as exc:
            wait = None if text_arrived or attempt > retries else retry_wait(exc, attempt, max_wait=options.retry_max_wait)
            if wait is None:
                raise _after_attempts(exc, attempt) from None
            log.info(
                "%s: %s; attempt %d of %d in %.1f s", server_host(spec), exc.message, attempt + 1, retries + 1, wait
            )
        await asyncio.sleep(wait)  # a stop cancels the task here, at once
        attempt += 1


RETRY_STATUSES = {429, 500, 502, 503, 504}
RETRY_CODES = {"connection_lost"}  # the connection dropped before any text: nothing was shown or half-done
RETRY_BASE_DELAY = 0.5


def retry_wait(error: UpstreamError, attempt: int, *, max_wait: float) -> float | None:
    """Seconds to wait before trying again after failed attempt number `attempt`, or None: do not retry.

    The server's Retry-After when it gave one (None when longer than `max_wait`),
    else 0.5 s, 1 s, 2 s … (at most `max_wait`) less up to a quarter at random,
    so that many replies refused at once do not all come back together.
    """
    if error.status not in RETRY_STATUSES and error.code not in RETRY_CODES:
        return None
    if error.code == "quota_exceeded":
        return None  # a 429 that waiting does not cure
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= max_wait else None
    return min(max_wait, RETRY_BASE_DELAY * 2 ** (attempt - 1)) * (1 - 0.25 * random.random())


AFTER_ATTEMPTS = gettext_noop("(after %(attempts)s attempts).")


def _after_attempts(error: UpstreamError, attempts: int) -> UpstreamError:
    if attempts == 1:
        return error
    message = error.message.rstrip(".") + " " + AFTER_ATTEMPTS % {"attempts": attempts}
    return UpstreamError(error.code, message, status=error.status, retry_after=error.retry_after)


@functools.lru_cache(maxsize=256)
def parsed_url(url: str) -> httpx.URL:
    """httpx parses a URL given as text on every request: a third of what opening a stream costs it."""
    return httpx.URL(url)


def request_extensions(spec: ModelSpec, read_interval: Callable[[], float] | None = None) -> dict:
    """What the transport is told besides the request: may it reach internal addresses, how to pace reads."""
    extensions: dict = {ALLOW_INTERNAL: spec.allow_internal}
    if read_interval is not None:
        extensions["read_interval"] = read_interval
    return extensions


async def _stream_once(
    spec: ModelSpec,
    history: list[dict],
    user: str,
    read_interval: Callable[[], float] | None,
    options: ClientOptions,
) -> AsyncIterator[Chunk]:
    """One request and its streamed reply (stream_reply without the retries)."""
    path, body = request_body(spec, history, user)
    headers = request_headers(spec)
    url = parsed_url(request_url(spec, path))
    timeout = httpx.Timeout(connect=spec.connect_timeout, read=spec.timeout, write=30.0, pool=30.0)
    with network_errors(spec):
        async with shared_client(options).stream(
            "POST",
            url,
            content=json.dumps(body).encode(),
            headers=headers,
            timeout=timeout,
            extensions=request_extensions(spec, read_interval),
        ) as response:
            if response.status_code != 200:
                raise await error_from_response(response, spec)
            async with aclosing(read_reply(response, spec)) as chunks:
                async for chunk in chunks:
                    yield chunk

"""An httpx transport for long streamed replies, on aiohttp.

The client keeps httpx's API (requests, responses, timeouts, exceptions,
mounts); only the transport underneath differs, as in OpenAI's own SDK
(`DefaultAioHttpClient`). Measured with bench/stream_load.py: httpx's default
transport spends 80–170 µs of CPU per streamed event (a Python pass through
h11, httpcore and httpx per HTTP chunk, and a socket read per event), and its
connection pool scans every connection on each request, which grows
quadratically with hundreds of concurrent replies. aiohttp parses HTTP in C
and hands over everything buffered in one read.

Pacing: for an event stream whose request carries a `read_interval`
extension (a function returning seconds), after the first few reads (so the
first tokens are not held back) the transport reads at most once per interval.
In between, the socket is paused: the events that arrive meanwhile gather in
the kernel and a single read takes them all, instead of one wake-up and one
system call per event. A reply's text is fanned out in batches of the same
interval anyway, so this adds at most one interval of delay.

Addresses: a request goes only to public addresses (addresses.py) unless its
`allow_internal` extension is true. Names are checked by the resolver, as the
connection is made, and IP addresses before the request (aiohttp resolves no
IP address). Requests that may reach internal addresses have a connection pool
of their own, so that a connection one of them left open never serves a request
that may not. No redirect is ever followed.
"""

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
import aiohttp.abc
import httpx

from .addresses import InternalAddressError, check_address, check_literal_host

# Reads before pacing starts: the headers, the role chunk and the first text go through at once.
UNPACED_READS = 3
# The request extension that lets one request reach internal addresses (ModelSpec.allow_internal).
ALLOW_INTERNAL = "allow_internal"


class PublicResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver, refusing a name if any of its addresses is internal (InternalAddressError)."""

    def __init__(self, inner: aiohttp.abc.AbstractResolver | None = None):
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


class StreamingTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, limits: httpx.Limits):
        self._limits = limits
        self._ssl_context = httpx.create_ssl_context()
        self._sessions: dict[bool, aiohttp.ClientSession] = {}  # by whether they may reach internal addresses

    def _get_session(self, allow_internal: bool) -> aiohttp.ClientSession:
        """The pool for requests that may, or may not, reach internal addresses; each holds up to the limit."""
        session = self._sessions.get(allow_internal)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=self._limits.keepalive_expiry or 15.0,
                ssl=self._ssl_context,
                resolver=None if allow_internal else PublicResolver(),
            )
            session = self._sessions[allow_internal] = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                trust_env=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        allow_internal = bool(request.extensions.get(ALLOW_INTERNAL))
        if not allow_internal:
            check_literal_host(request.url.host)  # an IP address never reaches the resolver
        body = await request.aread()
        try:
            response = await self._get_session(allow_internal).request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        except Exception as exc:
            raise _httpx_error(exc, request, connecting=True) from exc
        pacing = request.extensions.get("read_interval")
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            pacing = None
        return httpx.Response(
            status_code=response.status,
            headers=[(name, value) for name, value in response.raw_headers],
            stream=_ResponseStream(response, request, pacing),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        for session in self._sessions.values():
            await session.close()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request, pacing: Callable[[], float] | None):
        self._response = response
        self._request = request
        self._pacing = pacing
        connection = response.connection
        # Paused and resumed at the transport, beneath aiohttp's own flow control, which it leaves alone.
        self._transport = connection.transport if connection is not None else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        content = self._response.content
        transport = self._transport
        paced = self._pacing is not None and transport is not None
        reads, last_read = 0, 0.0
        try:
            while True:
                if paced and reads >= UNPACED_READS:
                    wait = last_read + self._pacing() - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not transport.is_closing():
                        transport.resume_reading()
                data = await content.readany()
                if not data:
                    return
                reads, last_read = reads + 1, loop.time()
                if paced and reads >= UNPACED_READS and not transport.is_closing():
                    transport.pause_reading()
                yield data
        except Exception as exc:
            raise _httpx_error(exc, self._request, connecting=False) from exc

    async def aclose(self) -> None:
        # A connection must never go back to the pool paused: its next request would wait forever.
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
        if self._response.content.at_eof():
            self._response.release()  # the connection goes back to the pool
        else:
            self._response.close()  # cut short (stop, error): the server sees the request end now


def _httpx_error(exc: Exception, request: httpx.Request, *, connecting: bool) -> Exception:
    """The httpx exception for an aiohttp (or asyncio) failure, so callers handle one family."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.HTTPError | InternalAddressError):
        return exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, (aiohttp.SocketTimeoutError, asyncio.TimeoutError)):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, (aiohttp.ClientOSError, OSError)):
        return (httpx.ConnectError if connecting else httpx.ReadError)(message, request=request)
    if isinstance(exc, aiohttp.ClientError):
        return httpx.TransportError(message, request=request)
    return exc

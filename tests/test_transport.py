"""The aiohttp-based httpx transport: pacing of event streams, connection reuse, errors as httpx's, and the
addresses it refuses."""

import re
import socket
import time

import aiohttp.abc
import httpx
import pytest

from conversations.llm.addresses import InternalAddressError
from conversations.llm.sse import SSEDecoder
from conversations.llm.transport import ALLOW_INTERNAL, PublicResolver, StreamingTransport
from tests.fake_openai import DONE, DROP, Script, chunk, reply

LIMITS = httpx.Limits(max_connections=10, keepalive_expiry=30)


@pytest.fixture
async def paced_client():
    """A client whose requests ask for event streams to be read at most every 0.1 s, and may reach the fake
    server (on 127.0.0.1, an internal address)."""
    client = httpx.AsyncClient(transport=StreamingTransport(limits=LIMITS))
    original = client.build_request

    def paced_request(*args, **kwargs):
        request = original(*args, **kwargs)
        request.extensions["read_interval"] = lambda: 0.1
        request.extensions[ALLOW_INTERNAL] = True
        return request

    client.build_request = paced_request
    yield client
    await client.aclose()


async def read_stream(client: httpx.AsyncClient, url: str) -> tuple[list[bytes], float]:
    """The pieces the transport handed over, and seconds until the first."""
    pieces, first = [], None
    started = time.monotonic()
    async with client.stream("POST", url, content=b"{}") as response:
        async for data in response.aiter_raw():
            first = first if first is not None else time.monotonic() - started
            pieces.append(data)
    return pieces, first


def events_in(pieces: list[bytes]) -> list[str]:
    decoder = SSEDecoder()
    return [event.data for piece in pieces for event in decoder.feed(piece)]


async def test_paced_event_stream_gathers_many_events_per_read(paced_client, upstream):
    upstream.push(reply([f"w{i} " for i in range(60)], delay=0.01))  # about 0.6 s
    pieces, _ = await read_stream(paced_client, upstream.base_url + "/chat/completions")
    events = events_in(pieces)
    assert events[-1] == "[DONE]" and len(events) == 64  # role, 60 words, finish, usage, done
    assert len(pieces) <= 15, f"{len(pieces)} reads for {len(events)} events"


async def test_first_reads_are_not_held_back(paced_client, upstream):
    upstream.push(Script([chunk("first"), 1.0, chunk("later"), DONE]))
    started = time.monotonic()
    async with paced_client.stream("POST", upstream.base_url + "/chat/completions", content=b"{}") as response:
        first = await response.aiter_raw().__anext__()
        assert time.monotonic() - started < 0.5
    assert b"first" in first


async def test_connection_returned_to_the_pool_after_a_paced_stream_still_reads(paced_client, upstream):
    # The reader stops at [DONE] while the socket is paused; the next request on the same
    # connection must not wait forever for a paused socket.
    upstream.push(reply([f"w{i} " for i in range(30)], delay=0.01), reply(["second"]))
    url = upstream.base_url + "/chat/completions"
    async with paced_client.stream("POST", url, content=b"{}") as response:
        decoder = SSEDecoder()
        async for data in response.aiter_raw():
            if any(event.data == "[DONE]" for event in decoder.feed(data)):
                break
    started = time.monotonic()
    response = await paced_client.post(url, content=b"{}", timeout=5)
    assert b"second" in response.content
    assert time.monotonic() - started < 1.0
    assert len({request.headers.get("host") for request in upstream.requests}) == 1


async def test_json_answers_are_read_unpaced(paced_client, upstream):
    response = await paced_client.get(upstream.base_url + "/models")
    assert response.status_code == 200 and response.json()["data"][0]["id"] == "fake-model"


async def test_dropped_connection_is_httpx_remote_protocol_error(paced_client, upstream):
    upstream.push(Script([chunk("partial"), DROP]))
    with pytest.raises(httpx.RemoteProtocolError):
        await read_stream(paced_client, upstream.base_url + "/chat/completions")


async def test_closed_port_is_httpx_connect_error(paced_client):
    with pytest.raises(httpx.ConnectError):
        await paced_client.get("http://127.0.0.1:9/v1/models")


async def test_stall_is_httpx_read_timeout(paced_client, upstream):
    upstream.push(Script([chunk("partial"), 2.0, DONE]))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        async with paced_client.stream(
            "POST", upstream.base_url + "/chat/completions", content=b"{}", timeout=httpx.Timeout(5, read=0.3)
        ) as response:
            async for _ in response.aiter_raw():
                pass
    assert time.monotonic() - started < 1.5


# --- addresses -----------------------------------------------------------------------------------


class ListedResolver(aiohttp.abc.AbstractResolver):
    """Answers each name with the addresses listed for it, as DNS would."""

    def __init__(self, addresses: dict[str, list[str]]):
        self.addresses = addresses

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [
            {"hostname": host, "host": address, "port": port, "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
             "proto": 0, "flags": 0}
            for address in self.addresses[host]
        ]

    async def close(self):
        pass


@pytest.mark.parametrize(
    ("name", "addresses", "refused"),
    [
        ("public.example", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"], None),
        ("rebound.example", ["93.184.215.14", "10.0.0.5"], "rebound.example resolves to 10.0.0.5, a private network address"),
        ("metadata.example", ["169.254.169.254"], "metadata.example resolves to 169.254.169.254, a link-local address"),
        ("v6.example", ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::1"], "v6.example resolves to ::1, a loopback address"),
    ],
    ids=["public", "one-of-several-private", "metadata", "ipv6-loopback"],
)
async def test_a_name_is_refused_if_any_of_its_addresses_is_internal(name, addresses, refused):
    resolver = PublicResolver(ListedResolver({name: addresses}))
    if refused is None:
        assert [result["host"] for result in await resolver.resolve(name, 443)] == addresses
        return
    with pytest.raises(InternalAddressError, match=re.escape(refused)):
        await resolver.resolve(name, 443)


async def test_a_connection_kept_for_a_request_allowed_inside_never_serves_one_that_is_not(upstream):
    client = httpx.AsyncClient(transport=StreamingTransport(limits=LIMITS))
    url = f"http://localhost:{upstream.port}/v1/models"  # a name: only the resolver can refuse it
    try:
        allowed = await client.get(url, extensions={ALLOW_INTERNAL: True})
        with pytest.raises(InternalAddressError, match="localhost resolves to "):
            await client.get(url)
    finally:
        await client.aclose()
    assert allowed.status_code == 200
    assert len(upstream.requests) == 1

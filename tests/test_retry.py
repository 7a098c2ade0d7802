"""Retrying a refused or failed request before any text arrived: backoff, Retry-After, the cap, and stop."""

import asyncio
import email.utils
import itertools
import re
import time
from dataclasses import replace

import pytest

from conversations.llm import ClientOptions, UpstreamError, stream_reply
from conversations.models import Message
from tests.factories import spec_for
from tests.fake_openai import DROP, Script, chunk, error, reply
from tests.helpers import done, free_port, open_socket, receive_until

HISTORY = [{"role": "user", "content": "Tell me about otters"}]
# What the tests that call stream_reply pass; the tests over the socket get the same from the settings.
RETRYING = ClientOptions(retries=2, retry_max_wait=20.0, demo_delay=0.0)


@pytest.fixture(autouse=True)
def retrying(settings):
    settings.CHAT_UPSTREAM_RETRIES = 2
    settings.CHAT_UPSTREAM_RETRY_MAX_WAIT = 20.0


async def reply_text(upstream, options: ClientOptions = RETRYING) -> str:
    return "".join([piece.text async for piece in stream_reply(spec_for(upstream), HISTORY, options=options)])


async def failure(upstream, options: ClientOptions = RETRYING) -> UpstreamError:
    with pytest.raises(UpstreamError) as raised:
        await reply_text(upstream, options)
    return raised.value


def gaps(upstream) -> list[float]:
    """Seconds between one request's arrival and the next's."""
    times = [request.at for request in upstream.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# --- what is retried, and after how long ---------------------------------------------------------


async def test_rate_limit_with_retry_after_is_retried_after_that_long(upstream):
    upstream.push(error(429, "Rate limit reached for requests", headers={"retry-after": "1"}), reply("Otters are fine."))

    assert await reply_text(upstream) == "Otters are fine."

    assert len(upstream.requests) == 2
    assert 1.0 <= gaps(upstream)[0] < 1.5


async def test_retry_after_ms_is_honoured(upstream):
    upstream.push(error(429, "Slow down", headers={"retry-after-ms": "300"}), reply("Done."))

    assert await reply_text(upstream) == "Done."

    assert 0.3 <= gaps(upstream)[0] < 0.6


async def test_unavailable_twice_then_success_backs_off_exponentially(upstream):
    upstream.push(error(503, "Overloaded"), error(503, "Overloaded"), reply("Third time lucky."))

    assert await reply_text(upstream) == "Third time lucky."

    first, second = gaps(upstream)
    assert 0.375 <= first < 0.5 + 0.3  # 0.5 s less up to a quarter of jitter
    assert 0.75 <= second < 1.0 + 0.3  # then 1 s
    assert second > first


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_other_server_errors_are_retried(upstream, status):
    upstream.push(error(status, "Bad gateway", headers={"retry-after": "0"}), reply("Recovered."))
    assert await reply_text(upstream) == "Recovered."
    assert len(upstream.requests) == 2


async def test_three_rate_limits_are_reported_after_three_attempts(upstream):
    upstream.push(*[error(429, "Rate limit reached for requests", headers={"retry-after-ms": "50"})] * 3, reply("Never."))

    raised = await failure(upstream)

    assert len(upstream.requests) == 3
    assert (raised.code, raised.status) == ("rate_limited", 429)
    assert "Rate limit reached for requests" in raised.message
    assert "after 3 attempts" in raised.message


async def test_retry_after_above_the_cap_is_reported_at_once(upstream):
    upstream.push(error(429, "Rate limit reached for requests", headers={"retry-after": "6"}), reply("Never."))
    started = time.monotonic()

    raised = await failure(upstream, replace(RETRYING, retry_max_wait=5.0))

    assert time.monotonic() - started < 0.5
    assert len(upstream.requests) == 1
    assert raised.code == "rate_limited" and raised.retry_after == 6.0
    assert "try again in 6 s" in raised.message
    assert "attempts" not in raised.message


async def test_retry_after_as_an_http_date_is_understood(upstream):
    later = email.utils.formatdate(time.time() + 60, usegmt=True)
    upstream.push(error(503, "Down for maintenance", headers={"retry-after": later}), reply("Never."))

    raised = await failure(upstream)

    assert len(upstream.requests) == 1  # a minute is longer than the 20 s cap
    assert 58 <= raised.retry_after <= 60
    assert re.search(r"try again in (59|60) s", raised.message)


async def test_a_connection_dropped_before_any_text_is_retried(upstream):
    upstream.push(Script([DROP]), reply("Second try."))
    assert await reply_text(upstream) == "Second try."
    assert len(upstream.requests) == 2


async def test_nothing_is_retried_once_text_has_arrived(upstream):
    upstream.push(Script([chunk("", role="assistant"), chunk("Otters "), 0.05, DROP]), reply("A second answer."))
    pieces = []

    with pytest.raises(UpstreamError) as raised:
        async for piece in stream_reply(spec_for(upstream), HISTORY, options=RETRYING):
            pieces.append(piece.text)

    assert "".join(pieces) == "Otters "
    assert raised.value.code == "connection_lost"
    assert "attempts" not in raised.value.message
    await asyncio.sleep(0.7)  # longer than the first backoff
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    "script",
    [
        error(400, "'messages' must contain at least one message."),
        error(401, "Incorrect API key provided."),
        error(404, "The model `gpt-9` does not exist."),
        error(429, "You exceeded your current quota, please check your plan and billing details.", code="insufficient_quota"),
    ],
)
async def test_refusals_that_waiting_does_not_cure_are_not_retried(upstream, script):
    upstream.push(script, reply("Never."))
    raised = await failure(upstream)
    assert len(upstream.requests) == 1
    assert "attempts" not in raised.message


async def test_used_up_quota_says_so(upstream):
    upstream.push(error(429, "You exceeded your current quota.", code="insufficient_quota", headers={"retry-after": "1"}))
    raised = await failure(upstream)
    assert (raised.code, raised.status) == ("quota_exceeded", 429)
    assert "run out of credit" in raised.message and "try again" not in raised.message


async def test_retries_can_be_turned_off(upstream):
    upstream.push(error(503, "Overloaded"), reply("Never."))
    raised = await failure(upstream, replace(RETRYING, retries=0))
    assert raised.code == "unavailable" and len(upstream.requests) == 1


async def test_a_closed_port_is_reported_at_once():
    # Nothing listens: retrying would only delay "Is it running?".
    spec = spec_for(base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=2)
    started = time.monotonic()
    with pytest.raises(UpstreamError) as raised:
        async for _ in stream_reply(spec, HISTORY, options=RETRYING):
            pass
    assert raised.value.code == "unreachable"
    assert time.monotonic() - started < 0.4


async def test_cancelling_during_the_wait_ends_it_at_once(upstream):
    upstream.push(error(429, "Slow down", headers={"retry-after": "10"}), reply("Never."))
    task = asyncio.create_task(reply_text(upstream))
    while not upstream.requests:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the error has been read; the client is waiting
    started = time.monotonic()

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.1
    assert len(upstream.requests) == 1


# --- over the socket ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_reply_refused_once_completes_after_the_retry(user, conversation, model_config, upstream):
    upstream.push(error(503, "Overloaded", headers={"retry-after": "0.2"}), reply("Patience pays."))
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "send", "content": "Hello?"})

    frames = await receive_until(communicator, done)

    assert (frames[-1]["status"], frames[-1]["content"], frames[-1]["error"]) == ("complete", "Patience pays.", "")
    assert not any(frame["type"] == "error" for frame in frames)
    assert len(upstream.requests) == 2
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_retries_used_up_show_the_attempts_in_the_error(user, conversation, model_config, upstream):
    upstream.push(*[error(502, "Bad gateway", headers={"retry-after": "0"})] * 3)
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "send", "content": "Hello?"})

    frames = await receive_until(communicator, lambda frame: frame["type"] == "error")

    done_frame = next(frame for frame in frames if frame["type"] == "done")
    assert done_frame["status"] == "error" and "after 3 attempts" in done_frame["error"]
    assert frames[-1]["code"] == "unavailable" and "after 3 attempts" in frames[-1]["message"]
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_stop_during_the_backoff_wait_stops_the_reply_at_once(user, conversation, model_config, upstream):
    upstream.push(error(429, "Slow down", headers={"retry-after": "10"}), reply("Never."))
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "send", "content": "Hello?"})
    await receive_until(communicator, lambda frame: frame["type"] == "start")
    while not upstream.requests:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # refused; now waiting to try again
    started = time.monotonic()

    await communicator.send_json_to({"type": "stop"})
    frames = await receive_until(communicator, done, timeout=2)

    assert time.monotonic() - started < 1.0
    assert frames[-1]["status"] == "stopped" and frames[-1]["error"] == ""
    reply_message = await Message.objects.aget(pk=frames[-1]["message_id"])
    assert (reply_message.status, reply_message.content) == ("stopped", "")
    await asyncio.sleep(0.2)
    assert len(upstream.requests) == 1
    await communicator.disconnect()

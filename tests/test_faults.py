"""Nothing lost, nothing stuck, in one process: a stop that races a send, a stop the layer lost, an orphaned reply,
a final save the database refuses, and a channel layer that goes down and comes back (tests/flaky_layer.py).

The same faults with real processes, a real Redis and real PostgreSQL are in tests/e2e/test_faults.py.
"""

import asyncio
import json
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from conversations import services, streaming
from conversations.consumers import CLOSE_UNAVAILABLE
from conversations.consumers import replies as relay
from conversations.models import Message
from conversations.streaming import generation as generation_module
from tests import factories
from tests.fake_openai import paced_reply, reply
from tests.flaky_layer import layer_down
from tests.helpers import connect, done, open_socket, receive_until, send, text_of

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def messages_in(conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation).order_by("id"))


@sync_to_async
def reply_row(reply_id: int) -> Message:
    return Message.objects.get(pk=reply_id)


def until_message_of(reply_id: int):
    """A `message` frame carrying this reply in a final state (saved at last, or closed as orphaned)."""
    def ended(frame: dict) -> bool:
        message = frame.get("message") or {}
        return frame["type"] == "message" and message["id"] == reply_id and message["status"] != "streaming"

    return ended


async def record_stop(conversation, *, at) -> None:
    """A stop recorded in the database as arriving `at` (from another tab or process), and nothing else."""
    await sync_to_async(services.replies.reply_stop_request)(conversation_id=conversation.id, at=at)


# --- stop is never lost --------------------------------------------------------------------


async def test_a_stop_that_arrived_after_the_send_but_before_its_reply_was_saved_stops_it(
    user, conversation, model_config, upstream
):
    socket = await open_socket(user, conversation)
    sent_at = timezone.now()
    # The stop (from another tab or process) is recorded first; the send it follows arrived earlier.
    await record_stop(conversation, at=sent_at + timedelta(milliseconds=3))
    await streaming.reply_send(user=user, conversation_id=conversation.id, content="Stop me", received_at=sent_at)
    frames = await receive_until(socket, done)

    assert frames[-1]["status"] == "stopped"
    assert upstream.requests == []  # nothing went upstream
    assert (await messages_in(conversation))[-1].status == "stopped"


async def test_a_stop_from_before_the_send_does_not_stop_the_new_reply(user, conversation, model_config, upstream):
    socket = await open_socket(user, conversation)
    sent_at = timezone.now()
    await record_stop(conversation, at=sent_at - timedelta(milliseconds=3))
    await streaming.reply_send(user=user, conversation_id=conversation.id, content="Go on", received_at=sent_at)
    frames = await receive_until(socket, done)
    assert frames[-1]["status"] == "complete"
    assert text_of(frames) == "Hello from the fake model."


async def test_a_stop_whose_message_was_lost_is_applied_from_the_database(user, conversation, model_config, upstream, settings):
    settings.CHAT_STALE_AFTER = 0.8  # leases renewed, and recorded stops read, every 0.2 s
    upstream.push(paced_reply(100, 20))  # five seconds, unless stopped
    socket = await open_socket(user, conversation)
    await send(socket, "Talk")
    await receive_until(socket, lambda frame: frame["type"] == "delta")
    # Recorded in the database only, as when the layer dropped the stop message.
    await record_stop(conversation, at=timezone.now())
    started = time.monotonic()
    frames = await receive_until(socket, done)
    assert frames[-1]["status"] == "stopped"
    assert time.monotonic() - started < 1.5


async def test_stop_on_an_orphaned_reply_closes_it_at_once(user, conversation):
    # A reply whose process died a moment ago: its lease still looks fresh, but nobody runs it.
    orphan = await sync_to_async(factories.make_message)(
        conversation=conversation, role=Message.Role.ASSISTANT, content="half a rep", status=Message.Status.STREAMING
    )
    socket = await open_socket(user, conversation)
    started = time.monotonic()
    await socket.send_to(text_data=json.dumps({"type": "stop"}))
    frames = await receive_until(socket, until_message_of(orphan.id), timeout=5)

    assert time.monotonic() - started < relay.STOP_ACK_SECONDS + 1.0
    closed = frames[-1]["message"]
    assert (closed["status"], closed["content"], closed["error"]) == ("error", "half a rep", services.replies.INTERRUPTED)
    assert (await reply_row(orphan.id)).status == "error"
    # `busy` does not outlive it: the next send goes ahead.
    await send(socket, "Again")
    assert (await receive_until(socket, done))[-1]["status"] == "complete"


# --- orphans are swept -----------------------------------------------------------------------


async def test_an_orphan_is_closed_by_the_sweep_and_its_watchers_told(user, conversation, settings):
    settings.CHAT_STALE_AFTER = 0.6
    orphan = await sync_to_async(factories.make_message)(
        conversation=conversation, role=Message.Role.ASSISTANT, content="cut off here", status=Message.Status.STREAMING
    )
    await sync_to_async(Message.objects.filter(pk=orphan.pk).update)(updated=timezone.now() - timedelta(seconds=5))
    socket = await open_socket(user, conversation)
    frames = await receive_until(socket, until_message_of(orphan.id), timeout=3)
    assert frames[-1]["message"]["content"] == "cut off here"
    assert (await reply_row(orphan.id)).error == services.replies.INTERRUPTED


async def test_a_running_reply_is_not_taken_for_an_orphan(user, conversation, model_config, upstream, settings):
    settings.CHAT_STALE_AFTER = 0.6  # much shorter than the reply: only the renewed lease keeps it alive
    upstream.push(paced_reply(40, 20))  # two seconds
    socket = await open_socket(user, conversation)
    await send(socket, "Talk")
    frames = await receive_until(socket, done, timeout=6)
    assert frames[-1]["status"] == "complete"
    assert text_of(frames) == "word " * 40


# --- honest saves ----------------------------------------------------------------------------


@pytest.fixture
def database_down_for(monkeypatch):
    """reply_finish fails (as with the database unreachable) for the next `seconds`."""

    def take_down(seconds: float) -> list[bool]:
        """Each save attempt in turn: True when it found the database down."""
        until = time.monotonic() + seconds
        attempts = []
        original = services.replies.reply_finish

        def failing(**fields):
            down = time.monotonic() < until
            attempts.append(down)
            if down:
                raise ConnectionError("could not connect to server")
            return original(**fields)

        monkeypatch.setattr(services.replies, "reply_finish", failing)
        return attempts

    return take_down


async def test_a_final_save_that_succeeds_within_the_window_reports_what_was_saved(
    user, conversation, model_config, upstream, settings, database_down_for
):
    settings.CHAT_SAVE_RETRY_SECONDS = 5
    attempts = database_down_for(1.0)
    socket = await open_socket(user, conversation)
    await send(socket)
    frames = await receive_until(socket, done, timeout=8)
    # Tried again over the outage (which began before the reply, so it measures no time from the first try).
    assert attempts[0] and not attempts[-1], attempts
    assert (frames[-1]["status"], frames[-1]["note"]) == ("complete", "")
    reply = (await messages_in(conversation))[-1]
    assert (reply.status, reply.content) == ("complete", "Hello from the fake model.")


async def test_a_final_save_that_fails_is_reported_as_not_saved_then_saved_later(
    user, conversation, model_config, upstream, settings, database_down_for
):
    settings.CHAT_SAVE_RETRY_SECONDS = 0.5
    settings.CHAT_STALE_AFTER = 0.8  # unsaved replies are tried again every 0.2 s
    database_down_for(1.5)
    socket = await open_socket(user, conversation)
    await send(socket)
    frames = await receive_until(socket, done, timeout=5)
    reply_id = frames[-1]["message_id"]

    assert frames[-1]["status"] == "error"  # never "complete" for text that is not stored
    assert frames[-1]["note"].startswith("Not saved yet: the database cannot be reached.")
    assert frames[-1]["content"] == "Hello from the fake model."  # what the person saw stays on the page
    assert (await reply_row(reply_id)).status == "streaming"

    saved = await receive_until(socket, until_message_of(reply_id), timeout=5)
    assert (saved[-1]["message"]["status"], saved[-1]["message"]["content"]) == ("complete", "Hello from the fake model.")
    reply = await reply_row(reply_id)
    assert (reply.status, reply.content) == ("complete", "Hello from the fake model.")


# --- the channel layer goes down and comes back ------------------------------------------------


async def test_a_send_while_the_layer_is_down_is_refused_and_saves_nothing(
    user, conversation, model_config, upstream, flaky_layer
):
    socket = await open_socket(user, conversation)
    with layer_down():
        await send(socket, "Anyone there?")
        frame = json.loads(await socket.receive_from(timeout=5))
    assert (frame["type"], frame["code"]) == ("error", "unavailable")
    assert await messages_in(conversation) == []
    assert upstream.requests == []
    await send(socket, "Now?")  # the same socket, still open, once the layer is back
    assert (await receive_until(socket, done))[-1]["status"] == "complete"


async def test_a_new_socket_while_the_layer_is_down_gets_a_close_code_the_page_retries_after(user, conversation, flaky_layer):
    with layer_down():
        socket = await connect(user, conversation.id)
        connected, _ = await socket.connect()
        assert connected
        assert (await socket.receive_output(timeout=5)) == {"type": "websocket.close", "code": CLOSE_UNAVAILABLE}


async def test_a_stream_resumes_after_a_blip_with_no_text_lost(user, conversation, model_config, upstream, flaky_layer):
    upstream.push(paced_reply(60, 30))  # two seconds
    socket = await open_socket(user, conversation)
    await send(socket, "Talk")
    frames = await receive_until(socket, lambda frame: frame["type"] == "delta" and frame["offset"] > 20)
    with layer_down():
        await asyncio.sleep(0.5)
    assert flaky_layer.failures > 0
    frames += await receive_until(socket, done, timeout=6)

    assert text_of(frames) == "word " * 60  # contiguous offsets, nothing missing, nothing twice
    assert frames[-1]["status"] == "complete"
    assert (await messages_in(conversation))[-1].content == "word " * 60


async def test_a_done_lost_while_the_layer_was_down_reaches_the_page_anyway(
    user, conversation, model_config, upstream, flaky_layer, monkeypatch
):
    monkeypatch.setattr(generation_module, "DONE_RETRY_SECONDS", 0.2)  # give up on `done` quickly
    monkeypatch.setattr(relay, "SILENCE_SECONDS", 0.6)  # and notice the silence quickly
    upstream.push(reply(["Quick ", "end."], delay=0.3))
    socket = await open_socket(user, conversation)
    await send(socket, "Talk")
    frames = await receive_until(socket, lambda frame: frame["type"] == "delta")
    reply_id = frames[-1]["message_id"]
    with layer_down():
        await streaming.wait_for_replies(timeout=5)  # it ends, saved, while nothing can be published
    frames = await receive_until(socket, until_message_of(reply_id), timeout=5)
    assert (frames[-1]["message"]["status"], frames[-1]["message"]["content"]) == ("complete", "Quick end.")

"""shutdown.drain, in one process: what a deploy's SIGTERM does to running replies and open sockets.

The real signal, sent to a real daphne process with another process watching, is in tests/e2e/test_faults.py.
"""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from conversations import lifecycle, services, shutdown
from conversations.consumers import CLOSE_UNAVAILABLE
from conversations.models import Message
from tests import factories
from tests.fake_openai import paced_reply
from tests.helpers import done, open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def serve_again_after():
    yield
    lifecycle.serve_again()


async def closed_for_restart(socket) -> None:
    assert (await socket.receive_output(timeout=5)) == {"type": "websocket.close", "code": CLOSE_UNAVAILABLE}


async def test_a_reply_that_ends_within_the_grace_period_completes_and_its_watchers_see_done(
    user, conversation, model_config, upstream, client
):
    upstream.push(paced_reply(20, 20))  # one second
    watcher = await open_socket(user, conversation)
    idle = await open_socket(user, await sync_to_async(factories.make_conversation)(owner=user))
    await send(watcher, "Finish, please")
    await receive_until(watcher, lambda frame: frame["type"] == "delta")

    draining = asyncio.ensure_future(shutdown.drain(grace=10))
    await closed_for_restart(idle)  # watches nothing running here: reconnects elsewhere at once
    await sync_to_async(client.force_login)(user)
    assert (await sync_to_async(client.get)("/healthz")).status_code == 503
    await send(watcher, "Another one")  # refused while draining: the page sends it again elsewhere
    frames = await receive_until(watcher, done)
    assert {"type": "error", "code": "draining"}.items() <= next(f for f in frames if f["type"] == "error").items()
    assert frames[-1]["status"] == "complete"
    await closed_for_restart(watcher)
    await draining

    assert [message.status for message in await sync_to_async(list)(conversation.messages.order_by("id"))] == [
        "complete",
        "complete",
    ]


async def test_a_reply_still_running_at_the_end_of_the_grace_period_is_saved_as_interrupted(
    user, conversation, model_config, upstream
):
    upstream.push(paced_reply(200, 20))  # ten seconds
    watcher = await open_socket(user, conversation)
    await send(watcher, "Talk for a while")
    await receive_until(watcher, lambda frame: frame["type"] == "delta" and frame["offset"] >= 10)

    await shutdown.drain(grace=0.3)
    frames = await receive_until(watcher, lambda frame: frame["type"] == "error")
    ended = next(frame for frame in frames if frame["type"] == "done")
    assert (ended["status"], ended["error"]) == ("error", services.replies.INTERRUPTED)
    assert frames[-1]["code"] == "interrupted"
    kept = ended["content"]
    assert kept.startswith("word word") and len(kept) < len("word " * 200)
    await closed_for_restart(watcher)

    reply = await sync_to_async(Message.objects.get)(pk=ended["message_id"])
    assert (reply.status, reply.content, reply.error) == ("error", kept, services.replies.INTERRUPTED)


async def test_a_page_told_draining_sends_again_after_reconnecting(user, conversation, model_config, upstream):
    # The protocol half of it (the page's half is in chat.js): the refused send saved nothing.
    socket = await open_socket(user, conversation)
    lifecycle.begin_draining()
    await socket.send_to(text_data=json.dumps({"type": "send", "content": "Lost?"}))
    frame = json.loads(await socket.receive_from(timeout=5))
    assert (frame["type"], frame["code"]) == ("error", "draining")
    assert not await sync_to_async(Message.objects.filter(conversation=conversation).exists)()

"""realtime.py: deleting a conversation, by any path, stops its reply and closes its sockets once the deletion commits."""

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from conversations import streaming
from conversations.models import Conversation, Message
from tests.fake_openai import paced_reply
from tests.helpers import connect, receive_until

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_DELETED = 4410


async def closed_as_deleted(communicator) -> list[dict]:
    """The frames up to the close, which must be the `deleted` error and code 4410."""
    frames = await receive_until(communicator, lambda frame: frame["type"] == "error", timeout=5)
    assert frames[-1]["code"] == "deleted"
    assert (await communicator.receive_output(timeout=5)) == {"type": "websocket.close", "code": CLOSE_DELETED}
    return frames


async def test_deletion_reaches_sockets_only_after_it_commits(user, conversation):
    socket = await connect(user, conversation.id)
    assert (await socket.connect())[0]
    held = asyncio.Event()
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def delete_and_hold() -> None:
        with transaction.atomic():
            Conversation.objects.filter(pk=conversation.pk).delete()
            loop.call_soon_threadsafe(held.set)
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result(timeout=5)

    deleting = asyncio.ensure_future(sync_to_async(delete_and_hold)())
    await held.wait()
    assert await socket.receive_nothing(timeout=0.3), "announced before the transaction committed"
    release.set()
    await deleting
    await closed_as_deleted(socket)


@pytest.mark.parametrize("path", ["page", "queryset", "owner-deleted"])
async def test_deleting_by_any_path_stops_the_reply_and_closes_the_owners_socket(
    user, conversation, model_config, upstream, client, path
):
    upstream.push(paced_reply(200, 20))  # ten seconds of reply, unless stopped
    socket = await connect(user, conversation.id)
    assert (await socket.connect())[0]
    await socket.send_to(text_data=json.dumps({"type": "send", "content": "Talk for a while."}))
    await receive_until(socket, lambda frame: frame["type"] == "delta")

    started = time.monotonic()
    if path == "page":
        await sync_to_async(client.force_login)(user)
        response = await sync_to_async(client.post)(f"/c/{conversation.id}/delete/")
        assert response.status_code == 302
    elif path == "queryset":
        await sync_to_async(Conversation.objects.filter(pk=conversation.pk).delete)()
    else:
        await sync_to_async(user.delete)()
    await closed_as_deleted(socket)
    await streaming.wait_for_replies(timeout=2)
    assert time.monotonic() - started < 2, "the reply ran on after its conversation was deleted"
    assert not await sync_to_async(Message.objects.filter(conversation_id=conversation.id).exists)()

"""Replies of any length: no frame over the websocket limit, and what a frame cannot carry is fetched over HTTP."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from conversations import events, services
from conversations.models import Message
from tests import factories
from tests.fake_openai import reply
from tests.helpers import done, login, open_link_socket, open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)

PARAGRAPH = "Otters hold hands while they sleep, so that they do not drift apart. " * 14 + "\n\n"  # 1,000 characters
BIG = PARAGRAPH * 600  # 600,000 characters: with its HTML, a `done` of about 1.2 MB


def frame_sizes(frames: list[dict]) -> list[int]:
    return [len(json.dumps(frame, ensure_ascii=False).encode()) for frame in frames]


def test_a_small_frame_is_sent_as_it_is():
    frame = events.delta_frame(1, 0, "hello")
    assert events.within_limit(frame, json.dumps(frame), str) == [frame]


def test_a_big_delta_is_split_at_contiguous_offsets():
    frame = events.delta_frame(7, 100, "字" * 200_000)  # 600 KB in UTF-8
    parts = events.within_limit(frame, json.dumps(frame, ensure_ascii=False), str)
    assert len(parts) > 1
    assert "".join(part["content"] for part in parts) == frame["content"]
    assert [part["offset"] for part in parts] == [100 + sum(len(p["content"]) for p in parts[:i]) for i in range(len(parts))]
    assert max(frame_sizes(parts)) <= events.MAX_FRAME_BYTES


async def test_a_reply_too_big_for_one_frame_streams_and_its_text_is_fetched(user, conversation, model_config, upstream):
    upstream.push(reply([PARAGRAPH] * 600))
    socket = await open_socket(user, conversation)
    await send(socket, "Everything about otters")
    frames = await receive_until(socket, done, timeout=20)

    assert max(frame_sizes(frames)) <= events.MAX_FRAME_BYTES
    ended = frames[-1]
    assert (ended["status"], ended["content"], ended["html"]) == ("complete", None, None)
    assert ended["fetch"] == f"/c/{conversation.id}/messages/{ended['message_id']}/"
    fetched = await sync_to_async(lambda: login(user).get(ended["fetch"]).json())()
    assert (fetched["content"], fetched["status"]) == (BIG, "complete")
    assert fetched["html"].startswith("<p>Otters hold hands")

    # Reopened: the catch-up frame cannot carry it either.
    again = await open_socket(user, conversation, query=f"since={ended['message_id']}")
    message = json.loads(await again.receive_from(timeout=5))["message"]
    assert (message["id"], message["content"], message["fetch"]) == (ended["message_id"], None, ended["fetch"])


def test_only_people_who_may_see_the_conversation_fetch_its_messages(user, conversation, make_user):
    message = factories.make_message(conversation=conversation, content="Private")
    url = f"/c/{conversation.id}/messages/{message.id}/"
    assert login(make_user("mallory")).get(url).status_code == 404
    assert Client().get(url).status_code == 302  # to the login page
    other = factories.make_conversation(owner=user)
    assert login(user).get(f"/c/{other.id}/messages/{message.id}/").status_code == 404
    assert login(user).get(url).json()["content"] == "Private"


async def test_a_live_links_big_message_is_fetched_through_the_link(user, conversation):
    reply_row = await sync_to_async(factories.make_message)(conversation=conversation, role=Message.Role.ASSISTANT, content=BIG)
    live = await sync_to_async(services.sharing.public_link_create)(conversation=conversation, kind="live", audience="anyone")
    snapshot = await sync_to_async(services.sharing.public_link_create)(
        conversation=conversation, kind="snapshot", audience="anyone"
    )
    socket = await open_link_socket(live.token, query="since=0")
    message = json.loads(await socket.receive_from(timeout=5))["message"]
    assert message["fetch"] == f"/s/{live.token}/messages/{reply_row.id}/"
    visitor = Client()
    assert (await sync_to_async(visitor.get)(message["fetch"])).json()["content"] == BIG
    assert (await sync_to_async(visitor.get)(f"/s/{snapshot.token}/messages/{reply_row.id}/")).status_code == 404

"""throttle.py: one client cannot flood a socket, open sockets without end, or send and create without pause.

The effect of a flood on another person's page is measured by bench/flood.py.
"""

import json

import pytest
from asgiref.sync import sync_to_async

from conversations import services
from conversations.consumers import CLOSE_TOO_MANY
from conversations.models import Conversation, Message
from tests.helpers import (
    closed_with,
    connect,
    done,
    link_socket,
    login,
    open_link_socket,
    open_socket,
    receive_until,
    refused_at_handshake,
    send,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_flood_of_frames_is_dropped_then_closed_and_other_sockets_are_served(
    user, conversation, model_config, upstream, settings
):
    settings.CHAT_FRAMES_PER_SECOND = 5  # a burst of 10
    flooder = await open_socket(user, conversation)
    bystander = await open_socket(user, conversation)
    for _ in range(300):
        await flooder.send_to(text_data=json.dumps({"type": "stop"}))
    frames = []
    while True:
        output = await flooder.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
        frames.append(json.loads(output["text"]))
    assert output["code"] == CLOSE_TOO_MANY
    refusals = [frame for frame in frames if frame.get("code") == "rate_limited"]
    assert len(refusals) == 1  # said once, not once per frame
    # The other socket goes on as ever.
    await send(bystander, "Still fine?")
    assert (await receive_until(bystander, done))[-1]["status"] == "complete"


async def test_a_socket_within_its_budget_is_never_refused(user, conversation, settings):
    settings.CHAT_FRAMES_PER_SECOND = 5
    socket = await open_socket(user, conversation)
    for _ in range(8):  # within the burst
        await socket.send_to(text_data=json.dumps({"type": "stop"}))
    assert await socket.receive_nothing(timeout=0.3)


async def test_sockets_per_person_are_capped_and_counted_down_on_close(user, conversation, settings):
    settings.CHAT_SOCKETS_PER_PERSON = 2
    first = await open_socket(user, conversation)
    await open_socket(user, conversation)
    third = await connect(user, conversation.id)
    connected, _ = await third.connect()
    assert connected
    refusal = json.loads(await third.receive_from(timeout=5))
    assert (refusal["type"], refusal["code"]) == ("error", "rate_limited")
    assert (await third.receive_output(timeout=5)) == {"type": "websocket.close", "code": CLOSE_TOO_MANY}
    await first.disconnect()
    await open_socket(user, conversation)  # a place came free


async def test_guests_on_a_live_link_are_capped_per_address(user, conversation, settings):
    settings.CHAT_SOCKETS_PER_ADDRESS = 2
    link = await sync_to_async(services.sharing.public_link_create)(conversation=conversation, kind="live", audience="anyone")
    await open_link_socket(link.token)
    await open_link_socket(link.token)
    assert await closed_with(link_socket(link.token), skip_frames=1) == CLOSE_TOO_MANY


async def test_new_sockets_per_address_per_minute_are_capped(user, conversation, settings):
    settings.CHAT_CONNECTS_PER_MINUTE = 3
    for _ in range(3):
        socket = await open_socket(user, conversation)
        await socket.disconnect()
    assert await refused_at_handshake(await connect(user, conversation.id))


async def test_sends_per_minute_are_capped_with_nothing_saved(user, conversation, model_config, upstream, settings):
    settings.CHAT_SENDS_PER_MINUTE = 2
    socket = await open_socket(user, conversation)
    for _ in range(2):
        await send(socket)
        await receive_until(socket, done)
    await send(socket, "One too many")
    refusal = (await receive_until(socket, lambda frame: frame["type"] == "error"))[-1]
    assert refusal["code"] == "rate_limited" and "at most 2 messages a minute" in refusal["message"]
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == 4


def test_new_conversations_per_hour_are_capped(user, settings):
    settings.CHAT_CONVERSATIONS_PER_HOUR = 2
    client = login(user)
    for _ in range(2):
        assert client.post("/c/new/", {"content": ""}).status_code == 302
    response = client.post("/c/new/", {"content": ""})
    assert response.status_code == 400
    assert "You have started 2 conversations in the last hour" in response.content.decode()
    assert Conversation.objects.filter(owner=user).count() == 2


def test_a_count_is_one_round_trip_readable_through_the_cache_and_expires_with_its_window():
    from django.core.cache import cache

    from conversations import throttle

    key = "throttle:test-counter"
    cache.delete(key)
    assert [throttle._hit(key, 30) for _ in range(3)] == [1, 2, 3]
    assert cache.get(key) == 3
    redis = throttle._redis_client()
    if redis is not None:  # the PostgreSQL + Redis run: the window is the key's time to live
        assert 0 < redis.ttl(cache.make_and_validate_key(key)) <= 30
    cache.delete(key)


def test_open_socket_counts_go_up_and_down_in_one_call_and_never_below_zero():
    from django.core.cache import cache

    from conversations import throttle

    keys = ["throttle:test-sockets:a", "throttle:test-sockets:b"]
    cache.delete_many(keys)
    steps = [throttle._add_to_socket_counts(keys, delta) for delta in (1, 1, -1, -1, -1, 1)]
    assert steps == [[1, 1], [2, 2], [1, 1], [0, 0], [0, 0], [1, 1]]
    assert [cache.get(key) for key in keys] == [1, 1]
    cache.delete_many(keys)


def test_a_group_of_sends_is_counted_together_and_the_one_over_the_limit_refused(user, make_conversation, model_config, settings):
    from functools import partial

    from django.core.cache import cache

    from conversations import throttle
    from conversations.services.replies import ReplyPlan, replies_together, reply_begin

    settings.CHAT_SENDS_PER_MINUTE = 2
    cache.delete(throttle._sends_key(user.pk))
    conversations = [make_conversation(model_config=model_config) for _ in range(3)]
    sends = [partial(reply_begin, user=user, conversation_id=c.id, content="Hello") for c in conversations]
    hits = []
    original = throttle._hit
    throttle._hit = lambda *args: hits.append(args) or original(*args)
    try:
        first, second, third = replies_together(
            sends, conversation_ids=[c.id for c in conversations], sender_ids=[user.pk] * 3
        )
    finally:
        throttle._hit = original

    assert isinstance(first, ReplyPlan) and isinstance(second, ReplyPlan)
    assert isinstance(third, throttle.RateLimited)
    assert Message.objects.filter(conversation=conversations[2]).count() == 0  # refused before anything was saved
    # With Redis the three were counted in one round trip before the group ran; without it, one by one.
    assert len(hits) == (0 if throttle._redis_client() is not None else 3)
    cache.delete(throttle._sends_key(user.pk))

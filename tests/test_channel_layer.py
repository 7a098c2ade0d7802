"""The Redis channel layer (conversations/channel_layer.py): publishes made together go in one pipeline, in the
order they were made, and a Redis that cannot be reached is reported to the publisher (realtime.py retries)."""

import asyncio
import socket
import uuid

import pytest
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError

from conversations.channel_layer import RedisChannelLayer
from tests.infra import ensure_redis

pytestmark = pytest.mark.infra


def redis_layer(url: str = "redis://127.0.0.1:6379/0") -> RedisChannelLayer:
    return RedisChannelLayer(hosts=[{"address": url, "socket_timeout": 5}], prefix=f"layer-test-{uuid.uuid4().hex[:8]}")


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_publishes_made_together_arrive_in_order_in_few_round_trips(monkeypatch):
    ensure_redis()
    pipelines = []
    original = Pipeline.execute

    async def counted(self, *args, **kwargs):
        pipelines.append(len(self.command_stack))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)
    layer = redis_layer()
    channel = await layer.new_channel()
    await layer.group_add("frames", channel)

    async def sender(name: int) -> None:
        for n in range(100):
            await layer.group_send("frames", {"type": "frame", "sender": name, "n": n})

    await asyncio.gather(*(sender(name) for name in range(5)))
    received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(500)]

    for name in range(5):
        assert [message["n"] for message in received if message["sender"] == name] == list(range(100))
    assert sum(pipelines) == 500
    assert len(pipelines) <= 110  # the five senders' publishes shared round trips (one each would be 500)
    await layer.flush()


async def test_an_unreachable_redis_is_reported_to_the_publisher():
    layer = redis_layer(f"redis://127.0.0.1:{unused_port()}/0")
    with pytest.raises(RedisConnectionError):
        await layer.group_send("frames", {"type": "frame"})
    with pytest.raises(RedisConnectionError):
        await layer.new_channel()
    await layer.flush()


async def test_a_cancelled_publisher_does_not_stop_the_others():
    ensure_redis()
    layer = redis_layer()
    channel = await layer.new_channel()
    await layer.group_add("frames", channel)
    cancelled = asyncio.ensure_future(layer.group_send("frames", {"type": "frame", "n": 0}))
    cancelled.cancel()
    await layer.group_send("frames", {"type": "frame", "n": 1})

    message = await asyncio.wait_for(layer.receive(channel), 5)
    if message["n"] == 0:  # the cancelled one may still have gone out with the pipeline
        message = await asyncio.wait_for(layer.receive(channel), 5)
    assert message["n"] == 1
    await layer.flush()

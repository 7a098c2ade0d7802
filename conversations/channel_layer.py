"""The channel layers, made cheap enough to relay every reply of a busy process.

FastInMemoryChannelLayer (one process, the default): Channels' InMemoryChannelLayer scans every channel and group for expired
messages on every send and receive, deep-copies each message once per
recipient, and starts a task per recipient in group_send: with a few hundred
open sockets that costs more CPU than the streaming itself. This keeps its
behaviour (capacity, expiry, groups) but sweeps at most once a second,
shares one message among recipients (our messages are never mutated after
sending), and delivers group messages without extra tasks.

RedisChannelLayer (several processes, REDIS_URL): channels_redis's pub/sub layer, with the
publishes of one moment sent together. channels_redis awaits every PUBLISH behind one
asyncio.Lock per Redis connection, subscriptions included, so a process talks to Redis one
round trip at a time: 200 streaming replies queued behind each other's frames. Here a publish
joins an outbox that one task sends as a pipeline (one write, one read for all of them), in
the order they were made, and each publisher learns whether its own went out. Built on
channels_redis 4.3's internals (RedisPubSubLoopLayer, RedisSingleShardConnection), which
requirements.txt pins.
"""

import asyncio
import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close, decode_hosts

SWEEP_INTERVAL = 1.0


class FastInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._swept_at = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at >= SWEEP_INTERVAL:
            self._swept_at = now
            super()._clean_expired()
            # A channel's queue outlives each message (a new asyncio.Queue per frame cost 2-3% of the relay's
            # CPU): the queues that hold nothing and that nobody waits on go here, once a second.
            for channel, queue in list(self.channels.items()):
                if queue.empty() and not queue._getters:
                    del self.channels[channel]

    def _put(self, channel: str, message: dict) -> None:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = self._new_queue(channel)
        if queue.full():
            raise ChannelFull(channel)
        queue.put_nowait((time.time() + self.expiry, message))

    def _new_queue(self, channel: str) -> asyncio.Queue:
        return asyncio.Queue(maxsize=self.get_capacity(channel))

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        self._put(channel, message)

    async def receive(self, channel: str) -> dict:
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = self._new_queue(channel)
        _, message = await queue.get()
        return message

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            try:
                self._put(channel, message)
            except ChannelFull:
                pass


class RedisChannelLayer(RedisPubSubChannelLayer):
    def _get_layer(self):
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = self._layers[loop] = _RedisLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
            return layer


class _RedisLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, hosts=None, *args, **kwargs):
        super().__init__(hosts, *args, **kwargs)
        self._shards = [_PipelinedShard(host, self) for host in decode_hosts(hosts)]

    async def group_add(self, group, channel):
        # A group this process is in already costs no round trip, so it would not notice Redis is gone:
        # the connection that listens says so (a send is then refused before anything is saved).
        shard = self._get_shard(self._get_group_channel_name(group))
        if shard.listening_lost():
            raise ConnectionError("The connection to Redis that receives messages is down")
        await super().group_add(group, channel)


class _PipelinedShard(RedisSingleShardConnection):
    def __init__(self, host, channel_layer):
        super().__init__(host, channel_layer)
        self._outbox: list[tuple[str, bytes, asyncio.Future]] = []
        self._sender: asyncio.Task | None = None

    def listening_lost(self) -> bool:
        connection = self._pubsub.connection if self._pubsub is not None else None
        return bool(self._subscribed_to) and connection is not None and not connection.is_connected

    async def publish(self, channel, message):
        future = asyncio.get_running_loop().create_future()
        self._outbox.append((channel, message, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_outbox(), name="redis-publish")
        await future

    async def _send_outbox(self) -> None:
        while self._outbox:
            await asyncio.sleep(0)  # the publishes made in this pass of the loop go together
            batch, self._outbox = self._outbox, []
            try:
                self._ensure_redis()
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, message, _ in batch:
                        pipe.publish(channel, message)
                    await pipe.execute()
            except Exception as exc:  # Redis is down or restarting: each publisher decides (realtime._with_retries)
                outcome = exc
            else:
                outcome = None
            for _, _, future in batch:
                if future.done():  # its publisher was cancelled
                    continue
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)

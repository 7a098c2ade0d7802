"""The in-memory channel layer, made cheap enough to relay every reply of a busy single process.

Channels' InMemoryChannelLayer scans every channel and group for expired
messages on every send and receive, deep-copies each message once per
recipient, and starts a task per recipient in group_send: with a few hundred
open sockets that costs more CPU than the streaming itself. This keeps its
behaviour (capacity, expiry, groups) but sweeps at most once a second,
shares one message among recipients (our messages are never mutated after
sending), and delivers group messages without extra tasks.
"""

import asyncio
import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

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
        try:
            _, message = await queue.get()
        finally:
            if queue.empty() and self.channels.get(channel) is queue:
                del self.channels[channel]
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

"""A channel layer that fails on demand, as Redis does while it restarts: for the tests of what survives a blip.

    with layer_down():
        ...  # every publish, subscribe and new channel raises ConnectionError; receiving still waits

It is the app's in-memory layer otherwise. The `flaky_layer` fixture (tests/conftest.py) installs it.
"""

from contextlib import contextmanager

from conversations.channel_layer import FastInMemoryChannelLayer


class FlakyChannelLayer(FastInMemoryChannelLayer):
    down = False  # class-wide: every process-local instance fails together, as all connections to Redis do
    failures = 0

    def _check(self) -> None:
        if FlakyChannelLayer.down:
            FlakyChannelLayer.failures += 1
            raise ConnectionError("Connection refused (the test took the layer down)")

    async def send(self, channel, message):
        self._check()
        await super().send(channel, message)

    async def group_send(self, group, message):
        self._check()
        await super().group_send(group, message)

    async def group_add(self, group, channel):
        self._check()
        await super().group_add(group, channel)

    async def new_channel(self, prefix="specific."):
        self._check()
        return await super().new_channel(prefix)


@contextmanager
def layer_down():
    FlakyChannelLayer.down = True
    try:
        yield
    finally:
        FlakyChannelLayer.down = False

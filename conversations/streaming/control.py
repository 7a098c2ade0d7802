"""Stops and snapshot requests for this process's running replies: one channel per process, not a group per reply.

Every process listens on realtime.GENERATIONS_GROUP through one channel, opened at its first send. A
request names its conversation (realtime.request_stop, request_snapshot); the process running that
conversation's reply hands it over, the others drop it. Joining and leaving a group per reply cost
each send a Redis SUBSCRIBE and UNSUBSCRIBE, behind channels_redis's one lock per connection.

No stop goes unheard: a send is `expected` before its reply is saved, requests for the conversation
arriving meanwhile are kept, and the generation gets them when it is `attached`. A stop that arrived
before even that is in the database, and reply_begin reads it.
"""

import asyncio
import logging
import uuid

from channels.layers import get_channel_layer

from .. import realtime

log = logging.getLogger(__name__)


class _Listener:
    def __init__(self, layer, channel: str):
        self.layer = layer
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self.task = self.loop.create_task(self._run(), name="generation-control")

    def current(self) -> bool:
        return (
            self.layer is get_channel_layer() and self.loop is asyncio.get_running_loop() and not self.task.done()
        )

    async def _run(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # the layer is down: stops still arrive through the database (upkeep.py)
                await asyncio.sleep(1.0)
                continue
            try:
                conversation_id = uuid.UUID(message["conversation_id"])
            except (KeyError, TypeError, ValueError):
                continue
            await _deliver(conversation_id, message)


_listener: _Listener | None = None
_running: dict[uuid.UUID, object] = {}  # conversation id -> its Generation in this process
_expected: dict[uuid.UUID, list[list[dict]]] = {}  # conversation id -> the requests kept for each send being begun


async def _deliver(conversation_id: uuid.UUID, message: dict) -> None:
    for kept in _expected.get(conversation_id, ()):
        kept.append(message)
    generation = _running.get(conversation_id)
    if generation is not None:
        await _hand_over(generation, message)


async def _hand_over(generation, message: dict) -> None:
    reply_to = generation.on_control(message)
    if reply_to:  # a stop: the socket that asked learns it was heard (consumers/replies.py, STOP_ACK_SECONDS)
        await realtime.send_to_channel(reply_to, {"type": realtime.GENERATION_STOPPING, "message_id": generation.reply_id})


async def listen() -> None:
    """Make sure this process listens for requests. Raises if the layer cannot be reached (then nothing is saved)."""
    global _listener
    layer = get_channel_layer()
    if _listener is None or not _listener.current():
        if _listener is not None:
            _listener.task.cancel()
        _listener = _Listener(layer, await layer.new_channel())
    # Already a member: no round trip on Redis, but a layer known to be down says so here.
    await layer.group_add(realtime.GENERATIONS_GROUP, _listener.channel)


def expect(conversation_id: uuid.UUID) -> list[dict]:
    """A send for this conversation is being begun: keep the requests that arrive for it until `attach`."""
    kept: list[dict] = []
    _expected.setdefault(conversation_id, []).append(kept)
    return kept


def forget(conversation_id: uuid.UUID, kept: list[dict]) -> None:
    """The send was refused, or its generation attached: stop keeping requests for it."""
    waiting = [other for other in _expected.get(conversation_id, ()) if other is not kept]
    if waiting:
        _expected[conversation_id] = waiting
    else:
        _expected.pop(conversation_id, None)


async def attach(generation, kept: list[dict]) -> None:
    """The reply was saved: requests go to its generation, those kept meanwhile first."""
    conversation_id = generation.plan.conversation_id
    forget(conversation_id, kept)
    _running[conversation_id] = generation
    for message in kept:
        await _hand_over(generation, message)


def detach(generation) -> None:
    conversation_id = generation.plan.conversation_id
    if _running.get(conversation_id) is generation:
        del _running[conversation_id]

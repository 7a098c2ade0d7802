"""Presence: who else has a conversation open, at a cost that does not grow with the crowd.

Each process keeps a room per conversation its sockets are open on: how many of its sockets
each person (or guest) has there. It tells the other processes its counts for the room (one
message per room per change, and a heartbeat), keeps theirs, and gives each of its own sockets
one frame when what that socket shows changes. Joining or leaving changes a counter; a crowd
arriving at once makes one round of frames per PRESENCE_DELAY (longer for big rooms), not one
per arrival for every socket already there, which cost the square of the crowd before.

People see the names of at most PRESENCE_NAMES others and how many more; a socket opened
through a public link sees only how many others are here, never who.
"""

import asyncio
import logging
import time
import uuid
from collections import Counter

from channels.layers import get_channel_layer

from .. import events, realtime

log = logging.getLogger(__name__)

GUEST = "guest"  # how a public link's anonymous visitor is counted
PRESENCE_DELAY = 0.2  # changes are shown this long after they settle, all at once
PRESENCE_NAMES = 20  # names shown at most; the rest are counted
HEARTBEAT_SECONDS = 30.0  # each process repeats its counts this often; silent processes are forgotten after 3x

PROCESS = uuid.uuid4().hex  # this process, in the counts it publishes
SUMMARY = "presence.summary"
QUERY = "presence.query"


class Room:
    """One conversation's presence, as this process knows it."""

    def __init__(self, conversation_id: uuid.UUID):
        self.conversation_id = conversation_id
        self.group = f"presence.{conversation_id.hex}"
        self.sockets: dict[str, object] = {}  # channel name -> consumer, this process's
        self.here = Counter()  # name -> this process's sockets of that person (GUEST: of guests)
        self.elsewhere: dict[str, tuple[Counter, float]] = {}  # process -> (its counts, when they expire)
        self.task: asyncio.Task | None = None
        self.publish = True  # this process's counts changed since it last told the others

    def counts(self) -> Counter:
        total = Counter(self.here)
        now = time.monotonic()
        for process, (theirs, expires) in list(self.elsewhere.items()):
            if expires < now:
                del self.elsewhere[process]
            else:
                total.update(theirs)
        return +total

    def busiest(self) -> int:
        """The most sockets one process has open here: what one reply's frame costs the busiest process."""
        return max([len(self.sockets), *(sum(theirs.values()) for theirs, _ in self.elsewhere.values())])

    def changed(self, *, publish: bool = False) -> None:
        realtime.set_watchers(self.conversation_id, self.busiest())
        self.publish = self.publish or publish
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._settle())

    async def _settle(self) -> None:
        await asyncio.sleep(PRESENCE_DELAY * max(1.0, len(self.sockets) / 100))
        if self.publish:
            self.publish = False
            await _tell_others(self)
        total = self.counts()
        guests = total.pop(GUEST, 0)
        for socket in list(self.sockets.values()):
            await socket.show_presence(total, guests)


class _Hub:
    """The process's one channel in every room group it has sockets in, and its listener."""

    def __init__(self) -> None:
        self.rooms: dict[uuid.UUID, Room] = {}
        self.channel = ""
        self.listener: asyncio.Task | None = None
        self.loop = None

    async def ensure(self) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # a new event loop (tests): start over
            self.rooms, self.channel, self.listener, self.loop = {}, "", None, loop
        if not self.channel:
            self.channel = await get_channel_layer().new_channel()
        if self.listener is None or self.listener.done():
            self.listener = loop.create_task(self._listen(), name="presence")

    async def _listen(self) -> None:
        layer = get_channel_layer()
        while self.rooms:
            try:
                message = await asyncio.wait_for(layer.receive(self.channel), HEARTBEAT_SECONDS)
            except TimeoutError:
                for room in list(self.rooms.values()):
                    room.changed(publish=True)  # the heartbeat
                continue
            except Exception:  # the layer is down: counts come back with the heartbeats
                await asyncio.sleep(1.0)
                continue
            room = self.rooms.get(uuid.UUID(message.get("room", "0" * 32)))
            if room is None or message.get("process") == PROCESS:
                continue
            if message["type"] == SUMMARY:
                counts = Counter({name: count for name, count in message["counts"].items() if count > 0})
                room.elsewhere[message["process"]] = (counts, time.monotonic() + 3 * HEARTBEAT_SECONDS)
                room.changed()
            elif message["type"] == QUERY:
                room.changed(publish=True)


_hub = _Hub()


async def join(socket) -> None:
    """Count this socket in its conversation's room and show everyone (itself included) the change."""
    await _hub.ensure()
    room = _hub.rooms.get(socket.conversation_id)
    if room is None:
        room = _hub.rooms[socket.conversation_id] = Room(socket.conversation_id)
        await get_channel_layer().group_add(room.group, _hub.channel)
        # A process new to the room asks the others for their counts.
        await realtime.send_to_group(room.group, {"type": QUERY, "process": PROCESS, "room": room.conversation_id.hex})
        if _hub.listener is None or _hub.listener.done():
            await _hub.ensure()
    room.sockets[socket.channel_name] = socket
    room.here[socket.presence_name()] += 1
    room.changed(publish=True)


async def leave(socket) -> None:
    room = _hub.rooms.get(socket.conversation_id)
    if room is None or room.sockets.pop(socket.channel_name, None) is None:
        return
    room.here[socket.presence_name()] -= 1
    room.here = +room.here
    if room.sockets:
        room.changed(publish=True)
        return
    del _hub.rooms[socket.conversation_id]  # the last socket here: tell the others this process has none
    realtime.set_watchers(socket.conversation_id, 0)
    if room.task is not None:
        room.task.cancel()
    await _tell_others(room)
    try:
        await get_channel_layer().group_discard(room.group, _hub.channel)
    except Exception:  # the layer is down: Redis forgets the subscription with the connection
        log.debug("Leaving %s failed", room.group, exc_info=True)


async def _tell_others(room: Room) -> None:
    summary = {"type": SUMMARY, "process": PROCESS, "room": room.conversation_id.hex, "counts": dict(room.here)}
    await realtime.send_to_group(room.group, summary)


def forget() -> None:
    """Drop every room (tests: each has its own event loop)."""
    global _hub
    _hub = _Hub()


class Presence:
    """Mixed into the conversation consumer: what this socket shows, and how it is counted."""

    sees_names = True  # a public link's socket sees only how many others are here

    def init_presence(self) -> None:
        # What the page shows before any frame: nobody else. A socket alone is sent nothing.
        self.presence_shown = events.presence_frame([], 0) if self.sees_names else events.presence_frame([], 0, others=0)

    async def show_presence(self, total: Counter, guests: int) -> None:
        """Send this socket the presence frame for these counts (everyone's, guests apart), if it changed."""
        own = self.presence_name()
        others = {name for name in total if name != own}
        own_guests = guests - (1 if own == GUEST else 0)
        if self.sees_names:
            names = sorted(others)
            frame = events.presence_frame(names[:PRESENCE_NAMES], own_guests, more=max(0, len(names) - PRESENCE_NAMES))
        else:
            frame = events.presence_frame([], 0, others=len(others) + own_guests)
        if frame != self.presence_shown:  # another tab of the same person changes nothing shown
            self.presence_shown = frame
            await self._send(frame)

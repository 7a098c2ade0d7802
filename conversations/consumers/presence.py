"""Presence: who else has a conversation open, peer to peer over the channel layer.

Each socket announces itself to the others on joining, each answers with its own name, and each
says goodbye on leaving. No shared store, so it works across processes.
"""

import asyncio

from .. import events, realtime

GUEST = "guest"  # how a public link's visitor appears to the others
PRESENCE_DELAY = 0.2


class Presence:
    """Mixed into the conversation consumer; `present` maps the other sockets' channels to who they are."""

    def init_presence(self) -> None:
        self.present: dict[str, str] = {}  # channel name -> who, of the other sockets here
        self.presence_shown: tuple[list[str], int] = ([], 0)
        self.presence_dirty = False
        self.presence_task: asyncio.Task | None = None

    async def presence_join(self, event: dict) -> None:
        if event["channel"] != self.channel_name:
            self.present[event["channel"]] = event["name"]
            here = {"type": realtime.PRESENCE_HERE, "channel": self.channel_name, "name": self.presence_name()}
            await realtime.send_to_channel(event["channel"], here)
            self._presence_changed()

    async def presence_here(self, event: dict) -> None:
        self.present[event["channel"]] = event["name"]
        self._presence_changed()

    async def presence_leave(self, event: dict) -> None:
        if self.present.pop(event["channel"], None) is not None:
            self._presence_changed()

    async def _presence(self, kind: str) -> None:
        await realtime.send_to_group(self.group, {"type": kind, "channel": self.channel_name, "name": self.presence_name()})

    def _presence_changed(self) -> None:
        # Shown a moment later, all changes at once: when a room fills up, each socket gets one
        # frame instead of one per arrival.
        self.presence_dirty = True
        if self.presence_task is None or self.presence_task.done():
            self.presence_task = asyncio.create_task(self._show_presence())

    async def _show_presence(self) -> None:
        while self.presence_dirty:
            await asyncio.sleep(PRESENCE_DELAY)
            self.presence_dirty = False
            own = self.presence_name() if self.user.is_authenticated else None
            guests = sum(1 for name in self.present.values() if name == GUEST)
            people = sorted({name for name in self.present.values() if name not in (own, GUEST)})
            if (people, guests) != self.presence_shown:  # another tab of the same person changes nothing shown
                self.presence_shown = (people, guests)
                await self._send(events.presence_frame(people, guests))

"""Relaying a conversation's replies to one socket: each reply's text exactly once and in order, whatever was lost.

Deltas carry offsets; a socket forwards only text that extends what it already sent (`_relay_delta`) and asks the
running reply for its text so far when it sees a gap. A reply that goes quiet for SILENCE_SECONDS is looked up in the
database, so a `done` lost in a Redis blip, or a reply whose process died, still reaches the page. Stop goes to the
reply through the layer and into the database; a stop nobody acknowledges closes an orphaned reply at once.
"""

import asyncio
import logging
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.utils.translation import gettext as _

from .. import events, realtime, selectors, services
from ..exceptions import Unavailable
from ..models import Message
from ..streaming import upkeep

log = logging.getLogger(__name__)

SNAPSHOT_RETRY_SECONDS = 1.0
# A streaming reply this socket heard nothing of (no delta, no "alive") for this long is looked up in the database.
SILENCE_SECONDS = 12.0
# A stop nobody acknowledged within this long found no process running the reply: it is closed at once.
STOP_ACK_SECONDS = 1.5


class ReplyRelay:
    """Mixed into the conversation consumer; `replies` maps each streaming reply to the characters sent of it."""

    def init_relay(self) -> None:
        self.replies: dict[int, int] = {}  # characters of each streaming reply this socket has sent
        self.snapshot_asked_at = 0.0
        self.heard_at = time.monotonic()  # when this socket last heard of a streaming reply
        self.watchdog: asyncio.Task | None = None
        self.stops_acknowledged: set[int] = set()
        self.background: set[asyncio.Task] = set()

    def relay_tasks(self) -> list[asyncio.Task]:
        return [task for task in (getattr(self, "watchdog", None), *getattr(self, "background", ())) if task is not None]

    async def chat_frame(self, event: dict) -> None:
        frame = event["frame"]
        kind = frame["type"]
        if kind == "delta":
            await self._relay_delta(frame)
            return
        if kind == "start":
            self.replies.setdefault(frame["message_id"], 0)
            self._heard()
        elif kind == "done":
            sent = self.replies.pop(frame["message_id"], None)
            content = frame.get("content") or ""
            if sent is not None and sent < len(content):
                # Deltas were missed and the snapshot asked for never came (the reply ended first): the rest
                # goes as one delta, so this socket's deltas still make the whole text, with no gap.
                await self._send(events.delta_frame(frame["message_id"], sent, content[sent:]))
        elif kind == "message" and frame["message"]["status"] != Message.Status.STREAMING:
            self.replies.pop(frame["message"]["id"], None)  # saved at last, or closed as orphaned
        await self._send(frame)

    async def chat_snapshot(self, event: dict) -> None:
        message_id, content = event["message_id"], event["content"]
        sent = await self._known(message_id)
        self.heard_at = time.monotonic()
        if len(content) > sent:
            await self._send(events.delta_frame(message_id, sent, content[sent:]))
            self.replies[message_id] = len(content)

    async def chat_alive(self, event: dict) -> None:
        """A streaming reply with nothing new to say is still running."""
        self.heard_at = time.monotonic()

    async def generation_stopping(self, event: dict) -> None:
        """The reply heard this socket's stop."""
        self.stops_acknowledged.add(event["message_id"])

    async def _relay_delta(self, frame: dict) -> None:
        """Forward only text that extends what this socket already sent: no gap, no repeat."""
        message_id, offset, content = frame["message_id"], frame["offset"], frame["content"]
        self.heard_at = time.monotonic()
        sent = self.replies.get(message_id)
        if sent is None and offset == 0:
            sent = await self._known(message_id)
        if sent is None or offset > sent:
            # Joined mid-reply, or a frame was dropped: the snapshot carries the text so far.
            await self._ask_for_snapshot()
            return
        end = offset + len(content)
        if end <= sent:
            return
        if offset < sent:
            frame = events.delta_frame(message_id, sent, content[sent - offset :])
        self.replies[message_id] = end
        await self._send(frame)

    async def _known(self, message_id: int) -> int:
        """Characters already sent of a reply; announces the reply first if this socket never saw it start."""
        if message_id not in self.replies:
            self.replies[message_id] = 0
            self._heard()
            await self._send(events.start_frame(message_id))
        return self.replies[message_id]

    # Stop, and what a socket does when the replies it shows go quiet.

    async def _stop(self, received_at) -> None:
        """Stop the conversation's reply: through the layer to whichever process runs it, and in the database,
        so a reply not yet listening (or whose stop message a Redis blip lost) still stops. A reply nobody
        acknowledges the stop of was orphaned by a process that died: it is closed at once."""
        try:
            reply = await database_sync_to_async(services.replies.reply_stop_request)(
                conversation_id=self.conversation_id, at=received_at
            )
        except Exception as exc:  # the database is down: the layer may still carry the stop
            log.warning("Recording a stop in %s failed: %s", self.conversation_id, exc)
            reply = None
        published = await realtime.request_stop(self.conversation_id, reply_to=self.channel_name, retry_for=2.0)
        if reply is not None and published:
            self._in_background(self._close_if_unanswered(reply["id"]))
        elif reply is None and not published:
            raise Unavailable()

    async def _close_if_unanswered(self, reply_id: int) -> None:
        await asyncio.sleep(STOP_ACK_SECONDS)
        if reply_id in self.stops_acknowledged:
            return
        closed = await database_sync_to_async(services.replies.replies_close_orphaned)(reply_id=reply_id)
        for payload in closed:
            await upkeep.announce_saved(payload.pop("conversation_id"), payload)

    def _heard(self) -> None:
        self.heard_at = time.monotonic()
        if self.watchdog is None or self.watchdog.done():
            self.watchdog = asyncio.create_task(self._watch_replies())

    async def _watch_replies(self) -> None:
        """While a reply streams, look it up in the database whenever it went quiet for SILENCE_SECONDS."""
        while self.replies:
            await asyncio.sleep(SILENCE_SECONDS / 3)
            if self.replies and time.monotonic() - self.heard_at >= SILENCE_SECONDS:
                self.heard_at = time.monotonic()
                await self._look_up_replies()

    async def _look_up_replies(self) -> None:
        missed = await database_sync_to_async(selectors.conversations.messages_since)(self.conversation_id, min(self.replies))
        for payload in missed or ():
            if payload["id"] in self.replies and payload["status"] != Message.Status.STREAMING:
                self.replies.pop(payload["id"], None)
                await self._send(events.message_frame(payload))  # the `done` this socket never heard
        if self.replies:
            await self._ask_for_snapshot()  # still streaming: the text a lost delta carried

    def _in_background(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _ask_for_snapshot(self) -> None:
        now = time.monotonic()
        if now - self.snapshot_asked_at >= SNAPSHOT_RETRY_SECONDS:
            self.snapshot_asked_at = now
            await realtime.request_snapshot(self.conversation_id, self.channel_name)

    async def _catch_up(self) -> None:
        """Send what a reconnecting page missed: every message from ?since=<id> on."""
        since = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("since", [""])[0]
        if not since.isdigit():
            return
        missed = await database_sync_to_async(selectors.conversations.messages_since)(self.conversation_id, int(since))
        if missed is None:
            await self._send(events.error_frame("reload", _("Too much was missed while offline; reload the page.")))
            return
        for payload in missed:
            await self._send(events.message_frame(payload))
            if payload["status"] == Message.Status.STREAMING:
                # The saved text is a prefix of the live text: continue from its end.
                self.replies[payload["id"]] = len(payload["content"])
                self._heard()

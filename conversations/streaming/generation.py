"""One generation: the model's chunks in, deltas out to every open tab, the final state saved honestly.

Fan-out goes to the conversation's channel-layer group. Text is coalesced: the
first piece goes out at once, then at most one `delta` frame per
flush_interval() carries whatever arrived meanwhile, and the upstream is read
no more often (see llm/transport.py). Every delta carries the offset it starts
at, so a socket that joins mid-reply can ask for the text so far (a snapshot)
and splice the live deltas on with no gap and no repeat. All of a
generation's outgoing messages leave from one task, in order.

The layer may fail (Redis restarting): a delta that cannot be published stays
pending and goes out with the next one, offsets unchanged, so the stream
resumes where it stopped; a silent reply says it is alive now and then, so a
socket that hears nothing for long looks at the database (consumers.py).

The final state is written in a `finally`, so a stop, an error or a crash
keeps the text. The save is retried for CHAT_SAVE_RETRY_SECONDS (a database
failover), and the `done` frame says what was saved: if nothing could be, it
says so, and the process keeps the reply until the database takes it (upkeep.py).
"""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import events, realtime, selectors, services
from ..llm import Chunk, ClientOptions, UpstreamError, stream_reply
from ..models import Message
from ..rendering import render_markdown
from ..services.replies import ReplyPlan
from . import control, titles, together, upkeep

BUG = gettext_noop("The reply failed because of a bug here.")  # stored in English: see selectors.conversations.error_text
log = logging.getLogger(__name__)

# Where a generation's chunks come from: the model, through llm.stream_reply. Tests put a script here.
Upstream = Callable[[ReplyPlan], AsyncIterator[Chunk]]

# Text per delta frame at most: a reply that arrives all at once still goes out in frames a socket takes.
MAX_DELTA_CHARS = 64 * 1024
# A reply with nothing new to send says it is alive this often, so a socket that hears nothing knows to look.
ALIVE_INTERVAL = 5.0
# How long the `done` and error frames are tried again while the layer is down.
DONE_RETRY_SECONDS = 10.0


def flush_interval(conversation_id: uuid.UUID | None = None) -> float:
    """Seconds between two frames of a reply (and two reads of its stream).

    CHAT_FLUSH_INTERVAL when few replies stream to few sockets; stretched when many
    replies stream or a crowd watches one, so that this process's replies together
    send at most CHAT_MAX_FRAMES_PER_SECOND frames to sockets, each reply an equal
    share: a busy server batches more text per frame instead of falling behind (a
    thousand sockets on one live link once slowed every other page to 1.4 s).
    """
    sockets = max(1, realtime.watchers(conversation_id)) if conversation_id else 1
    return max(settings.CHAT_FLUSH_INTERVAL, sockets * max(1, upkeep.live_count()) / settings.CHAT_MAX_FRAMES_PER_SECOND)


def upstream_options() -> ClientOptions:
    """The llm client's options from the settings as they are now (tests change them per test)."""
    return ClientOptions(
        retries=settings.CHAT_UPSTREAM_RETRIES,
        retry_max_wait=settings.CHAT_UPSTREAM_RETRY_MAX_WAIT,
        max_connections=settings.CHAT_UPSTREAM_MAX_CONNECTIONS,
        demo_delay=settings.CHAT_DEMO_DELAY,
        translate=_,
    )


def from_model(plan: ReplyPlan) -> AsyncIterator[Chunk]:
    """The reply as the model streams it, read no more often than the frames go out."""
    pace = partial(flush_interval, plan.conversation_id)
    return stream_reply(plan.spec, plan.history, user=plan.user, read_interval=pace, options=upstream_options())


class Generation:
    """One reply streaming: read from `upstream`, fanned out as deltas, checkpointed, saved when it ends.

    Stops and snapshot requests reach it through streaming.control (on_control).
    """

    def __init__(self, plan: ReplyPlan, *, upstream: Upstream = from_model):
        self.plan = plan
        self.reply_id = plan.reply_id
        self.upstream = upstream
        self.group = realtime.conversation_group(plan.conversation_id)
        self.sent: list[str] = []  # text published as deltas, one piece per delta
        self.sent_length = 0
        self.pending: list[str] = []  # text received but not yet published
        self.length = 0  # characters received in all
        self.saved_length = 0
        self.saved_at = time.monotonic()
        self.finish_reason: str | None = None
        self.usage = None
        self.model_name = ""
        self.stop_requested = plan.stop_requested  # a stop that arrived before this reply was saved
        self.snapshot_requests: list[str] = []
        self.task: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None
        self._wakeup = asyncio.Event()
        self._closing = False
        self._nap: asyncio.Future | None = None  # the send loop's wait between two frames

    def text(self) -> str:
        return "".join(self.sent) + "".join(self.pending)

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"reply-{self.reply_id}")
        upkeep.register(self)

    def stop(self) -> None:
        """End the reply as `stopped`, keeping its text (a person pressed Stop, here or anywhere)."""
        self.stop_requested = True
        if self._reader is not None:
            self._reader.cancel()

    def interrupt(self) -> None:
        """End the reply as interrupted (`error`), keeping its text: the process is stopping."""
        if self._reader is not None:
            self._reader.cancel()

    async def send_frame(self, frame: dict, *, retry_for: float = 0.0) -> bool:
        """Publish a frame to the conversation's sockets; False if the layer could not take it."""
        return await realtime.send_to_group(self.group, {"type": realtime.FRAME, "frame": frame}, retry_for=retry_for)

    async def run(self) -> None:
        outbox = asyncio.create_task(self._send_loop())
        self._reader = asyncio.create_task(self._read())
        if self.stop_requested:
            self._reader.cancel()  # stopped before it started: nothing goes upstream
        status, error = Message.Status.COMPLETE, None
        try:
            await self._reader
        except asyncio.CancelledError:
            if self.stop_requested:
                status = Message.Status.STOPPED
            else:  # the process is shutting down
                status, error = Message.Status.ERROR, UpstreamError("interrupted", services.replies.INTERRUPTED)
        except UpstreamError as exc:
            status, error = Message.Status.ERROR, exc
        except Exception:
            log.exception("Reply %s failed", self.reply_id)
            status, error = Message.Status.ERROR, UpstreamError("internal", BUG)
        finally:
            self._closing = True
            self._wakeup.set()
            if self._nap is not None:
                _wake(self._nap)  # the last text goes out now, not at the next frame's time
            await asyncio.gather(outbox, return_exceptions=True)
            try:
                await self._finish(status, error)
            finally:
                upkeep.unregister(self)
                control.detach(self)

    async def _read(self) -> None:
        async for chunk in self.upstream(self.plan):
            if chunk.text:
                self.pending.append(chunk.text)
                self.length += len(chunk.text)
                self._wakeup.set()
            if chunk.finish_reason:
                self.finish_reason = chunk.finish_reason
            if chunk.usage is not None:
                self.usage = chunk.usage
            if chunk.model:
                self.model_name = chunk.model

    def on_control(self, message: dict) -> str | None:
        """A request for this reply (streaming.control): stop it, or send its text so far. Returns the channel
        to tell that a stop was heard, if any."""
        kind, reply_to = message.get("type"), message.get("reply_to")
        if kind == realtime.GENERATION_STOP:
            self.stop()
            return reply_to if isinstance(reply_to, str) and reply_to else None
        if kind == realtime.GENERATION_SNAPSHOT and isinstance(reply_to, str):
            self.snapshot_requests.append(reply_to)
            self._wakeup.set()
        return None

    async def _send_loop(self) -> None:
        """The generation's only sender: deltas and snapshots leave in order from here."""
        failures = 0
        while True:
            try:
                async with asyncio.timeout(ALIVE_INTERVAL):
                    await self._wakeup.wait()
            except TimeoutError:
                await realtime.send_to_group(self.group, {"type": realtime.ALIVE, "message_id": self.reply_id})
                continue
            self._wakeup.clear()
            if self.pending:
                if await self._publish_pending():
                    failures = 0
                else:
                    failures += 1
            if self.snapshot_requests:
                await self._send_snapshots()
            if self._closing and (not self.pending or failures >= 3):
                return  # what could not be published is in the `done` frame, and in the database
            if self.pending:
                self._wakeup.set()
            await self._rest(flush_interval(self.plan.conversation_id) * (2 ** min(failures, 5)))

    async def _rest(self, seconds: float) -> None:
        """asyncio.sleep, cut short when the reply ends: its last text and `done` waited out the rest of a frame's
        interval (0.2 s with 200 replies streaming)."""
        loop = asyncio.get_running_loop()
        self._nap = nap = loop.create_future()
        timer = loop.call_later(seconds, _wake, nap)
        try:
            await nap
        finally:
            timer.cancel()
            self._nap = None

    async def _publish_pending(self) -> bool:
        """Publish the pending text as deltas from where the last one ended. What fails stays pending."""
        content = "".join(self.pending)
        self.pending.clear()
        for start in range(0, len(content), MAX_DELTA_CHARS):
            piece, offset = content[start : start + MAX_DELTA_CHARS], self.sent_length
            # Counted as sent while it is published, so text() stays whole for a checkpoint meanwhile.
            self.sent.append(piece)
            self.sent_length += len(piece)
            if not await self.send_frame(events.delta_frame(self.reply_id, offset, piece)):
                self.sent.pop()
                self.sent_length = offset
                self.pending.insert(0, content[start:])
                return False
        return True

    async def _send_snapshots(self) -> None:
        snapshot = {"type": realtime.SNAPSHOT, "message_id": self.reply_id, "content": "".join(self.sent)}
        requests, self.snapshot_requests = self.snapshot_requests, []
        for channel in requests:
            # A socket that went away, or a full channel: it will ask again.
            await realtime.send_to_channel(channel, snapshot)

    async def _finish(self, status: str, error: UpstreamError | None) -> None:
        content = self.text()
        if status == Message.Status.ERROR and error is not None:
            log.info("Reply %s ended with %s: %s", self.reply_id, error.code, error.message)
        fields = {
            "reply_id": self.reply_id,
            "content": content,
            "status": status,
            "finish_reason": self.finish_reason,
            "error": error.message if error else "",
            "usage": self.usage,
            "model_name": self.model_name,
        }
        saved = await save_final(fields, order=self.plan.conversation_id)
        if saved is None:
            upkeep.keep_unsaved(self.plan.conversation_id, fields)
            status, note = Message.Status.ERROR, str(upkeep.NOT_SAVED)
            saved = {"html": render_markdown(content), "error": note}
        note, note_class = selectors.conversations.message_note(saved["error"], self.finish_reason)
        done = events.done_frame(
            self.reply_id,
            status=status,
            finish_reason=self.finish_reason,
            usage=self.usage.as_dict() if self.usage else None,
            html=saved["html"],
            content=content,
            error=saved["error"],
            note=note,
            note_class=note_class,
            meta=selectors.conversations.message_meta(
                Message.Role.ASSISTANT,
                self.model_name,
                self.usage.completion_tokens if self.usage else None,
                self.plan.received_at or timezone.now(),
            ),
        )
        if self.plan.first_exchange and status == Message.Status.COMPLETE and self.plan.user_id is not None and content:
            # Started before `done` goes out, so whoever heard `done` finds the title under way (titles_settle).
            titles.title_later(
                conversation_id=self.plan.conversation_id,
                user_id=self.plan.user_id,
                question=self.plan.history[-1]["content"] if self.plan.history else "",
                answer=content,
            )
        await self.send_frame(done, retry_for=DONE_RETRY_SECONDS)
        if error is not None:
            await self.send_frame(events.error_frame(error.code, error.message, self.reply_id), retry_for=DONE_RETRY_SECONDS)


def _wake(nap: asyncio.Future) -> None:
    if not nap.done():
        nap.set_result(None)


async def save_final(fields: dict, *, order=None) -> dict | None:
    """reply_finish, tried again with backoff for CHAT_SAVE_RETRY_SECONDS (long enough for a database failover).
    What was saved, or None if the database never took it. `order`: the conversation's id, so that groups of
    final saves and of sends touch conversations in one order (together.py)."""
    deadline = time.monotonic() + settings.CHAT_SAVE_RETRY_SECONDS
    delay, attempt = 0.25, 1
    while True:
        try:
            return await together.finishes.run(partial(services.replies.reply_finish, **fields), order=order)
        except Exception as exc:
            log.warning("Saving reply %s failed (attempt %d): %s", fields["reply_id"], attempt, exc)
        if time.monotonic() + delay > deadline:
            return None
        await asyncio.sleep(delay)
        delay, attempt = min(delay * 2, 5.0), attempt + 1

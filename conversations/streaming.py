"""One generation: history to the model, the reply out to every open tab, and saved. No websocket code.

A generation belongs to its conversation, not to the socket that asked for
it: it runs as its own task, outlives a closed tab, and ends only when the
model finishes, an error occurs, or someone sends `stop` (from any tab, in
any process: control messages travel over the channel layer).

Fan-out goes to the conversation's channel-layer group. Text is coalesced:
the first piece goes out at once, then at most one `delta` frame per
flush_interval() carries whatever arrived meanwhile, and the upstream is read
no more often (see llm/transport.py). Every delta carries the offset it starts
at, so a socket that joins mid-reply can ask for the text so far (a snapshot)
and splice the live deltas on with no gap and no repeat. All of a
generation's outgoing messages leave from one task, in order.

Saving: the placeholder exists before the stream starts (services.replies.reply_begin);
one checkpointer per process saves every dirty reply's text in a single
transaction at most once per CHAT_CHECKPOINT_INTERVAL; the final state is
written in a `finally`, so a stop, an error or a crash mid-way keeps the text.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from . import events, realtime, selectors, services
from .llm import Chunk, ClientOptions, UpstreamError, stream_reply
from .models import Message
from .rendering import render_markdown
from .services.replies import ReplyPlan

log = logging.getLogger(__name__)

# Where a generation's chunks come from: the model, through llm.stream_reply. Tests put a script here.
Upstream = Callable[[ReplyPlan], AsyncIterator[Chunk]]


def from_model(plan: ReplyPlan) -> AsyncIterator[Chunk]:
    """The reply as the model streams it, read no more often than the frames go out."""
    return stream_reply(plan.spec, plan.history, user=plan.user, read_interval=flush_interval, options=upstream_options())


async def reply_send(*, user, conversation_id: uuid.UUID, content: str, model_id: int | None = None) -> None:
    """Save the person's message and start the reply. Raises ChatError subclasses."""
    plan = await database_sync_to_async(services.replies.reply_begin)(
        user=user, conversation_id=conversation_id, content=content, model_config_id=model_id
    )
    await _launch(plan)


async def reply_regenerate(*, user, conversation_id: uuid.UUID, model_id: int | None = None) -> None:
    plan = await database_sync_to_async(services.replies.reply_regenerate_begin)(
        user=user, conversation_id=conversation_id, model_config_id=model_id
    )
    await _launch(plan)


async def _launch(plan: ReplyPlan) -> None:
    generation = Generation(plan)
    try:
        await generation.open()
        if plan.user_message is not None:
            await generation.send_frame(events.message_frame(plan.user_message))
        await generation.send_frame(events.start_frame(plan.reply_id, plan.replaced_id, plan.context_start))
    except BaseException:
        await generation.close_control()
        await database_sync_to_async(services.replies.reply_finish)(
            reply_id=plan.reply_id,
            content="",
            status=Message.Status.ERROR,
            error="The reply could not be started.",
        )
        raise
    generation.start()


class Generation:
    """One reply streaming: read from `upstream`, fanned out as deltas, checkpointed, saved when it ends."""

    def __init__(self, plan: ReplyPlan, *, upstream: Upstream = from_model):
        self.plan = plan
        self.upstream = upstream
        self.reply_id = plan.reply_id
        self.layer = get_channel_layer()
        self.group = realtime.conversation_group(plan.conversation_id)
        self.sent: list[str] = []  # text already sent as deltas, one piece per delta
        self.sent_length = 0
        self.pending: list[str] = []  # text received but not yet sent
        self.length = 0  # characters received in all
        self.saved_length = 0
        self.saved_at = time.monotonic()
        self.finish_reason: str | None = None
        self.usage = None
        self.model_name = ""
        self.stop_requested = False
        self.snapshot_requests: list[str] = []
        self.control_channel = ""
        self.task: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None
        self._wakeup = asyncio.Event()
        self._closing = False

    def text(self) -> str:
        return "".join(self.sent) + "".join(self.pending)

    async def open(self) -> None:
        """Listen for stop and snapshot requests. Done before the reply is announced, so none is missed."""
        self.control_channel = await self.layer.new_channel()
        await self.layer.group_add(realtime.generation_group(self.plan.conversation_id), self.control_channel)

    async def close_control(self) -> None:
        if self.control_channel:
            await self.layer.group_discard(realtime.generation_group(self.plan.conversation_id), self.control_channel)

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"reply-{self.reply_id}")
        _live[self.reply_id] = self
        _ensure_checkpointer()

    async def send_frame(self, frame: dict) -> None:
        await self.layer.group_send(self.group, {"type": realtime.FRAME, "frame": frame})

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        outbox = asyncio.create_task(self._send_loop())
        self._reader = asyncio.create_task(self._read())
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
            status, error = Message.Status.ERROR, UpstreamError("internal", "The reply failed because of a bug here.")
        finally:
            listener.cancel()
            self._closing = True
            self._wakeup.set()
            await asyncio.gather(outbox, return_exceptions=True)
            try:
                await self._finish(status, error)
            finally:
                _live.pop(self.reply_id, None)
                await self.close_control()

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

    async def _listen(self) -> None:
        while True:
            message = await self.layer.receive(self.control_channel)
            kind = message.get("type")
            if kind == realtime.GENERATION_STOP:
                self.stop_requested = True
                if self._reader is not None:
                    self._reader.cancel()
            elif kind == realtime.GENERATION_SNAPSHOT and isinstance(message.get("reply_to"), str):
                self.snapshot_requests.append(message["reply_to"])
                self._wakeup.set()

    async def _send_loop(self) -> None:
        """The generation's only sender: deltas and snapshots leave in order from here."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self.pending:
                content = "".join(self.pending)
                self.pending.clear()
                offset = self.sent_length
                self.sent.append(content)
                self.sent_length += len(content)
                await self.send_frame(events.delta_frame(self.reply_id, offset, content))
            if self.snapshot_requests:
                await self._send_snapshots()
            if self._closing:
                if not self.pending:
                    return
                self._wakeup.set()
                continue
            await asyncio.sleep(flush_interval())

    async def _send_snapshots(self) -> None:
        snapshot = {"type": realtime.SNAPSHOT, "message_id": self.reply_id, "content": "".join(self.sent)}
        requests, self.snapshot_requests = self.snapshot_requests, []
        for channel in requests:
            try:
                await self.layer.send(channel, snapshot)
            except Exception:  # a socket that went away, or a full channel: it will ask again
                log.debug("Snapshot to %s not delivered", channel, exc_info=True)

    async def _finish(self, status: str, error: UpstreamError | None) -> None:
        content = self.text()
        if status == Message.Status.ERROR and error is not None:
            log.info("Reply %s ended with %s: %s", self.reply_id, error.code, error.message)
        saved = await _save_final(
            reply_id=self.reply_id,
            content=content,
            status=status,
            finish_reason=self.finish_reason,
            error=error.message if error else "",
            usage=self.usage,
            model_name=self.model_name,
        )
        note, note_class = selectors.conversations.message_note(saved["error"], self.finish_reason)
        await self.send_frame(
            events.done_frame(
                self.reply_id,
                status=status,
                finish_reason=self.finish_reason,
                usage=self.usage.as_dict() if self.usage else None,
                html=saved["html"],
                content=content,
                error=saved["error"],
                note=note,
                note_class=note_class,
            )
        )
        if error is not None:
            await self.send_frame(events.error_frame(error.code, error.message, self.reply_id))


async def _save_final(**fields) -> dict:
    """reply_finish, retried briefly: a database hiccup at the end must not lose the whole reply."""
    for attempt in range(3):
        try:
            return await database_sync_to_async(services.replies.reply_finish)(**fields)
        except Exception:
            log.exception("Saving reply %s failed (attempt %d)", fields["reply_id"], attempt + 1)
            await asyncio.sleep(0.5 * 2**attempt)
    fields["error"] = fields["error"] or "The reply could not be saved."
    return {**fields, "html": render_markdown(fields["content"])}


# --- the process's live generations and their checkpointer ------------------

_live: dict[int, Generation] = {}
_checkpointer: asyncio.Task | None = None


def flush_interval() -> float:
    """Seconds between two frames of a reply (and two reads of its stream).

    CHAT_FLUSH_INTERVAL when few replies stream; stretched when many do, so that
    all of this process's replies together send at most CHAT_MAX_FRAMES_PER_SECOND
    frames: a busy server batches more text per frame instead of falling behind.
    """
    return max(settings.CHAT_FLUSH_INTERVAL, len(_live) / settings.CHAT_MAX_FRAMES_PER_SECOND)


def upstream_options() -> ClientOptions:
    """The llm client's options from the settings as they are now (tests change them per test)."""
    return ClientOptions(
        retries=settings.CHAT_UPSTREAM_RETRIES,
        retry_max_wait=settings.CHAT_UPSTREAM_RETRY_MAX_WAIT,
        max_connections=settings.CHAT_UPSTREAM_MAX_CONNECTIONS,
        demo_delay=settings.CHAT_DEMO_DELAY,
    )


def _ensure_checkpointer() -> None:
    global _checkpointer
    loop = asyncio.get_running_loop()
    if _checkpointer is None or _checkpointer.done() or _checkpointer.get_loop() is not loop:
        _checkpointer = loop.create_task(_checkpoint_loop(), name="reply-checkpointer")


async def _checkpoint_loop() -> None:
    """Save the text of every reply that grew, all in one transaction, once per interval."""
    heartbeat = settings.CHAT_STALE_AFTER / 4
    while _live:
        await asyncio.sleep(settings.CHAT_CHECKPOINT_INTERVAL)
        now = time.monotonic()
        batch = {}
        for generation in list(_live.values()):
            # A reply waiting on a slow model is saved now and then too, so it is not taken for orphaned.
            if generation.length != generation.saved_length or now - generation.saved_at >= heartbeat:
                batch[generation.reply_id] = generation.text()
                generation.saved_length, generation.saved_at = generation.length, now
        if batch:
            try:
                await database_sync_to_async(services.replies.replies_checkpoint)(batch)
            except Exception:
                log.exception("Checkpoint of %d replies failed", len(batch))


async def wait_for_replies(timeout: float = 30.0) -> None:
    """Wait until every reply this process runs has finished (tests, graceful shutdown)."""
    tasks = [generation.task for generation in list(_live.values()) if generation.task is not None]
    if tasks:
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout)

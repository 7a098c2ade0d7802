"""The process's running replies, and the background work that keeps every reply honest.

One task per process, running while it has replies, open sockets or unsaved replies, wakes every
CHAT_CHECKPOINT_INTERVAL:

- checkpoints: the text of every running reply that grew, all in one transaction (never per token);
- leases: every CHAT_STALE_AFTER / 4 each running reply's row is renewed even if it did not grow,
  and stops recorded in the database since are applied, so a stop whose message the layer lost
  (a Redis blip) still stops;
- orphans: at the same pace, replies whose lease ran out are closed as interrupted with the text
  last saved (their process died without draining), and their sockets are told: no orphan
  outlives CHAT_STALE_AFTER plus two rounds, and `busy` never outlives the reply it reports;
- unsaved replies: a final save that failed for CHAT_SAVE_RETRY_SECONDS is tried again until the
  database takes it; the sockets then get what was saved.
"""

import asyncio
import logging
import time
import uuid
import weakref

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils.translation import gettext_lazy

from .. import events, realtime, selectors, services

log = logging.getLogger(__name__)

NOT_SAVED = gettext_lazy(
    "Not saved yet: the database cannot be reached. This server keeps the reply and saves it as soon as it can."
)

_live: dict = {}  # reply id -> Generation
_unsaved: dict[int, tuple[uuid.UUID, dict]] = {}  # reply id -> (conversation id, reply_finish's fields)
_sockets: weakref.WeakSet = weakref.WeakSet()  # this process's open sockets: orphans matter while any watch
_task: asyncio.Task | None = None


def live_count() -> int:
    return len(_live)


def live() -> list:
    """This process's running generations."""
    return list(_live.values())


def register(generation) -> None:
    _live[generation.reply_id] = generation
    ensure_running()


def unregister(generation) -> None:
    _live.pop(generation.reply_id, None)


def socket_opened(socket) -> None:
    _sockets.add(socket)
    ensure_running()


def socket_closed(socket) -> None:
    _sockets.discard(socket)


def sockets() -> list:
    """This process's open sockets (consumers), for shutdown.drain."""
    return list(_sockets)


def keep_unsaved(conversation_id: uuid.UUID, fields: dict) -> None:
    log.error("Reply %s could not be saved; keeping it (%d characters) to save later", fields["reply_id"], len(fields["content"]))
    _unsaved[fields["reply_id"]] = (conversation_id, fields)
    ensure_running()


def unsaved_count() -> int:
    return len(_unsaved)


def ensure_running() -> None:
    global _task
    loop = asyncio.get_running_loop()
    if _task is None or _task.done() or _task.get_loop() is not loop:
        _task = loop.create_task(_run(), name="reply-upkeep")


async def _run() -> None:
    lease_interval = settings.CHAT_STALE_AFTER / 4
    last_round = time.monotonic()
    while _live or _unsaved or _sockets:
        await asyncio.sleep(settings.CHAT_CHECKPOINT_INTERVAL)
        now = time.monotonic()
        round_due = now - last_round >= lease_interval
        # Unsaved replies are saved before orphans are looked for: this process's own must not be taken for one.
        for job in (checkpoint, *((apply_recorded_stops, save_unsaved, close_orphans) if round_due else ())):
            try:
                await job(renew_all=round_due) if job is checkpoint else await job()
            except Exception:  # the database or the layer is down: the next round tries again
                log.exception("Reply upkeep (%s) failed", job.__name__)
        if round_due:
            last_round = now


async def checkpoint(*, renew_all: bool = False) -> None:
    """Save the text of every reply that grew, in one transaction; with `renew_all`, renew the others' leases."""
    batch, unchanged = {}, []
    now = time.monotonic()
    for generation in live():
        if generation.length != generation.saved_length:
            batch[generation.reply_id] = generation.text()
            generation.saved_length, generation.saved_at = generation.length, now
        elif renew_all:
            unchanged.append(generation.reply_id)
    if batch:
        await database_sync_to_async(services.replies.replies_checkpoint)(batch)
    if renew_all:
        # A reply whose final save failed still belongs to this process: its lease is renewed with the rest.
        unchanged += list(_unsaved)
        if unchanged:
            await database_sync_to_async(services.replies.replies_renew)(unchanged)


async def apply_recorded_stops() -> None:
    """Stop the running replies for which a stop arrived after their send (recorded by reply_stop_request)."""
    running = [generation for generation in live() if generation.plan.received_at and not generation.stop_requested]
    if not running:
        return
    stops = await database_sync_to_async(services.replies.stops_requested)({g.plan.conversation_id for g in running})
    for generation in running:
        stopped_at = stops.get(generation.plan.conversation_id)
        if stopped_at is not None and stopped_at >= generation.plan.received_at:
            log.info("Reply %s stopped by a stop recorded in the database", generation.reply_id)
            generation.stop()


async def close_orphans() -> None:
    """Close replies whose process died, and tell their sockets what was saved."""
    for payload in await database_sync_to_async(services.replies.replies_close_orphaned)():
        await announce_saved(payload.pop("conversation_id"), payload)


async def save_unsaved() -> None:
    for reply_id, (conversation_id, fields) in list(_unsaved.items()):
        await database_sync_to_async(services.replies.reply_finish)(**fields)
        del _unsaved[reply_id]
        log.warning("Reply %s saved after all", reply_id)
        payload = await database_sync_to_async(selectors.conversations.message_payload_of)(reply_id)
        if payload is not None:
            await announce_saved(conversation_id, payload)


async def announce_saved(conversation_id: uuid.UUID, payload: dict) -> None:
    """A reply's saved state to every socket on its conversation (the page shows it in place)."""
    frame = {"type": realtime.FRAME, "frame": events.message_frame(payload)}
    await realtime.send_to_group(realtime.conversation_group(conversation_id), frame, retry_for=5.0)


def forget() -> None:
    """Drop this process's background work and unsaved replies (tests: each has its own event loop)."""
    global _task
    if _task is not None and not _task.done():
        _task.cancel()
    _task = None
    _unsaved.clear()


async def wait_for_replies(timeout: float = 30.0) -> None:
    """Wait until every reply this process runs has finished (tests, graceful shutdown)."""
    tasks = [generation.task for generation in live() if generation.task is not None]
    if tasks:
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout)

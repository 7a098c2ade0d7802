"""Group commit: the sends that arrive while the database is busy with others are begun together.

Every database call from async code runs on one thread (asgiref's thread-sensitive executor). A send
that finds it busy waits here instead of in that thread's queue; when the thread is free, everything
that waited goes in one call and one transaction (services.replies.replies_begin_together). A send
that arrives to an idle thread goes at once, alone: grouping adds no wait, it only shares the cost
of a transaction (and of the hop to the thread) among the sends that had to wait anyway.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable

from channels.db import database_sync_to_async

from .. import services
from ..services.replies import ReplyPlan

log = logging.getLogger(__name__)

# Sends begun in one transaction at most: a group holds its conversations' row locks until it commits.
MAX_GROUP = 50

_waiting: list[tuple[uuid.UUID, Callable[[], ReplyPlan], asyncio.Future]] = []
_task: asyncio.Task | None = None


async def begin(conversation_id: uuid.UUID, begin: Callable[[], ReplyPlan]) -> ReplyPlan:
    """Run `begin` (reply_begin or reply_regenerate_begin, bound) with the sends waiting beside it; its plan,
    or what refused it, raised."""
    global _task
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    _waiting.append((conversation_id, begin, future))
    if _task is None or _task.done() or _task.get_loop() is not loop:
        _task = loop.create_task(_run(), name="reply-begins")
    return await future


async def _run() -> None:
    while _waiting:
        group = _waiting[:MAX_GROUP]
        del _waiting[:MAX_GROUP]
        # Conversations locked in one order, so two processes' groups cannot deadlock.
        group.sort(key=lambda waiting: waiting[0])
        try:
            results = await database_sync_to_async(services.replies.replies_begin_together)(
                [begin for _, begin, _ in group]
            )
        except BaseException as exc:  # cancelled (the loop is closing), or the thread could not run it
            for _, _, future in group:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            raise
        for (_, _, future), result in zip(group, results, strict=True):
            if future.done():  # the send was cancelled meanwhile: a saved reply nobody runs is closed as orphaned
                log.warning("A send was cancelled while it was being begun")
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

"""Group commit: the sends, and the final saves, that arrive while the database is busy go in together.

Every database call from async code runs on one thread (asgiref's thread-sensitive executor), and on
PostgreSQL each transaction costs round trips of its own (BEGIN, COMMIT and its flush to disk, and
Channels' connection check before each call). A send or a final save that finds the thread busy waits
here instead of in that thread's queue; when the thread is free, everything that waited goes in one
call and one transaction (services.replies.replies_together). One that arrives to an idle thread goes
at once, alone: grouping adds no wait, it only shares the cost among the calls that had to wait anyway.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async

from .. import services

log = logging.getLogger(__name__)

# Calls in one transaction at most: a group holds its rows' locks until it commits.
MAX_GROUP = 50


class Together:
    """One queue of calls to run together (begins, finishes)."""

    def __init__(self, name: str):
        self.name = name
        self.waiting: list[tuple[Any, Callable[[], Any], asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def run(self, call: Callable[[], Any], *, order: Any = 0) -> Any:
        """`call`'s result, or what it raised, once it has run with the calls waiting beside it. Calls of one
        group run in `order` (conversations locked in one order, so two processes' groups cannot deadlock)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append((order, call, future))
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run(), name=self.name)
        return await future

    async def _run(self) -> None:
        while self.waiting:
            group = sorted(self.waiting[:MAX_GROUP], key=lambda waiting: waiting[0])
            del self.waiting[:MAX_GROUP]
            try:
                results = await database_sync_to_async(services.replies.replies_together)([call for _, call, _ in group])
            except BaseException as exc:  # cancelled (the loop is closing), or the thread could not run it
                for _, _, future in group:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                raise
            for (_, _, future), result in zip(group, results, strict=True):
                if future.done():  # its caller was cancelled: a saved reply nobody runs is closed as orphaned
                    log.warning("A call was cancelled while it ran in a group (%s)", self.name)
                elif isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


begins = Together("reply-begins")
finishes = Together("reply-finishes")

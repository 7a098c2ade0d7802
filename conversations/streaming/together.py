"""Group commit: the sends, and the final saves, that arrive while the database is busy go in together.

Every database call from async code runs on one thread (asgiref's thread-sensitive executor), and on
PostgreSQL each transaction costs round trips of its own (BEGIN, COMMIT and its flush to disk, and
Channels' connection check before each call). A send or a final save that finds the thread busy waits
here instead of in that thread's queue; when the thread is free, everything that waited goes in one
call and one transaction (services.replies.replies_together). One that arrives to an idle thread goes
at once, alone: grouping adds no wait, it only shares the cost among the calls that had to wait anyway.

When more wait than one group takes, the newest go first, unless the oldest has waited AGED_SECONDS:
a burst of other people's sends (a thousand at once) then does not hold back the one person who sends
during it, and no send waits much longer than AGED_SECONDS beyond its turn in a burst. The burst as a
whole finishes no later: the same work is done, in another order.

On PostgreSQL a group also travels as one: its sends' conversations are locked and read in one
statement and every call's writes go in one pipeline, so a group costs a few round trips, not a few
per call (replies_together). That matters more than it seems: while the event loop relays replies,
the database thread waits for the GIL after each answer from the server. Several groups at once, each
on a thread and connection of its own, were measured too, and cost more CPU than they saved.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from channels.db import database_sync_to_async

from .. import services

log = logging.getLogger(__name__)

# Calls in one transaction at most: a group holds its rows' locks until it commits, and the newest send
# waits for the group already running. Measured with bench/scale_load.py (README, Speed): 50 against 25,
# 200 sends at once on PostgreSQL reached their first delta by 0.64-0.76 s (p99) against 0.97-1.00 s, a
# thousand by 5.8-7.8 s against 7.9-9.5 s. One person sending during the thousand then waited for a whole group
# of it (up to 1.26 s): hence RECENT_SECONDS below.
MAX_GROUP = 50
# A call that waited this long goes before newer ones again.
AGED_SECONDS = 5.0
# Calls that arrived this recently, while older ones wait, go first in a group of their own: someone who
# sends during a burst waits for the group already running and a group of the few who sent as they did,
# not for a whole group of the burst's (one person during a thousand: 1.26 s with groups of 50).
RECENT_SECONDS = 0.5


class _Waiting(NamedTuple):
    at: float  # the loop's time when it arrived
    order: Any
    call: Callable[[], Any]
    future: asyncio.Future
    sender: int | None


class Together:
    """One queue of calls to run together (begins, finishes)."""

    def __init__(self, name: str, *, locks_conversations: bool = False):
        self.name = name
        self.locks_conversations = locks_conversations  # each call's `order` is the conversation it locks
        self.waiting: list[_Waiting] = []  # oldest first
        self.task: asyncio.Task | None = None

    async def run(self, call: Callable[[], Any], *, order: Any = 0, sender: int | None = None) -> Any:
        """`call`'s result, or what it raised, once it has run with the calls waiting beside it. Calls of one
        group run in `order` (conversations locked in one order, so two processes' groups cannot deadlock).
        `sender`: who sent it, for a send (its count against the send rate is taken with the group's)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append(_Waiting(loop.time(), order, call, future, sender))
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run(), name=self.name)
        return await future

    def _next_group(self, now: float) -> tuple[list, list]:
        """The calls to run next, and those left waiting (oldest first)."""
        waiting = self.waiting
        if now - waiting[0].at >= AGED_SECONDS:
            return waiting[:MAX_GROUP], waiting[MAX_GROUP:]
        recent = len(waiting)  # where the recent ones start: none yet
        while recent > 0 and now - waiting[recent - 1].at < RECENT_SECONDS:
            recent -= 1
        # The newest first; only the recent ones if any (while a burst is young, all of it is recent, so it
        # still goes in whole groups).
        newest = max(0, len(waiting) - MAX_GROUP)
        start = newest if recent == len(waiting) else max(recent, newest)
        return waiting[start:], waiting[:start]

    async def _run(self) -> None:
        while self.waiting:
            group, self.waiting = self._next_group(asyncio.get_running_loop().time())
            group.sort(key=lambda waiting: str(waiting.order))  # stable: one conversation's sends keep their order
            try:
                results = await database_sync_to_async(services.replies.replies_together)(
                    [waiting.call for waiting in group],
                    conversation_ids=[waiting.order for waiting in group] if self.locks_conversations else None,
                    sender_ids=[waiting.sender for waiting in group if waiting.sender is not None],
                )
            except BaseException as exc:  # cancelled (the loop is closing), or the thread could not run it
                for future in (waiting.future for waiting in group):
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                raise
            for future, result in zip((waiting.future for waiting in group), results, strict=True):
                if future.done():  # its caller was cancelled: a saved reply nobody runs is closed as orphaned
                    log.warning("A call was cancelled while it ran in a group (%s)", self.name)
                elif isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


begins = Together("reply-begins", locks_conversations=True)
finishes = Together("reply-finishes")

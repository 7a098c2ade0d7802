"""Graceful shutdown (a deploy): drain this process without losing a reply or leaving one stuck.

chatsite/server.py runs drain() on SIGTERM, after the process stopped listening (so the proxy sends
new connections to another process), and stops the server when it returns:

1. No new replies start here: a send gets `draining`, and the page sends it again through another process.
2. Sockets that watch no reply running here close at once with 4503: their pages reconnect elsewhere
   (and catch up with ?since). Sockets watching a reply running here stay until it ends.
3. Running replies have CHAT_DRAIN_SECONDS to finish.
4. What is still running then is interrupted: its text so far is saved (status error, "interrupted")
   and every watcher, on every process, gets `done`. Replies whose final save failed get one more try.
5. The remaining sockets close with 4503.
"""

import asyncio
import logging
import time

from . import lifecycle
from .streaming import titles, upkeep

log = logging.getLogger(__name__)

# After interrupting what was left, how long its final saves may take before the process goes anyway
# (the sweep of another process then closes those replies with their last checkpoint).
FINAL_SAVE_SECONDS = 5.0
# How long the sockets get to send what they have queued and close.
SOCKETS_CLOSE_SECONDS = 2.0


async def drain(grace: float) -> None:
    """Stop taking replies, let the running ones finish for `grace` seconds, then stop the rest, saved."""
    lifecycle.begin_draining()
    running, sockets = upkeep.live_count(), len(upkeep.sockets())
    log.warning("Draining: %d replies running, %d sockets open; waiting up to %.0f s", running, sockets, grace)
    deadline = time.monotonic() + grace
    await _close_idle_sockets()
    while upkeep.live() and (left := deadline - time.monotonic()) > 0:
        tasks = [generation.task for generation in upkeep.live() if generation.task is not None]
        await asyncio.wait(tasks, timeout=min(left, 1.0), return_when=asyncio.FIRST_COMPLETED)
        await _close_idle_sockets()
    leftover = upkeep.live()
    if leftover:
        log.warning("Draining: interrupting %d replies still running; their text so far is saved", len(leftover))
        for generation in leftover:
            generation.interrupt()
        tasks = [generation.task for generation in leftover if generation.task is not None]
        await asyncio.wait(tasks, timeout=FINAL_SAVE_SECONDS)
    if upkeep.unsaved_count():
        try:
            await upkeep.save_unsaved()
        except Exception:
            log.exception("Draining: %d replies could not be saved and are lost", upkeep.unsaved_count())
    # A title being written finishes within what is left of the grace, or is dropped (the first line stays).
    await titles.titles_settle(timeout=max(deadline - time.monotonic(), 0.1))
    for socket in upkeep.sockets():
        await socket.close_for_restart()
    closing_until = time.monotonic() + SOCKETS_CLOSE_SECONDS
    while upkeep.sockets() and time.monotonic() < closing_until:
        await asyncio.sleep(0.05)  # each socket sends what it has queued (a `done`), then closes
    log.warning("Drained")


async def _close_idle_sockets() -> None:
    """Close the sockets that watch no reply running in this process: their pages reconnect to another."""
    running = {generation.plan.conversation_id for generation in upkeep.live()}
    for socket in upkeep.sockets():
        if socket.conversation_id not in running:
            await socket.close_for_restart()

"""A title written by a model after a conversation's first reply: asked in the background, saved, announced.

The request is a task of its own, started once the first reply is saved, as its `done` frame goes out, so
nothing waits for it; at most CHAT_TITLE_CONCURRENCY run at once in a process, the others wait their
turn. A title can wait, a send cannot: while people's sends wait for the database (a burst), titles
wait too, for up to YIELD_SECONDS. It is recorded in usage as a title (services.titles), read with the
same client as replies, with no retries and a short timeout: a failure, a timeout or an empty answer
keeps the first-line title. The `title` frame goes to the conversation's sockets after the title is
committed.
"""

import asyncio
import logging
import uuid
from dataclasses import replace

from channels.db import database_sync_to_async
from django.conf import settings

from .. import events, realtime, services
from ..llm import UpstreamError, stream_reply
from . import together

log = logging.getLogger(__name__)

# Running title requests, kept so that none is collected mid-flight and shutdown can wait for them.
_running: set[asyncio.Task] = set()
_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def _slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots.clear()  # a loop is only replaced when the last one closed (tests)
        _slots[loop] = asyncio.Semaphore(settings.CHAT_TITLE_CONCURRENCY)
    return _slots[loop]


def title_later(*, conversation_id: uuid.UUID, user_id: int, question: str, answer: str) -> asyncio.Task:
    """Ask for a title in the background (see title_write)."""
    task = asyncio.create_task(
        _title_in_turn(conversation_id=conversation_id, user_id=user_id, question=question, answer=answer),
        name=f"title-{conversation_id}",
    )
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


async def _title_in_turn(**arguments) -> str | None:
    async with _slot():
        await _sends_first()
        return await title_write(**arguments)


# How long a title waits for the sends waiting for the database, at most; how often it looks.
YIELD_SECONDS = 30.0
YIELD_POLL_SECONDS = 0.1


async def _sends_first() -> None:
    """Wait while sends wait for the database (together.begins), or YIELD_SECONDS at most: in a burst of a
    thousand sends, a title's queries and request would otherwise delay the sends still waiting."""
    deadline = asyncio.get_running_loop().time() + YIELD_SECONDS
    while together.begins.waiting and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(YIELD_POLL_SECONDS)


async def title_write(*, conversation_id: uuid.UUID, user_id: int, question: str, answer: str) -> str | None:
    """Ask a model for the conversation's title, save it unless a person named the conversation meanwhile, and
    tell its sockets. Returns the title saved, or None (nothing asked, the request failed, or it lost to a rename)."""
    begin = database_sync_to_async(services.titles.title_request_begin)
    request = await begin(conversation_id=conversation_id, user_id=user_id, question=question, answer=answer)
    if request is None:
        return None
    from .generation import upstream_options  # generation imports this module

    pieces, usage, model_name = [], None, ""
    try:
        async with asyncio.timeout(settings.CHAT_TITLE_TIMEOUT):
            chunks = stream_reply(request.spec, request.history, options=replace(upstream_options(), retries=0))
            async for chunk in chunks:
                pieces.append(chunk.text or "")
                usage = chunk.usage or usage
                model_name = chunk.model or model_name
    except (UpstreamError, TimeoutError) as exc:
        log.info("No title for %s: %s", conversation_id, getattr(exc, "message", "timed out"))
        pieces = []
    except Exception:
        log.exception("The title request for %s failed", conversation_id)
        pieces = []
    finish = database_sync_to_async(services.titles.title_request_finish)
    title = await finish(
        conversation_id=conversation_id, record_id=request.record_id, text="".join(pieces), usage=usage,
        model_name=model_name,
    )
    if title:
        frame = events.title_frame(title)
        await realtime.send_to_group(realtime.conversation_group(conversation_id), {"type": realtime.FRAME, "frame": frame})
    return title


async def titles_settle(timeout: float | None = None) -> None:
    """Wait for the running title requests (shutdown, and tests)."""
    if _running:
        await asyncio.wait(list(_running), timeout=timeout)

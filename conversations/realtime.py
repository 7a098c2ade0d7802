"""The realtime vocabulary: channel-layer groups, the message types sent to them, and announcements.

Who listens where:

    conversation_group(id)  every open socket of the conversation (consumers.py). Message types:
                            FRAME (forward a protocol frame), SNAPSHOT (a streaming reply's text so
                            far), ALIVE (a silent reply is still running), DELETED, ACCESS_CHANGED
                            (check again who may stay).
    presence.<id>           each process's presence counts for the conversation (consumers/presence.py),
                            which also keeps watchers() (the biggest crowd of one process) for streaming.
    GENERATIONS_GROUP       one channel per process, for its running replies (streaming/control.py):
                            GENERATION_STOP, GENERATION_SNAPSHOT, each naming its conversation.
    session_group(key)      every socket of one login session: SESSION_ENDED (it logged out).
    a socket's own channel  GENERATION_STOPPING (the reply heard this socket's stop), SNAPSHOT.
    PUBLIC_LINKS_GROUP      sockets opened through a public link, for the site-wide switch.

A message's type names the handler that receives it ("access.changed" -> access_changed).
Announcements of a database change go out only after the transaction commits
(the *_after_commit functions), so a socket that checks again sees the change.

The layer may fail (Redis restarting): send_to_group and send_to_channel report it instead of
raising, so a failed publish never closes a socket or kills a reply; what was missed is caught
up from offsets and the database (see streaming.py and consumers.py).
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

# To a conversation's sockets.
FRAME = "chat.frame"
SNAPSHOT = "chat.snapshot"
ALIVE = "chat.alive"
DELETED = "chat.deleted"
ACCESS_CHANGED = "access.changed"
SERVER_RESTARTING = "server.restarting"  # to one socket's own channel: this process is shutting down
SESSION_ENDED = "session.ended"  # to a session's sockets: it logged out

# To a conversation's running generation, and its answer to the socket that asked.
GENERATION_STOP = "generation.stop"
GENERATION_SNAPSHOT = "generation.snapshot"
GENERATION_STOPPING = "generation.stopping"

# Backoff between tries of a publish that failed: 50 ms doubling to at most a second.
RETRY_FIRST, RETRY_MOST = 0.05, 1.0

PUBLIC_LINKS_GROUP = "public-links"
GENERATIONS_GROUP = "generations"

# How many sockets watch each conversation: the most that any one process has open on it, as
# presence last counted (each process sends a reply's frames to its own sockets). Streaming
# spaces a reply's frames by it, so that a crowd costs a process no more frames than it can send.
_watchers: dict[uuid.UUID, int] = {}


def set_watchers(conversation_id: uuid.UUID, count: int) -> None:
    if count > 0:
        _watchers[conversation_id] = count
    else:
        _watchers.pop(conversation_id, None)


def watchers(conversation_id: uuid.UUID) -> int:
    return _watchers.get(conversation_id, 0)


def conversation_group(conversation_id: uuid.UUID) -> str:
    """Every open socket of the conversation listens here."""
    return f"conversation.{conversation_id.hex}"


def session_group(session_key: str) -> str:
    """Every open socket of one login session listens here (logging out closes them)."""
    return f"session.{session_key}"


async def send_to_group(group: str, message: dict, *, retry_for: float = 0.0) -> bool:
    """group_send, tried again with backoff for up to `retry_for` seconds while the layer fails. True once sent."""
    return await _with_retries(lambda: get_channel_layer().group_send(group, message), retry_for, group)


async def send_to_channel(channel: str, message: dict, *, retry_for: float = 0.0) -> bool:
    """send to one channel (a socket's, or a generation's), as send_to_group."""
    return await _with_retries(lambda: get_channel_layer().send(channel, message), retry_for, channel)


async def _with_retries(publish, retry_for: float, where: str) -> bool:
    deadline = time.monotonic() + retry_for
    delay = RETRY_FIRST
    while True:
        try:
            await publish()
            return True
        except Exception as exc:  # Redis down or restarting, a full in-memory channel: the caller decides
            if time.monotonic() + delay > deadline:
                log.warning("Publishing to %s failed: %s", where, exc)
                return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MOST)


async def request_stop(conversation_id: uuid.UUID, *, reply_to: str = "", retry_for: float = 0.0) -> bool:
    """Stop the conversation's running reply, wherever it runs; it answers GENERATION_STOPPING to `reply_to`.
    Nothing happens if none is running. False if the layer could not be reached."""
    message = {"type": GENERATION_STOP, "conversation_id": str(conversation_id), "reply_to": reply_to}
    return await send_to_group(GENERATIONS_GROUP, message, retry_for=retry_for)


async def request_snapshot(conversation_id: uuid.UUID, reply_to: str) -> bool:
    """Ask the running reply, if any, to send its text so far to the channel `reply_to`."""
    message = {"type": GENERATION_SNAPSHOT, "conversation_id": str(conversation_id), "reply_to": reply_to}
    return await send_to_group(GENERATIONS_GROUP, message)


async def announce_deleted(conversation_id: uuid.UUID) -> None:
    """The conversation is gone: its reply stops and its sockets close."""
    await request_stop(conversation_id, retry_for=5.0)
    await send_to_group(conversation_group(conversation_id), {"type": DELETED}, retry_for=5.0)


async def announce_access_changed(conversation_ids: Iterable[uuid.UUID]) -> None:
    """Every open socket of these conversations checks again whether its person may stay, and in which role."""
    for conversation_id in conversation_ids:
        # The id lets the sockets of one process share one look-up of who may stay.
        await send_to_group(conversation_group(conversation_id), access_changed_message(), retry_for=5.0)


async def announce_public_links_changed() -> None:
    await send_to_group(PUBLIC_LINKS_GROUP, access_changed_message(), retry_for=5.0)


def access_changed_message() -> dict:
    return {"type": ACCESS_CHANGED, "change": uuid.uuid4().hex}


# After commit. on_commit(robust=True) logs a failing callback by its __qualname__, which neither
# partial() nor async_to_sync() objects have: the callbacks are plain named functions.


def access_changed_after_commit(conversation_ids: Iterable[uuid.UUID]) -> None:
    ids = set(conversation_ids)
    if not ids:
        return

    def announce_access_changed_now() -> None:
        async_to_sync(announce_access_changed)(ids)

    transaction.on_commit(announce_access_changed_now, robust=True)


def deleted_after_commit(conversation_id: uuid.UUID) -> None:
    def announce_deleted_now() -> None:
        async_to_sync(announce_deleted)(conversation_id)

    transaction.on_commit(announce_deleted_now, robust=True)


def session_ended_after_commit(session_key: str) -> None:
    def announce_session_ended_now() -> None:
        async_to_sync(send_to_group)(session_group(session_key), {"type": SESSION_ENDED}, retry_for=5.0)

    transaction.on_commit(announce_session_ended_now, robust=True)


def public_links_changed_after_commit() -> None:
    def announce_public_links_changed_now() -> None:
        async_to_sync(announce_public_links_changed)()

    transaction.on_commit(announce_public_links_changed_now, robust=True)

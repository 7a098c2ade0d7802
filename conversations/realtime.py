"""The realtime vocabulary: channel-layer groups, the message types sent to them, and announcements.

Who listens where:

    conversation_group(id)  every open socket of the conversation (consumers.py). Message types:
                            FRAME (forward a protocol frame), SNAPSHOT (a streaming reply's text so
                            far), DELETED, ACCESS_CHANGED (check again who may stay), PRESENCE_*.
    generation_group(id)    the conversation's running reply, in whichever process runs it
                            (streaming.py): GENERATION_STOP, GENERATION_SNAPSHOT.
    PUBLIC_LINKS_GROUP      sockets opened through a public link, for the site-wide switch.

A message's type names the handler that receives it ("access.changed" -> access_changed).
Announcements of a database change go out only after the transaction commits
(the *_after_commit functions), so a socket that checks again sees the change.
"""

import uuid
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

# To a conversation's sockets.
FRAME = "chat.frame"
SNAPSHOT = "chat.snapshot"
DELETED = "chat.deleted"
ACCESS_CHANGED = "access.changed"
PRESENCE_JOIN = "presence.join"
PRESENCE_HERE = "presence.here"
PRESENCE_LEAVE = "presence.leave"

# To a conversation's running generation.
GENERATION_STOP = "generation.stop"
GENERATION_SNAPSHOT = "generation.snapshot"

PUBLIC_LINKS_GROUP = "public-links"


def conversation_group(conversation_id: uuid.UUID) -> str:
    """Every open socket of the conversation listens here."""
    return f"conversation.{conversation_id.hex}"


def generation_group(conversation_id: uuid.UUID) -> str:
    """The conversation's running generation, if any, listens here (in whichever process runs it)."""
    return f"generation.{conversation_id.hex}"


async def request_stop(conversation_id: uuid.UUID) -> None:
    """Stop the conversation's running reply, wherever it runs. Nothing happens if none is running."""
    await get_channel_layer().group_send(generation_group(conversation_id), {"type": GENERATION_STOP})


async def request_snapshot(conversation_id: uuid.UUID, reply_to: str) -> None:
    """Ask the running reply, if any, to send its text so far to the channel `reply_to`."""
    await get_channel_layer().group_send(
        generation_group(conversation_id), {"type": GENERATION_SNAPSHOT, "reply_to": reply_to}
    )


async def announce_deleted(conversation_id: uuid.UUID) -> None:
    """The conversation is gone: its reply stops and its sockets close."""
    await request_stop(conversation_id)
    await get_channel_layer().group_send(conversation_group(conversation_id), {"type": DELETED})


async def announce_access_changed(conversation_ids: Iterable[uuid.UUID]) -> None:
    """Every open socket of these conversations checks again whether its person may stay, and in which role."""
    layer = get_channel_layer()
    for conversation_id in conversation_ids:
        # The id lets the sockets of one process share one look-up of who may stay.
        await layer.group_send(conversation_group(conversation_id), access_changed_message())


async def announce_public_links_changed() -> None:
    await get_channel_layer().group_send(PUBLIC_LINKS_GROUP, access_changed_message())


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


def public_links_changed_after_commit() -> None:
    def announce_public_links_changed_now() -> None:
        async_to_sync(announce_public_links_changed)()

    transaction.on_commit(announce_public_links_changed_now, robust=True)

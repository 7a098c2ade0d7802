"""Replies, streamed: a send or regenerate starts one, it streams to every open tab, and it is saved. No websocket code.

A reply belongs to its conversation, not to the socket that asked for it: it
runs as its own task, outlives a closed tab, and ends only when the model
finishes, an error occurs, someone presses Stop (from any tab, in any process:
control messages travel over the channel layer, and stops are also recorded in
the database), or the process shuts down (shutdown.py drains it first).

    generation.py  one reply: chunks in, deltas out, the final state saved honestly
    upkeep.py      the process's running replies: checkpoints, leases, orphans, unsaved replies

    control.py     stops and snapshot requests, through one channel per process
    together.py    group commit: the sends and final saves that wait for the database go in together

Starting a reply: the process listens for stops (control.py) and keeps those
for the conversation, then the person's message and the reply's placeholder
are saved (services.replies.reply_begin, grouped by together.py), then the
frames go out and the reply runs. Listening first means no stop can arrive
unheard; a stop that arrived before the reply was saved is in the database and
reply_begin reads it. If the layer cannot be reached, nothing is saved.
"""

import uuid
from datetime import datetime
from functools import partial

from .. import events, lifecycle, services
from ..exceptions import ServerDraining, Unavailable
from ..tree import CURRENT
from . import control, together
from .generation import Generation, Upstream, flush_interval, from_model, upstream_options
from .upkeep import wait_for_replies

__all__ = [
    "Generation",
    "Upstream",
    "flush_interval",
    "from_model",
    "reply_regenerate",
    "reply_send",
    "upstream_options",
    "wait_for_replies",
]

# How long the first frames of a reply (the person's message, `start`) are tried while the layer is down.
START_RETRY_SECONDS = 2.0


async def reply_send(
    *,
    user,
    conversation_id: uuid.UUID,
    content: str,
    model_id: int | None = None,
    received_at: datetime | None = None,
    parent_id=CURRENT,
) -> None:
    """Save the person's message (after `parent_id`, see reply_begin) and start the reply. Raises ChatError subclasses."""
    begin = partial(
        services.replies.reply_begin,
        user=user, conversation_id=conversation_id, content=content, model_config_id=model_id, received_at=received_at,
        parent_id=parent_id,
    )
    await _start(conversation_id, begin, sender=user.pk)


async def reply_regenerate(
    *,
    user,
    conversation_id: uuid.UUID,
    model_id: int | None = None,
    received_at: datetime | None = None,
    message_id: int | None = None,
) -> None:
    """A new version of a reply (`message_id`, else the current branch's last), the old one kept."""
    begin = partial(
        services.replies.reply_regenerate_begin,
        user=user, conversation_id=conversation_id, model_config_id=model_id, received_at=received_at,
        message_id=message_id,
    )
    await _start(conversation_id, begin, sender=user.pk)


async def _start(
    conversation_id: uuid.UUID, begin, *, upstream: Upstream = from_model, sender: int | None = None
) -> Generation:
    if lifecycle.is_draining():
        raise ServerDraining()
    try:
        await control.listen()
    except Exception:
        raise Unavailable() from None
    kept = control.expect(conversation_id)
    try:
        plan = await together.begins.run(begin, order=conversation_id, sender=sender)
    except BaseException:
        control.forget(conversation_id, kept)
        raise
    generation = Generation(plan, upstream=upstream)
    await control.attach(generation, kept)
    try:
        if plan.user_message is not None:
            await generation.send_frame(events.message_frame(plan.user_message), retry_for=START_RETRY_SECONDS)
        await generation.send_frame(
            events.start_frame(
                plan.reply_id, parent_id=plan.parent_id, versions=plan.versions, context_start=plan.context_start
            ),
            retry_for=START_RETRY_SECONDS,
        )
    finally:
        # Started even if those frames were lost or the socket went away: the reply is saved and belongs to
        # its conversation; sockets catch up from the database.
        generation.start()
    return generation

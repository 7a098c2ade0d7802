"""The websocket protocol adapter: sockets on a conversation, and on a live public link.

    conversation.py  ConversationConsumer: who may connect, frames in, access changes, close codes
    replies.py       relaying replies to one socket exactly once and in order; stop; quiet replies
    presence.py      who else has the conversation open
    public.py        PublicLinkConsumer: the same, read-only, through a live public link
"""

from .conversation import (
    CLOSE_DELETED,
    CLOSE_NOT_FOUND,
    CLOSE_REVOKED,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHENTICATED,
    CLOSE_UNAVAILABLE,
    ConversationConsumer,
)
from .public import PublicLinkConsumer

__all__ = [
    "CLOSE_DELETED",
    "CLOSE_NOT_FOUND",
    "CLOSE_REVOKED",
    "CLOSE_TOO_MANY",
    "CLOSE_UNAUTHENTICATED",
    "CLOSE_UNAVAILABLE",
    "ConversationConsumer",
    "PublicLinkConsumer",
]

"""What every import format is turned into before anything is saved: a conversation as plain data (its messages
parents first, each with the index of the message it follows), the limits a file is read under, the two ways a
file can be refused (the whole file, or one conversation), and the walk that orders a tree.

No database here: chatgpt.py and teamchat.py build these, services.imports.conversation_import saves them.
"""

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.utils.translation import gettext as _


class ImportRefused(Exception):
    """The whole file is refused (not JSON, a ZIP bomb, the wrong shape ...): `message` says why, translated."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConversationRefused(Exception):
    """One conversation cannot be imported (a loop in its messages, a message over the size limit ...);
    the others go on. `reason` is translated."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """The caps a file is read under (settings CHAT_IMPORT_*; see the README)."""

    max_uncompressed_bytes: int
    max_ratio: float
    max_message_chars: int
    max_conversation_chars: int

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            max_uncompressed_bytes=settings.CHAT_IMPORT_MAX_UNCOMPRESSED_BYTES,
            max_ratio=settings.CHAT_IMPORT_MAX_RATIO,
            max_message_chars=settings.CHAT_IMPORT_MAX_MESSAGE_CHARS,
            max_conversation_chars=settings.CHAT_IMPORT_MAX_CONVERSATION_CHARS,
        )


@dataclass
class ImportedMessage:
    role: str
    content: str
    created: datetime | None = None
    status: str = "complete"  # never "streaming": a partial unique constraint allows one streaming reply
    model_name: str = ""
    finish_reason: str = ""
    error: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class ImportedConversation:
    """A conversation ready to save. `parents[i]` is the index in `messages` of the message messages[i] follows
    (None: a first message); parents come before children, siblings oldest first. `current` is the index of
    the current branch's leaf (None: the newest branch). `key` becomes Conversation.import_key ("" : none)."""

    key: str
    title: str
    created: datetime | None = None
    updated: datetime | None = None
    messages: list[ImportedMessage] = field(default_factory=list)
    parents: list[int | None] = field(default_factory=list)
    current: int | None = None


class TreeLoop(Exception):
    """Some node's chain of parents loops back on itself: `node` is one that no first message leads to."""

    def __init__(self, node):
        super().__init__(node)
        self.node = node


def ordered_tree(
    parent_of: dict[Hashable, Hashable | None],
    *,
    keep: set,
    sibling_order: dict[Hashable, Iterable[Hashable]] | None = None,
) -> tuple[list, list[int | None]]:
    """The kept nodes of a tree given by parent pointers, parents before children, and for each the index of its
    nearest kept ancestor (None for none): a node left out has its children joined to that ancestor.

    Siblings follow `sibling_order[parent]` where it lists them, then the order of `parent_of`. A parent that is
    not in `parent_of` makes its node a first message. Iterative (a chain tens of thousands deep is fine).
    TreeLoop if some nodes are never reached from a first message: their parents loop.
    """
    children: dict = defaultdict(list)
    roots = []
    for node, parent in parent_of.items():
        if parent is None or parent not in parent_of:
            roots.append(node)
        else:
            children[parent].append(node)
    if sibling_order:
        for parent, kids in children.items():
            listed = sibling_order.get(parent)
            if listed and len(kids) > 1:
                rank = {}
                for position, kid in enumerate(listed):
                    if isinstance(kid, Hashable):
                        rank.setdefault(kid, position)
                kids.sort(key=lambda kid: rank.get(kid, len(rank)))  # stable: unlisted ones keep their order

    order: list = []
    parents: list[int | None] = []
    reached = set()
    # Depth first, each subtree whole before the next sibling's: ids then grow from parent to child, and
    # the newest message below any message is the last of its newest version's branch (conversations/tree.py).
    stack = [(root, None) for root in reversed(roots)]
    while stack:
        node, kept_above = stack.pop()
        reached.add(node)
        if node in keep:
            order.append(node)
            parents.append(kept_above)
            kept_above = len(order) - 1
        stack.extend((kid, kept_above) for kid in reversed(children.get(node, ())))
    if len(reached) < len(parent_of):
        raise TreeLoop(next(node for node in parent_of if node not in reached))
    return order, parents


def nearest_kept(node, parent_of: dict, index_of: dict) -> int | None:
    """The index of `node`, or of its nearest ancestor that was kept; None when there is none (or the chain loops)."""
    seen = set()
    while node is not None and node not in seen:
        if node in index_of:
            return index_of[node]
        seen.add(node)
        node = parent_of.get(node)
    return None


def epoch_time(value) -> datetime | None:
    """A Unix time (ChatGPT's create_time) as an aware datetime; None for anything that is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_time(value) -> datetime | None:
    """An ISO 8601 time (our exports') as an aware datetime (UTC when it names no zone); None otherwise."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def plain_title(value) -> str:
    """A title as one line of plain text that fits Conversation.title ("" for none)."""
    return " ".join(value.replace("\x00", " ").split())[:200] if isinstance(value, str) else ""


def message_text(text: str, limits: Limits) -> str:
    """`text` as a message keeps it (NUL, which PostgreSQL cannot store, replaced by U+FFFD), or
    ConversationRefused when it is longer than one message may be."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if len(text) > limits.max_message_chars:
        raise ConversationRefused(
            _("A message has %(count)s characters, more than the limit of %(limit)s for one message.")
            % {"count": f"{len(text):,}", "limit": f"{limits.max_message_chars:,}"}
        )
    return text


def fill_times(conversation: ImportedConversation) -> None:
    """Messages with no time of their own take their parent's (or the conversation's); the conversation's
    times default to its messages'."""
    messages = conversation.messages
    for message, parent in zip(messages, conversation.parents, strict=True):
        if message.created is None:
            message.created = messages[parent].created if parent is not None else conversation.created
    times = [message.created for message in messages if message.created is not None]
    if conversation.created is None:
        conversation.created = min(times, default=None)
        for message in messages:
            message.created = message.created or conversation.created
    if conversation.updated is None:
        conversation.updated = max(times, default=conversation.created)

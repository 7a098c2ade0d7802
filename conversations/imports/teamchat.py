"""One conversation of our own JSON export (exports.py, "format": "teamchat.conversation") as an ImportedConversation.

Version 2 has every message of every branch with its `id` and `parent_id` and the conversation's
`current_leaf`: the import gives back the same tree, titles and current branch (with new ids). Version 1
(no ids) was the conversation's messages in order: they become one branch.
"""

from django.utils.translation import gettext as _

from ..models import Message
from .parsed import (
    ConversationRefused,
    ImportedConversation,
    ImportedMessage,
    Limits,
    TreeLoop,
    fill_times,
    iso_time,
    message_text,
    nearest_kept,
    ordered_tree,
    plain_title,
)

ROLES = set(Message.Role.values)
STATUSES = set(Message.Status.values)


def conversation_from_export(item: dict, limits: Limits) -> ImportedConversation:
    """ConversationRefused when it cannot be imported whole (a message of an unknown role, a loop ...)."""
    rows = item.get("messages")
    if not isinstance(rows, list):
        raise ConversationRefused(_("It has no list of messages."))
    messages = [_message(row, limits) for row in rows]
    with_ids = bool(rows) and all(isinstance(row.get("id"), int | str) for row in rows)
    if with_ids:
        parent_of = {}
        for row in rows:
            if row["id"] in parent_of:
                raise ConversationRefused(_("Two of its messages have the same id (%(id)s).") % {"id": str(row["id"])[:40]})
            parent = row.get("parent_id")
            parent_of[row["id"]] = parent if isinstance(parent, int | str) else None
    else:
        parent_of = {index: index - 1 if index else None for index in range(len(rows))}
    try:
        order, parents = ordered_tree(parent_of, keep=parent_of.keys())
    except TreeLoop as exc:
        raise ConversationRefused(
            _("Its messages loop: following the parents of message %(id)s never reaches the first message.")
            % {"id": str(exc.node)[:40]}
        ) from None
    position = {key: index for index, key in enumerate(parent_of)}  # the key's row
    index_of = {key: index for index, key in enumerate(order)}
    current = item.get("current_leaf") if with_ids else None
    exported_id = item.get("id")
    conversation = ImportedConversation(
        key=f"export:{exported_id}"[:200] if isinstance(exported_id, str) and exported_id else "",
        title=plain_title(item.get("title")),
        created=iso_time(item.get("created")),
        updated=iso_time(item.get("updated")),
        messages=[messages[position[key]] for key in order],
        parents=parents,
        current=nearest_kept(current, parent_of, index_of) if isinstance(current, int | str) else None,
    )
    fill_times(conversation)
    return conversation


def _message(row, limits: Limits) -> ImportedMessage:
    if not isinstance(row, dict):
        raise ConversationRefused(_("One of its messages is not an object."))
    role, content = row.get("role"), row.get("content")
    if role not in ROLES:
        raise ConversationRefused(_("One of its messages has an unknown role (%(role)s).") % {"role": str(role)[:40]})
    if not isinstance(content, str):
        raise ConversationRefused(_("One of its messages has no text."))
    status = row.get("status") if row.get("status") in STATUSES else Message.Status.COMPLETE
    return ImportedMessage(
        role=role,
        content=message_text(content, limits),
        created=iso_time(row.get("created")),
        # A reply exported mid-stream is imported as stopped: it will never finish here.
        status=Message.Status.STOPPED if status == Message.Status.STREAMING else status,
        model_name=_text(row.get("model"), 200),
        finish_reason=_text(row.get("finish_reason"), 32),
        error=_text(row.get("error"), 10_000),
        prompt_tokens=_count(row.get("prompt_tokens")),
        completion_tokens=_count(row.get("completion_tokens")),
    )


def _text(value, length: int) -> str:
    return value.replace("\x00", "\ufffd")[:length] if isinstance(value, str) else ""


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else None

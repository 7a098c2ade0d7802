"""Reads about conversations and their messages: what pages and sockets show, as plain rows."""

import functools
import json
import re
import uuid

from django.core.exceptions import ValidationError
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _lazy

from .. import permissions
from ..exceptions import ConversationNotFound
from ..llm import INCOMPLETE
from ..llm.phrases import PHRASES
from ..models import Conversation, Message, Share
from ..rendering import render_plain
from ..tree import Tree

# A reconnecting socket is sent at most this many missed messages; past that the page reloads.
CATCH_UP_LIMIT = 200

def conversation_for(user, conversation_id: uuid.UUID | str) -> Conversation:
    """The conversation if this person may see it, with `.role` set; ConversationNotFound otherwise (never a hint it exists)."""
    try:
        conversation = (
            Conversation.objects.with_access(user).select_related("model_config", "owner").get(pk=conversation_id)
        )
    except (Conversation.DoesNotExist, ValidationError, ValueError):
        raise ConversationNotFound() from None
    conversation.role = permissions.role_of(user, conversation)
    return conversation


def conversation_exists(conversation_id: uuid.UUID) -> bool:
    return Conversation.objects.filter(pk=conversation_id).exists()


def has_several_writers(conversation: Conversation) -> bool:
    """Whether anyone besides the owner may write, so messages need their author's name."""
    return conversation.shares.filter(role=Share.Role.COLLABORATOR).exists()

# Why a reply ended, shown under it, when that is worth saying (the API's finish_reason, or the client's INCOMPLETE).
FINISH_NOTES = {
    "length": _lazy("Cut off: the reply reached its length limit."),
    "content_filter": _lazy("Cut off by the provider's content filter."),
    INCOMPLETE: _lazy("This reply may be cut off: the model server ended the stream without saying it had finished."),
}


def error_text(error: str) -> str:
    """A stored error in the reader's language. The app's own errors are stored as their English msgid; an
    upstream error is the llm's marked phrases (llm.phrases) around the server's own words, which stay as sent."""
    translated = gettext(error)
    if translated != error:
        return translated
    for phrase, pattern in _upstream_phrases():
        if pattern is None:
            error = error.replace(phrase, gettext(phrase)) if phrase in error else error
        else:  # a phrase with values in it: worded again around the same values
            error = pattern.sub(lambda match, phrase=phrase: gettext(phrase) % match.groupdict(), error)
    return error


@functools.cache
def _upstream_phrases() -> list[tuple[str, re.Pattern | None]]:
    """The llm's phrases, longest first (no phrase is cut by a shorter one); those with %(name)s values as
    patterns that find them in a message whatever the values were."""
    phrases = []
    for phrase in sorted(set(PHRASES), key=len, reverse=True):
        if "%(" not in phrase:
            phrases.append((phrase, None))
            continue
        parts = re.split(r"%\((\w+)\)s", phrase)  # literal, name, literal, name, ..., literal
        pattern = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts))
        phrases.append((phrase, re.compile(pattern, re.S)))
    return phrases


def message_note(error: str, finish_reason: str | None) -> tuple[str, str]:
    """The line shown under a message and its CSS class: its error, else why it was cut off, else nothing.

    The page, the `message` frame and the `done` frame all carry it, so the browser never words it itself.
    """
    if error:
        return error_text(error), "message-error"
    return str(FINISH_NOTES.get(finish_reason or "", "")), "message-note"


def conversation_tree(conversation_id: uuid.UUID) -> Tree:
    """The shape of the conversation (every message's id and parent), in one query."""
    return Tree(Message.objects.filter(conversation_id=conversation_id).values_list("id", "parent_id"))


ROW_FIELDS = (
    "id", "parent_id", "role", "status", "content", "html", "error", "finish_reason", "author__username",
    "context_start", "model_name", "prompt_tokens", "completion_tokens", "created",
)


def branch_rows(conversation_id: uuid.UUID, tree: Tree, path: list[int]) -> list[dict]:
    """The messages on `path`, in its order, as plain rows (message_rows' shape). One query: the branch's rows
    when most messages are elsewhere, else the whole conversation's, filtered here (cheaper than a long IN)."""
    if not path:
        return []
    messages = Message.objects.filter(conversation_id=conversation_id)
    if len(path) * 2 < len(tree) and len(path) <= 30_000:  # most messages are elsewhere: ask for this branch
        messages = messages.filter(id__in=path)
    on_path = set(path)
    rows = {row["id"]: row for row in messages.values(*ROW_FIELDS) if row["id"] in on_path}
    return [_page_row(rows[message_id], tree) for message_id in path if message_id in rows]


def message_rows(conversation: Conversation, *, tree: Tree | None = None, through: int | None = None) -> list[dict]:
    """The conversation page's messages, the current branch's (or, given `through`, the newest branch through
    that message: a search result's), as plain rows, bodies already safe HTML.

    Plain dicts from two queries whatever the length (the tree, then the branch), not model
    instances: a 1,000-message page renders in a fraction of the time, and the template does
    no logic per row. Each row knows its versions (its siblings' ids) for the "‹ 2 / 3 ›".
    """
    tree = tree or conversation_tree(conversation.id)
    if through is not None and through in tree:
        path = tree.path(tree.newest_leaf(through))
    else:
        path = tree.branch(conversation.current_leaf_id)
    rows = branch_rows(conversation.id, tree, path)
    context_start = next((row["context_start"] for row in reversed(rows) if row["role"] == Message.Role.ASSISTANT), None)
    for row in rows:
        # The latest reply was sent only the messages from this one on: the marker goes before it.
        row["context_marker"] = row["id"] == context_start
    return rows


def _page_row(row: dict, tree: Tree) -> dict:
    row["body"] = message_html(row["role"], row["status"], row["content"], row["html"])
    row["note"], row["note_class"] = message_note(row["error"], row["finish_reason"])
    row["author"] = row.pop("author__username") or ""
    versions = tree.versions(row["id"])
    row["versions"] = ",".join(map(str, versions)) if len(versions) > 1 else ""
    meta = message_meta(row["role"], row["model_name"], row["completion_tokens"], row["created"])
    row["meta"] = json.dumps(meta, separators=(",", ":")) if meta else ""
    row["attributes"] = message_attributes(row)
    return row


def message_attributes(row: dict):
    """A message's <li> attributes, written here rather than in _message_items.html: each template variable
    costs about 8 µs to render, and eight of them per message made a 1,000-message page 30 ms slower.
    chat.js reads them: the versions for "‹ n / m ›", the meta line, who may edit."""
    parent = row.get("parent_id")
    return mark_safe(
        f'class="message message--{escape(row["role"])} is-{escape(row["status"])}" data-id="{int(row["id"])}"'
        f' data-status="{escape(row["status"])}" data-parent="{"" if parent is None else int(parent)}"'
        f' data-versions="{escape(row.get("versions", ""))}" data-meta="{escape(row.get("meta", ""))}"'
        f' data-author="{escape(row.get("author") or "")}"'
    )


def message_meta(role: str, model_name: str, completion_tokens: int | None, created) -> dict | None:
    """What the quiet line on a reply says: the model that wrote it, its tokens and when. The browser words
    it and shows the time in the reader's own time zone, which the server does not know."""
    if role != Message.Role.ASSISTANT:
        return None
    return {"model": model_name or "", "tokens": completion_tokens, "created": created.isoformat() if created else None}


def newest_message(tree: Tree) -> int:
    """The newest message's id (0 for none): a page treats messages after it as new, and follows them."""
    return max(tree.parent, default=0)


def resume_from(tree: Tree, rows: list[dict]) -> int:
    """The message id a page's socket asks to catch up from (`?since=`): the streaming reply it shows,
    else the one after the newest message on any branch, so nothing that changed after the render is missed."""
    streaming = [row["id"] for row in rows if row["status"] == Message.Status.STREAMING]
    return streaming[0] if streaming else newest_message(tree) + 1


def message_html(role: str, status: str, content: str, html: str) -> str:
    """A message as safe HTML: a finished reply's stored rendering, anything else as escaped text."""
    if role == Message.Role.ASSISTANT and status != Message.Status.STREAMING:
        return mark_safe(html)  # sanitised by rendering.render_markdown when saved
    return render_plain(content)


def message_payload(message: Message, *, versions: list[int] | None = None) -> dict:
    """A saved message as the `message` frame carries it; `versions`: it and its siblings, oldest first."""
    html = message_html(message.role, message.status, message.content, message.html)
    note, note_class = message_note(message.error, message.finish_reason)
    return {
        "id": message.id,
        "parent_id": message.parent_id,
        "versions": versions or [message.id],
        "meta": message_meta(message.role, message.model_name, message.completion_tokens, message.created),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "html": html,
        "finish_reason": message.finish_reason,
        "error": message.error,
        "note": note,
        "note_class": note_class,
        "author": message.author.get_username() if message.author_id else None,
        "context_start": message.context_start,
    }


def messages_since(conversation_id: uuid.UUID, since_id: int) -> list[dict] | None:
    """What a (re)connecting socket missed: messages from `since_id` on, on every branch, oldest first
    (each after the message it follows). None when too many to send.

    The caller has checked access (the consumer does, on connect and on every access change).
    """
    messages = Message.objects.filter(conversation_id=conversation_id, id__gte=since_id).select_related("author")
    rows = list(messages.order_by("id")[: CATCH_UP_LIMIT + 1])
    if len(rows) > CATCH_UP_LIMIT:
        return None
    tree = conversation_tree(conversation_id) if rows else None
    return [message_payload(message, versions=tree.versions(message.id)) for message in rows]


def branch_payloads(conversation_id: uuid.UUID, tree: Tree, path: list[int]) -> list[dict]:
    """The messages on `path` as `message` frames carry them."""
    messages = Message.objects.filter(conversation_id=conversation_id, id__in=path).select_related("author")
    by_id = {message.id: message for message in messages}
    return [message_payload(by_id[i], versions=tree.versions(i)) for i in path if i in by_id]


def export_rows(conversation: Conversation) -> list[dict]:
    """Every message of the conversation, on every branch, as exports.conversation_export reads them, oldest first
    (a message always after the one it follows)."""
    return list(
        conversation.messages.order_by("id").values(
            "id", "parent_id", "role", "content", "status", "error", "finish_reason", "model_name", "prompt_tokens",
            "completion_tokens", "created", "author__username",
        )
    )


def message_payload_of(message_id: int, *, conversation_id: uuid.UUID | None = None) -> dict | None:
    """message_payload for the message with this id (in this conversation, if given), None if there is none."""
    messages = Message.objects.select_related("author").filter(pk=message_id)
    if conversation_id is not None:
        messages = messages.filter(conversation_id=conversation_id)
    message = messages.first()
    if message is None:
        return None
    return message_payload(message, versions=conversation_tree(message.conversation_id).versions(message.id))

"""A conversation as a download: JSON (everything a person may take away, every branch) or Markdown (the
branch the page shows).

Formatting only: the rows come from selectors.conversations.export_rows, and
who may export is decided by the caller through the one access rule.

The JSON is also what imports/ reads back ("format": "teamchat.conversation"): version 2 carries every
message of every branch with its `id` and `parent_id` (null for a first message) and the conversation's
`current_leaf`, so an import gives back the same tree. Version 1 (no ids) was one branch in order.
"""

import json
from datetime import date
from typing import NamedTuple

from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from .models import Conversation, Message
from .tree import Tree

FORMATS = ("md", "json")
EXPORT_FORMAT, EXPORT_VERSION = "teamchat.conversation", 2


class Download(NamedTuple):
    body: str
    content_type: str
    filename: str


def conversation_export(conversation: Conversation, rows: list[dict]) -> dict:
    """The conversation and all its messages (`rows` from export_rows, parents before children) as plain
    JSON-ready data; `current_leaf` is the leaf of the branch the page shows."""
    tree = Tree((row["id"], row["parent_id"]) for row in rows)
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "id": str(conversation.id),
        "title": str(conversation),
        "owner": conversation.owner.get_username(),
        "created": conversation.created.isoformat(),
        "updated": conversation.updated.isoformat(),
        "exported": timezone.now().isoformat(),
        "current_leaf": tree.current_leaf(conversation.current_leaf_id),
        "messages": [
            {
                "id": row["id"],
                "parent_id": row["parent_id"],
                "role": row["role"],
                "author": row["author__username"],
                "content": row["content"],
                "status": row["status"],
                "error": row["error"],
                "finish_reason": row["finish_reason"],
                "model": row["model_name"],
                "prompt_tokens": row["prompt_tokens"],
                "completion_tokens": row["completion_tokens"],
                "created": row["created"].isoformat(),
            }
            for row in rows
        ],
    }


def current_branch(export: dict) -> list[dict]:
    """The export's messages on its current branch, from the first message down to `current_leaf`."""
    by_id = {message["id"]: message for message in export["messages"]}
    tree = Tree((message["id"], message["parent_id"]) for message in export["messages"])
    return [by_id[message_id] for message_id in tree.path(export["current_leaf"])]


def export_markdown(export: dict) -> str:
    """The export's current branch as a Markdown document: a heading per message, errors quoted under their reply."""
    exported = export["exported"][:16].replace("T", " ")
    lines = [f"# {export['title']}", "", _("Exported %(when)s UTC.") % {"when": exported}, ""]
    for message in current_branch(export):
        if message["role"] == Message.Role.USER:
            heading = message["author"] or _("User")
        elif message["role"] == Message.Role.SYSTEM:
            heading = _("System")
        else:
            heading = _("Assistant") + (f" ({message['model']})" if message["model"] else "")
        lines += [f"## {heading}", "", message["content"], ""]
        if message["error"]:
            lines += [f"> {message['error']}", ""]
    return "\n".join(lines)


def conversation_download(conversation: Conversation, rows: list[dict], fmt: str, *, today: date) -> Download:
    """The file for `fmt` ("md" or "json"), named after the conversation and the day."""
    export = conversation_export(conversation, rows)
    name = slugify(str(conversation))[:60] or "conversation"
    if fmt == "json":
        body, content_type = json.dumps(export, ensure_ascii=False, indent=2), "application/json"
    else:
        fmt, body, content_type = "md", export_markdown(export), "text/markdown; charset=utf-8"
    return Download(body, content_type, f"{name}-{today:%Y-%m-%d}.{fmt}")

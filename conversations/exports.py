"""A conversation as a download: JSON (everything a person may take away) or Markdown.

Formatting only: the rows come from selectors.conversations.export_rows, and
who may export is decided by the caller through the one access rule.
"""

import json
from datetime import date
from typing import NamedTuple

from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from .models import Conversation, Message

FORMATS = ("md", "json")


class Download(NamedTuple):
    body: str
    content_type: str
    filename: str


def conversation_export(conversation: Conversation, rows: list[dict]) -> dict:
    """The conversation and its messages (`rows` from export_rows) as plain JSON-ready data."""
    return {
        "id": str(conversation.id),
        "title": str(conversation),
        "owner": conversation.owner.get_username(),
        "created": conversation.created.isoformat(),
        "exported": timezone.now().isoformat(),
        "messages": [
            {
                "role": row["role"],
                "author": row["author__username"],
                "content": row["content"],
                "status": row["status"],
                "error": row["error"],
                "finish_reason": row["finish_reason"],
                "model": row["model_name"],
                "created": row["created"].isoformat(),
            }
            for row in rows
        ],
    }


def export_markdown(export: dict) -> str:
    """The export as a Markdown document: a heading per message, errors quoted under their reply."""
    exported = export["exported"][:16].replace("T", " ")
    lines = [f"# {export['title']}", "", _("Exported %(when)s UTC.") % {"when": exported}, ""]
    for message in export["messages"]:
        if message["role"] == Message.Role.USER:
            heading = message["author"] or _("User")
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

"""One conversation of a ChatGPT data export as an ImportedConversation.

ChatGPT keeps a conversation as a `mapping` of nodes, each with its `parent` and `children` and a `message`
(or none), and a `current_node`: the leaf of the branch its page showed. Edited questions and regenerated
answers are siblings under one parent. Here:
- the parent pointers are the truth; siblings keep the order of their parent's `children`;
- nodes with no message, hidden ones (`metadata.is_visually_hidden_from_conversation`: the system prompt,
  custom instructions, tool plumbing) and empty ones are left out, their children joined to the nearest
  kept ancestor; the current node, if left out, becomes that ancestor;
- user -> user (written by the person importing); assistant -> assistant, with its `model_slug`; tool ->
  an assistant message that starts "[tool: <name>]"; a visible, non-empty system message stays system;
- content of every kind becomes text (below): images, audio and other things that cannot come along
  become a placeholder such as "[image]", never nothing.
"""

import hashlib
import re

from django.utils.translation import gettext as _

from .parsed import (
    ConversationRefused,
    ImportedConversation,
    ImportedMessage,
    Limits,
    TreeLoop,
    epoch_time,
    fill_times,
    message_text,
    nearest_kept,
    ordered_tree,
    plain_title,
)

# Parts of a multimodal message that cannot be imported, by their content_type: what stands in for them.
ASSET_PLACEHOLDERS = {
    "image_asset_pointer": "[image]",
    "audio_asset_pointer": "[audio]",
    "real_time_user_audio_video_asset_pointer": "[audio]",
    "video_container_asset_pointer": "[video]",
    "file_asset_pointer": "[file]",
}
FINISH_REASONS = {"stop": "stop", "max_tokens": "length"}


def conversation_from_chatgpt(item: dict, limits: Limits) -> ImportedConversation:
    """ConversationRefused when it cannot be imported whole (no mapping, a loop, a message over the limit ...)."""
    mapping = item.get("mapping")
    if not isinstance(mapping, dict):
        raise ConversationRefused(_("It has no messages (no “mapping”)."))
    default_model = item.get("default_model_slug") if isinstance(item.get("default_model_slug"), str) else ""
    parent_of, sibling_order, converted = {}, {}, {}
    for node_id, node in mapping.items():
        if not isinstance(node, dict):
            raise ConversationRefused(_("Its message %(id)s is not an object.") % {"id": node_id[:80]})
        parent = node.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise ConversationRefused(_("Its message %(id)s has a parent that is not an id.") % {"id": node_id[:80]})
        parent_of[node_id] = parent
        if isinstance(node.get("children"), list):
            sibling_order[node_id] = node["children"]
        message = _message(node.get("message"), default_model, limits)
        if message is not None:
            converted[node_id] = message
    try:
        order, parents = ordered_tree(parent_of, keep=converted.keys(), sibling_order=sibling_order)
    except TreeLoop as exc:
        raise ConversationRefused(
            _("Its messages loop: following the parents of message %(id)s never reaches the first message.")
            % {"id": str(exc.node)[:80]}
        ) from None
    index_of = {node_id: index for index, node_id in enumerate(order)}
    current_node = item.get("current_node")
    conversation = ImportedConversation(
        key=_key(item),
        title=plain_title(item.get("title")),
        created=epoch_time(item.get("create_time")),
        updated=epoch_time(item.get("update_time")),
        messages=[converted[node_id] for node_id in order],
        parents=parents,
        current=nearest_kept(current_node, parent_of, index_of) if isinstance(current_node, str) else None,
    )
    fill_times(conversation)
    return conversation


def _key(item: dict) -> str:
    """"chatgpt:<its id>", so the same conversation imported again is found ("" when it has no id)."""
    conversation_id = item.get("conversation_id") or item.get("id")
    if not isinstance(conversation_id, str) or not conversation_id:
        return ""
    if len(conversation_id) > 150:
        conversation_id = hashlib.sha256(conversation_id.encode()).hexdigest()
    return f"chatgpt:{conversation_id}"


def _message(message, default_model: str, limits: Limits) -> ImportedMessage | None:
    """The message of a node, or None when it is left out (none, hidden, empty)."""
    if message is None:
        return None
    if not isinstance(message, dict):
        raise ConversationRefused(_("One of its messages is not an object."))
    author = message.get("author") if isinstance(message.get("author"), dict) else {}
    metadata = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
    if metadata.get("is_visually_hidden_from_conversation"):
        return None
    text = content_text(message.get("content"))
    if not text.strip():
        return None
    role = author.get("role")
    if role == "tool":
        name = author.get("name") if isinstance(author.get("name"), str) and author.get("name") else "tool"
        text, role = f"[tool: {name}]\n\n{text}", "assistant"
    elif role not in ("user", "assistant", "system"):
        text, role = f"[{str(role)[:40]}]\n\n{text}", "assistant"
    finish = metadata.get("finish_details") if isinstance(metadata.get("finish_details"), dict) else {}
    finished = message.get("status") in (None, "finished_successfully") and finish.get("type") != "interrupted"
    model = metadata.get("model_slug") if isinstance(metadata.get("model_slug"), str) else default_model
    return ImportedMessage(
        role=role,
        content=message_text(text, limits),
        created=epoch_time(message.get("create_time")),
        status="complete" if finished else "stopped",
        model_name=(model or "")[:200] if role == "assistant" else "",
        finish_reason=FINISH_REASONS.get(finish.get("type"), ""),
    )


# --- content of every kind as text ---------------------------------------------------------------


def content_text(content) -> str:
    """A message's content as Markdown-ish text; kinds that cannot be shown become "[unsupported content: <kind>]"."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, dict):
        return f"[unsupported content: {type(content).__name__}]"
    kind = content.get("content_type")
    if kind in ("text", "multimodal_text"):
        parts = content.get("parts") if isinstance(content.get("parts"), list) else []
        return "\n\n".join(text for text in map(_part_text, parts) if text)
    if kind == "code":
        language = _string(content.get("language"))
        return fenced(_string(content.get("text")), "" if language == "unknown" else language)
    if kind == "execution_output":
        return fenced(_string(content.get("text")), "output")
    if kind in ("tether_browsing_display", "tether_quote"):
        fields = ("title", "url", "text", "result", "summary")
        return "\n\n".join(_string(content.get(name)).strip() for name in fields if _string(content.get(name)).strip())
    if kind == "system_error":
        return _string(content.get("text")) or _string(content.get("name"))
    if kind == "thoughts":
        thoughts = content.get("thoughts") if isinstance(content.get("thoughts"), list) else []
        return "\n\n".join(_thought(thought) for thought in thoughts if _thought(thought))
    if kind == "reasoning_recap":
        return _string(content.get("content"))
    return f"[unsupported content: {str(kind)[:60]}]"


def _part_text(part) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        kind = part.get("content_type")
        if kind == "audio_transcription":
            return _string(part.get("text")) or "[audio]"
        if kind in ASSET_PLACEHOLDERS:
            return ASSET_PLACEHOLDERS[kind]
        return f"[unsupported content: {str(kind)[:60]}]"
    if part is None:
        return ""
    return f"[unsupported content: {type(part).__name__}]"


def _thought(thought) -> str:
    if not isinstance(thought, dict):
        return ""
    summary, body = _string(thought.get("summary")).strip(), _string(thought.get("content")).strip()
    return "\n\n".join(text for text in (f"**{summary}**" if summary else "", body) if text)


def _string(value) -> str:
    return value if isinstance(value, str) else ""


def fenced(text: str, language: str = "") -> str:
    """`text` as a fenced code block whose fence no run of backticks inside it can close ("" for no text)."""
    if not text.strip():
        return ""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    info = re.sub(r"[^\w+#.-]", "", language)[:30]
    return f"{fence}{info}\n{text}\n{fence}"

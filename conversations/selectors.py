"""Reads: what pages and the socket show, and what a reply is asked with. Plain data out."""

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.utils.safestring import mark_safe

from .exceptions import ConversationNotFound
from .llm import ModelSpec, demo
from .models import Conversation, Message, ModelConfig
from .rendering import render_plain

DEMO_SPEC = ModelSpec(base_url=demo.BASE_URL + "/v1", model=demo.MODEL, label="Demo model (offline)")

# A reconnecting socket is sent at most this many missed messages; past that the page reloads.
CATCH_UP_LIMIT = 200


@dataclass(frozen=True)
class ModelChoice:
    id: int | None  # None: the built-in demo model
    name: str
    is_default: bool


def conversation_for(user, conversation_id: uuid.UUID | str) -> Conversation:
    """The conversation if this person may see it; ConversationNotFound otherwise (never a hint it exists)."""
    try:
        return Conversation.objects.visible_to(user).select_related("model_config").get(pk=conversation_id)
    except (Conversation.DoesNotExist, ValueError):
        raise ConversationNotFound() from None


def conversation_list_for(user):
    """The sidebar: this person's conversations, most recently active first."""
    return Conversation.objects.visible_to(user).only("id", "title", "updated").order_by("-updated")


def conversation_messages(conversation: Conversation):
    return conversation.messages.select_related("author").order_by("id")


FINISH_NOTES = {
    "length": "Cut off: the reply reached its length limit.",
    "content_filter": "Cut off by the provider's content filter.",
}


def message_rows(conversation: Conversation) -> list[dict]:
    """The conversation page's messages as plain rows, bodies already safe HTML.

    Plain dicts from one query, not model instances: a 1,000-message page is
    rendered in a fraction of the time, and the template does no logic per row.
    """
    rows = list(
        conversation.messages.order_by("id").values(
            "id", "role", "status", "content", "html", "error", "finish_reason", "author__username"
        )
    )
    for row in rows:
        row["body"] = message_html(row["role"], row["status"], row["content"], row["html"])
        row["note"] = row["error"] or FINISH_NOTES.get(row["finish_reason"], "")
        row["note_class"] = "message-error" if row["error"] else "message-note"
    return rows


def default_model_config() -> ModelConfig | None:
    """The enabled model marked default, else the first enabled one, else None (the demo answers)."""
    configs = list(ModelConfig.objects.enabled().order_by("-is_default", "display_name")[:1])
    return configs[0] if configs else None


def model_choices() -> list[ModelChoice]:
    """What the model picker offers. With no model configured, only the demo."""
    configs = list(ModelConfig.objects.enabled().order_by("display_name"))
    if not configs:
        return [ModelChoice(id=None, name=DEMO_SPEC.label, is_default=True)]
    default = next((config for config in configs if config.is_default), configs[0])
    return [ModelChoice(id=config.id, name=config.display_name, is_default=config is default) for config in configs]


def model_spec(config: ModelConfig | None) -> ModelSpec:
    if config is None:
        return DEMO_SPEC
    provider = config.provider
    return ModelSpec(
        base_url=provider.base_url,
        api_key=provider.api_key,
        model=config.model,
        endpoint=config.endpoint,
        parameters=config.api_parameters(),
        system_prompt=config.system_prompt,
        timeout=provider.timeout,
        label=config.display_name,
    )


# Every send needs its model's settings; reading them (a three-table join) cost more
# than the rest of the send's queries together. They change rarely, so each process
# keeps them for a few seconds. A save in the admin clears this process's copy at
# once (apps.py); other processes see it within MODEL_CACHE_SECONDS.
MODEL_CACHE_SECONDS = 10.0
_model_cache: dict = {}


def forget_models(**_) -> None:
    _model_cache.clear()


def _cached(key, load):
    now = time.monotonic()
    hit = _model_cache.get(key)
    if hit is None or hit[0] < now:
        hit = _model_cache[key] = (now + MODEL_CACHE_SECONDS, load())
    return hit[1]


def enabled_model_spec(config_id: int) -> ModelSpec | None:
    """The request settings of model config `config_id`, or None if it is missing or disabled."""

    def load():
        config = ModelConfig.objects.enabled().filter(pk=config_id).first()
        return model_spec(config) if config is not None else None

    return _cached(("spec", config_id), load)


def default_model() -> tuple[int | None, ModelSpec]:
    """The default model's id and settings; (None, the demo) when no model is enabled."""

    def load():
        config = default_model_config()
        return (config.id if config else None, model_spec(config))

    return _cached("default", load)


def message_html(role: str, status: str, content: str, html: str) -> str:
    """A message as safe HTML: a finished reply's stored rendering, anything else as escaped text."""
    if role == Message.Role.ASSISTANT and status != Message.Status.STREAMING:
        return mark_safe(html)  # sanitised by rendering.render_markdown when saved
    return render_plain(content)


def message_payload(message: Message) -> dict:
    """A saved message as the `message` frame carries it."""
    html = message_html(message.role, message.status, message.content, message.html)
    return {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "html": html,
        "finish_reason": message.finish_reason,
        "error": message.error,
        "author": message.author.get_username() if message.author_id else None,
    }


def messages_since(user, conversation_id: uuid.UUID, since_id: int) -> list[dict] | None:
    """What a (re)connecting socket missed: messages from `since_id` on. None when too many to send."""
    conversation = conversation_for(user, conversation_id)
    rows = list(conversation_messages(conversation).filter(id__gte=since_id)[: CATCH_UP_LIMIT + 1])
    if len(rows) > CATCH_UP_LIMIT:
        return None
    return [message_payload(message) for message in rows]


def user_pseudonym(user_id: int) -> str:
    """A stable id for the API's `user` field that says nothing about who the person is."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"openai-user:{user_id}".encode(), hashlib.sha256)
    return "u-" + digest.hexdigest()[:32]

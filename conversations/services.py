"""Writes. Each function is one transaction; async callers reach each in one hop."""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import selectors
from .exceptions import ConversationNotFound, ModelNotAvailable, NothingToRegenerate, ReplyInProgress
from .llm import ModelSpec, Usage
from .models import Conversation, Message, ModelConfig, Provider
from .rendering import render_markdown

log = logging.getLogger(__name__)

TITLE_LENGTH = 60
INTERRUPTED = "The reply was interrupted: the server stopped while it was streaming."


@dataclass(frozen=True)
class ReplyPlan:
    """Everything a generation needs, read in the same transaction that created its placeholder."""

    conversation_id: uuid.UUID
    reply_id: int
    spec: ModelSpec
    history: list[dict]
    user: str  # the pseudonymous id sent as the API's `user`
    user_message: dict | None = None  # the saved message, for a send
    replaced_id: int | None = None  # the reply a regenerate removed


def title_from(content: str) -> str:
    words = " ".join(content.split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1].rstrip() + "…"


@transaction.atomic
def conversation_create(*, owner, model_config_id: int | None = None, content: str = "") -> Conversation:
    """A new conversation, optionally with the person's first message already in it."""
    config = _enabled_model(model_config_id) if model_config_id else None
    conversation = Conversation.objects.create(owner=owner, model_config=config, title=title_from(content))
    if content:
        Message.objects.create(conversation=conversation, role=Message.Role.USER, content=content, author=owner)
    return conversation


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    conversation.title = title.strip()[:200]
    conversation.save(update_fields=["title"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


def reply_begin(*, user, conversation_id: uuid.UUID, content: str, model_config_id: int | None = None) -> ReplyPlan:
    """Save the person's message and a streaming placeholder for the reply, before anything goes upstream."""
    try:
        with transaction.atomic():
            conversation = _writable_conversation(user, conversation_id)
            if model_config_id is not None:
                conversation.model_config = _enabled_model(model_config_id)
            user_message = Message.objects.create(
                conversation=conversation, role=Message.Role.USER, content=content, author=user
            )
            if not conversation.title:
                conversation.title = title_from(content)
            return _plan_reply(user, conversation, user_message=selectors.message_payload(user_message))
    except IntegrityError:
        # Another send won the race for the one streaming slot (see Message.Meta.constraints).
        raise ReplyInProgress() from None


def reply_regenerate_begin(*, user, conversation_id: uuid.UUID, model_config_id: int | None = None) -> ReplyPlan:
    """Replace the last reply (if any) with a new one to the last message the person sent."""
    try:
        with transaction.atomic():
            conversation = _writable_conversation(user, conversation_id)
            if model_config_id is not None:
                conversation.model_config = _enabled_model(model_config_id)
            last = conversation.messages.order_by("-id").first()
            replaced_id = None
            if last is not None and last.role == Message.Role.ASSISTANT:
                replaced_id = last.id
                last.delete()
            if not conversation.messages.filter(role=Message.Role.USER).exists():
                raise NothingToRegenerate()
            return _plan_reply(user, conversation, replaced_id=replaced_id)
    except IntegrityError:
        raise ReplyInProgress() from None


def _writable_conversation(user, conversation_id: uuid.UUID) -> Conversation:
    try:
        conversation = (
            Conversation.objects.writable_by(user)
            .select_for_update(of=("self",))
            .select_related("model_config__provider")
            .get(pk=conversation_id)
        )
    except (Conversation.DoesNotExist, ValueError):
        raise ConversationNotFound() from None
    _reap_stale_replies(conversation)
    if conversation.messages.filter(status=Message.Status.STREAMING).exists():
        raise ReplyInProgress()
    return conversation


def _plan_reply(user, conversation: Conversation, **extra) -> ReplyPlan:
    reply = Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING)
    conversation.updated = timezone.now()
    conversation.save(update_fields=["title", "model_config", "updated"])
    config = selectors.model_config_for(conversation)
    return ReplyPlan(
        conversation_id=conversation.id,
        reply_id=reply.id,
        spec=selectors.model_spec(config),
        history=selectors.history_for_prompt(conversation, before_id=reply.id),
        user=selectors.user_pseudonym(user.pk),
        **extra,
    )


def _enabled_model(model_config_id: int) -> ModelConfig:
    try:
        return ModelConfig.objects.enabled().get(pk=model_config_id)
    except ModelConfig.DoesNotExist:
        raise ModelNotAvailable() from None


def _reap_stale_replies(conversation: Conversation) -> None:
    """Close replies left streaming by a process that died: nothing has saved them for a while."""
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER)
    for message in conversation.messages.filter(status=Message.Status.STREAMING, updated__lt=cutoff):
        log.warning("Closing orphaned streaming reply %s", message.id)
        message.status = Message.Status.ERROR
        message.error = INTERRUPTED
        message.html = render_markdown(message.content)
        message.save(update_fields=["status", "error", "html", "updated"])


def replies_checkpoint(contents: dict[int, str]) -> None:
    """Save the text so far of several streaming replies in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        for reply_id, content in contents.items():
            Message.objects.filter(pk=reply_id, status=Message.Status.STREAMING).update(content=content, updated=now)


def reply_finish(
    *,
    conversation_id: uuid.UUID,
    reply_id: int,
    content: str,
    status: str,
    finish_reason: str | None = None,
    error: str = "",
    usage: Usage | None = None,
    model_name: str = "",
) -> dict:
    """The reply's final state, rendered once here so pages never render it again. Returns its payload."""
    html = render_markdown(content)
    now = timezone.now()
    fields = {
        "content": content,
        "html": html,
        "status": status,
        "finish_reason": finish_reason or "",
        "error": error,
        "model_name": model_name[:200],
        "updated": now,
    }
    if usage is not None:
        fields["prompt_tokens"] = usage.prompt_tokens
        fields["completion_tokens"] = usage.completion_tokens
    with transaction.atomic():
        Message.objects.filter(pk=reply_id).update(**fields)
        Conversation.objects.filter(pk=conversation_id).update(updated=now)
    return {"html": html, **fields}


def provider_sync_from_env() -> ModelConfig | None:
    """Create or update the provider and model named by OPENAI_API_KEY / _BASE_URL / _MODEL.

    Idempotent: running it on every start changes nothing the second time. The
    model becomes the default unless an admin already chose another.
    """
    if not settings.OPENAI_API_KEY:
        return None
    with transaction.atomic():
        provider, _ = Provider.objects.update_or_create(
            from_env=True,
            defaults={"base_url": settings.OPENAI_BASE_URL, "api_key": settings.OPENAI_API_KEY},
            create_defaults={
                "name": _free_provider_name("OpenAI (from environment)"),
                "base_url": settings.OPENAI_BASE_URL,
                "api_key": settings.OPENAI_API_KEY,
                "from_env": True,
            },
        )
        config, created = ModelConfig.objects.get_or_create(
            provider=provider, model=settings.OPENAI_MODEL, defaults={"display_name": settings.OPENAI_MODEL}
        )
        current = ModelConfig.objects.filter(is_default=True).first()
        if current is None or (current.provider_id == provider.id and current != config):
            ModelConfig.objects.filter(is_default=True).update(is_default=False)
            config.is_default = True
            config.save(update_fields=["is_default"])
    return config


def _free_provider_name(name: str) -> str:
    taken = set(Provider.objects.filter(Q(name=name) | Q(name__startswith=f"{name} (")).values_list("name", flat=True))
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} ({number})", number + 1
    return candidate

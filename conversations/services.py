"""Writes. Each function is one transaction; async callers reach each in one hop."""

import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from . import context, metering, permissions, selectors
from .exceptions import (
    ConversationNotFound,
    Forbidden,
    InvalidChange,
    ModelNotAvailable,
    NothingToRegenerate,
    ReplyInProgress,
)
from .llm import ModelSpec, Usage
from .models import Conversation, Message, ModelConfig, Preset, Provider, PublicLink, Share, Team, TeamMembership
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
    context_start: int | None = None  # the first message sent, when older ones were left out to fit the context window


def title_from(content: str) -> str:
    words = " ".join(content.split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1].rstrip() + "…"


@transaction.atomic
def conversation_create(*, owner, model_config_id: int | None = None, content: str = "") -> Conversation:
    """A new conversation, optionally with the person's first message already in it.

    ModelNotAvailable if the model picked is disabled or not open to the owner.
    LimitExceeded if a first message is given and the owner is over a budget (its reply would be refused).
    """
    if content:
        metering.limits_check(owner)
    # The conversation keeps the model it starts with (the owner's default unless one was picked).
    if model_config_id is not None:
        if selectors.usable_model_spec(owner, model_config_id) is None:
            raise ModelNotAvailable()
    else:
        model_config_id = selectors.default_model_id(owner)
    conversation = Conversation.objects.create(owner=owner, model_config_id=model_config_id, title=title_from(content))
    if content:
        Message.objects.create(conversation=conversation, role=Message.Role.USER, content=content, author=owner)
    return conversation


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    conversation.title = title.strip()[:200]
    conversation.save(update_fields=["title"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


# --- per-conversation settings and presets ------------------------------------------------
# What is stored on a conversation is what its current model lets the person set; the send path
# (selectors.conversation_spec) applies it only where the model still allows it, within its bounds now.


def _check_own_settings(spec: ModelSpec, *, temperature: float | None, system_prompt: str) -> None:
    """InvalidChange unless the model lets a person set this temperature and system prompt."""
    if temperature is not None:
        if spec.temperature_range is None:
            raise InvalidChange(f"{spec.label} does not let you set the temperature.")
        low, high = spec.temperature_range
        if not low <= temperature <= high:
            raise InvalidChange(f"Choose a temperature from {low:g} to {high:g} for {spec.label}.")
    if system_prompt.strip() and not spec.custom_system_prompt:
        raise InvalidChange(f"{spec.label} does not take a system prompt of your own.")


@transaction.atomic
def conversation_settings_update(
    *, conversation: Conversation, user, temperature: float | None, system_prompt: str
) -> Conversation:
    """Set the conversation's own temperature (None: the model's) and system prompt, checked against the
    model the conversation uses for this person now. InvalidChange (nothing saved) when outside what it allows."""
    _, spec = selectors.conversation_model_for(user, conversation)
    _check_own_settings(spec, temperature=temperature, system_prompt=system_prompt)
    conversation.temperature = temperature
    conversation.system_prompt = system_prompt.strip()
    conversation.save(update_fields=["temperature", "system_prompt"])
    return conversation


@transaction.atomic
def conversation_preset_apply(*, conversation: Conversation, user, preset: Preset) -> list[str]:
    """Make the conversation start from `preset`: its model (if it has one open to this person), its temperature
    (kept within the model's bounds) and system prompt, where the model allows them. Returns what was left out."""
    skipped = []
    model_id, spec = selectors.conversation_model_for(user, conversation)
    if preset.model_config_id is not None:
        preset_spec = selectors.usable_model_spec(user, preset.model_config_id)
        if preset_spec is None:
            skipped.append("its model, which is not available to you")
        else:
            model_id, spec = preset.model_config_id, preset_spec
    temperature = None
    if preset.temperature is not None:
        if spec.temperature_range is None:
            skipped.append(f"its temperature: {spec.label} does not let you set one")
        else:
            low, high = spec.temperature_range
            temperature = min(max(preset.temperature, low), high)
            if temperature != preset.temperature:
                skipped.append(
                    f"its temperature {preset.temperature:g}: {spec.label} allows {low:g} to {high:g}, so {temperature:g}"
                )
    system_prompt = preset.system_prompt.strip()
    if system_prompt and not spec.custom_system_prompt:
        skipped.append(f"its system prompt: {spec.label} does not take one of yours")
        system_prompt = ""
    conversation.model_config_id = model_id
    conversation.temperature = temperature
    conversation.system_prompt = system_prompt
    conversation.save(update_fields=["model_config", "temperature", "system_prompt"])
    return skipped


@transaction.atomic
def conversation_create_from_preset(
    *, owner, preset: Preset, model_config_id: int | None = None, content: str = ""
) -> tuple[Conversation, list[str]]:
    """conversation_create, then conversation_preset_apply: a new conversation that starts from a preset."""
    conversation = conversation_create(owner=owner, model_config_id=model_config_id, content=content)
    return conversation, conversation_preset_apply(conversation=conversation, user=owner, preset=preset)


@transaction.atomic
def preset_create(
    *, owner, name: str, model_config_id: int | None = None, system_prompt: str = "", temperature: float | None = None
) -> Preset:
    """A personal preset. With a model, its settings must be ones that model lets the person set."""
    name = name.strip()
    if Preset.objects.filter(owner=owner, name=name).exists():
        raise InvalidChange(f"You already have a preset called {name!r}.")
    if model_config_id is not None:
        spec = selectors.usable_model_spec(owner, model_config_id)
        if spec is None:
            raise ModelNotAvailable()
        _check_own_settings(spec, temperature=temperature, system_prompt=system_prompt)
    return Preset.objects.create(
        owner=owner,
        name=name,
        model_config_id=model_config_id,
        system_prompt=system_prompt.strip(),
        temperature=temperature,
    )


def preset_delete(*, preset: Preset) -> None:
    preset.delete()


# --- sharing -------------------------------------------------------------------------------
# Access changes reach open sockets through signals.py, after the transaction commits.


@transaction.atomic
def conversation_share(*, conversation: Conversation, by, role: str, user_id: int | None = None, team_id: int | None = None) -> Share:
    """Share with one of `by`'s teammates or teams, or change the role of an existing share."""
    if conversation.owner_id != by.pk:
        raise Forbidden(permissions.FORBIDDEN_MESSAGES[permissions.Action.SHARE])
    if role not in Share.Role.values:
        raise InvalidChange("Choose viewer or collaborator.")
    if (user_id is None) == (team_id is None):
        raise InvalidChange("Share with one person or one team.")
    if user_id is not None:
        if user_id not in {teammate.pk for teammate in selectors.teammates_of(by)}:
            raise InvalidChange("You can share only with people in your teams.")
        target = {"user_id": user_id}
    else:
        if team_id not in {team.pk for team in selectors.teams_of(by)}:
            raise InvalidChange("You can share only with teams you are in.")
        target = {"team_id": team_id}
    share, _ = Share.objects.update_or_create(conversation=conversation, **target, defaults={"role": role})
    return share


@transaction.atomic
def share_change_role(*, share: Share, role: str) -> Share:
    if role not in Share.Role.values:
        raise InvalidChange("Choose viewer or collaborator.")
    share.role = role
    share.save(update_fields=["role"])
    return share


@transaction.atomic
def share_revoke(*, share: Share) -> None:
    share.delete()


@transaction.atomic
def conversation_copy(*, owner, title: str, rows: list[dict]) -> Conversation:
    """A new conversation owned by `owner` holding these messages (role and content): "Continue in my own chat"."""
    conversation = Conversation.objects.create(
        owner=owner, title=title_from(title), model_config_id=selectors.default_model_id(owner)
    )
    messages = []
    for row in rows:
        if not row["content"] or row["role"] not in (Message.Role.USER, Message.Role.ASSISTANT):
            continue
        assistant = row["role"] == Message.Role.ASSISTANT
        messages.append(
            Message(
                conversation=conversation,
                role=row["role"],
                content=row["content"],
                html=render_markdown(row["content"]) if assistant else "",
                author=None if assistant else owner,
            )
        )
    Message.objects.bulk_create(messages)
    return conversation


# --- public links ----------------------------------------------------------------------------


@transaction.atomic
def public_link_create(
    *, conversation: Conversation, kind: str, audience: str, password: str = "", expires_at=None
) -> PublicLink:
    if not selectors.public_links_on():
        raise InvalidChange("Public links are turned off on this site.")
    link = PublicLink(
        conversation=conversation,
        kind=kind,
        audience=audience,
        password=make_password(password) if password else "",
        expires_at=expires_at,
    )
    _take_snapshot(link)
    link.save()
    return link


@transaction.atomic
def public_link_refresh(*, link: PublicLink) -> PublicLink:
    """A snapshot link now shows the conversation as it is."""
    _take_snapshot(link)
    link.save(update_fields=["title", "snapshot", "snapshot_at"])
    return link


def public_link_delete(*, link: PublicLink) -> None:
    link.delete()


def _take_snapshot(link: PublicLink) -> None:
    conversation = link.conversation
    link.title = str(conversation)
    link.snapshot_at = timezone.now()
    if link.kind == PublicLink.Kind.SNAPSHOT:
        rows = selectors.message_rows(conversation)
        # Only what is shown; a reply still streaming is kept as its text so far.
        keys = ("id", "role", "status", "content", "body", "note", "note_class", "author", "context_marker")
        link.snapshot = [{key: str(row[key]) if key == "body" else row[key] for key in keys} for row in rows]
    else:
        link.snapshot = []


# --- teams -----------------------------------------------------------------------------------


@transaction.atomic
def team_create(*, name: str, owner) -> Team:
    name = name.strip()
    if Team.objects.filter(name__iexact=name).exists():
        raise InvalidChange(f"A team called {name!r} already exists.")
    team = Team.objects.create(name=name)
    TeamMembership.objects.create(team=team, user=owner, role=TeamMembership.Role.OWNER)
    return team


@transaction.atomic
def team_add_member(*, team: Team, by, username: str, role: str = TeamMembership.Role.MEMBER) -> TeamMembership:
    _require_team_owner(team, by)
    if role not in TeamMembership.Role.values:
        raise InvalidChange("Choose owner or member.")
    user = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise InvalidChange(f"There is no one called {username.strip()!r} on this site.")
    membership, _ = TeamMembership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def team_remove_member(*, team: Team, by, user_id: int) -> None:
    """A team owner removes someone; anyone may leave. The last owner cannot go (the team would be unmanaged)."""
    if user_id != by.pk:
        _require_team_owner(team, by)
    membership = TeamMembership.objects.select_for_update().filter(team=team, user_id=user_id).first()
    if membership is None:
        return
    owners = TeamMembership.objects.filter(team=team, role=TeamMembership.Role.OWNER)
    if membership.role == TeamMembership.Role.OWNER and owners.count() == 1:
        raise InvalidChange("A team needs an owner: make someone else owner first.")
    membership.delete()


def _require_team_owner(team: Team, user) -> None:
    if not TeamMembership.objects.filter(team=team, user=user, role=TeamMembership.Role.OWNER).exists():
        raise Forbidden("Only a team owner can add or remove people.")


# --- replies ---------------------------------------------------------------------------------


def reply_begin(*, user, conversation_id: uuid.UUID, content: str, model_config_id: int | None = None) -> ReplyPlan:
    """Save the person's message and a streaming placeholder for the reply, before anything goes upstream.

    Four statements in one transaction; this runs on every send (see "The send path, in SQL").
    """
    with _one_reply_at_a_time():
        conversation, rows = _open_for_reply(user, conversation_id)
        model_id, spec = _reply_model(conversation, model_config_id, user)
        metering.limits_check(user)  # before anything is saved or sent
        user_message_id, reply_id = _sql_insert_turn(conversation.id, user.pk, content)
        _touch(conversation, model_id, title=conversation.title or title_from(content))
        user_message = Message(id=user_message_id, role=Message.Role.USER, content=content, author=user)
        turns = _turns(rows) + [{"id": user_message_id, "role": Message.Role.USER, "content": content}]
        history, context_start = _fit_context(spec, turns, reply_id)
        metering.usage_begin(user=user, reply_id=reply_id, model_config_id=model_id, spec=spec, history=history)
        return _plan(
            user, conversation, spec, reply_id, history,
            user_message=selectors.message_payload(user_message), context_start=context_start,
        )


def reply_regenerate_begin(*, user, conversation_id: uuid.UUID, model_config_id: int | None = None) -> ReplyPlan:
    """Replace the last reply (if any) with a new one to the last message the person sent."""
    with _one_reply_at_a_time():
        conversation, rows = _open_for_reply(user, conversation_id)
        model_id, spec = _reply_model(conversation, model_config_id, user)
        metering.limits_check(user)
        replaced_id = None
        if rows and rows[-1].role == Message.Role.ASSISTANT:
            replaced_id = rows.pop().id
            Message.objects.filter(pk=replaced_id).delete()
        if not any(row.role == Message.Role.USER for row in rows):
            raise NothingToRegenerate()
        reply = Message.objects.create(
            conversation_id=conversation.id, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
        )
        _touch(conversation, model_id, title=conversation.title)
        history, context_start = _fit_context(spec, _turns(rows), reply.id)
        metering.usage_begin(user=user, reply_id=reply.id, model_config_id=model_id, spec=spec, history=history)
        return _plan(user, conversation, spec, reply.id, history, replaced_id=replaced_id, context_start=context_start)


@contextmanager
def _one_reply_at_a_time():
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        # Another send won the race for the one streaming slot (see Message.Meta.constraints).
        raise ReplyInProgress() from None


class _Row(NamedTuple):
    id: int
    role: str
    content: str
    status: str


def _open_for_reply(user, conversation_id: uuid.UUID) -> tuple[Conversation, list[_Row]]:
    """The conversation, locked, and its messages, if this person may write in it.

    ConversationNotFound or Forbidden otherwise; ReplyInProgress if a live reply is streaming in it.
    """
    conversation = _sql_lock_conversation(conversation_id)
    if conversation is None:
        raise ConversationNotFound()
    # The owner needs no query; anyone else's role comes from the shares that reach them.
    permissions.check(permissions.role_of(user, conversation), permissions.Action.SEND)
    rows = _sql_messages(conversation.id)
    streaming = [row.id for row in rows if row.status == Message.Status.STREAMING]
    if streaming:
        cutoff = timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER)
        if Message.objects.filter(pk__in=streaming, updated__gte=cutoff).exists():
            raise ReplyInProgress()
        _close_orphaned(streaming)
    return conversation, rows


def _close_orphaned(reply_ids) -> None:
    """Close replies left streaming by a process that died: nothing has saved them for a while."""
    for message in Message.objects.filter(pk__in=list(reply_ids)):
        log.warning("Closing orphaned streaming reply %s", message.id)
        message.status = Message.Status.ERROR
        message.error = INTERRUPTED
        message.html = render_markdown(message.content)
        message.save(update_fields=["status", "error", "html", "updated"])


def _turns(rows: list[_Row]) -> list[dict]:
    """The history sent upstream: every message with text, in order (with its id, which is not sent)."""
    return [{"id": row.id, "role": row.role, "content": row.content} for row in rows if row.content]


def _fit_context(spec: ModelSpec, turns: list[dict], reply_id: int) -> tuple[list[dict], int | None]:
    """The turns that fit the model's context window, and the first one's id when older ones were left out.

    The reply remembers that id (Message.context_start), so the page can mark where the sent history starts.
    """
    kept, first_kept_id = context.fit(spec, turns)
    if first_kept_id is not None:
        Message.objects.filter(pk=reply_id).update(context_start=first_kept_id)
    return [{"role": turn["role"], "content": turn["content"]} for turn in kept], first_kept_id


def _reply_model(conversation: Conversation, picked_id: int | None, user) -> tuple[int | None, ModelSpec]:
    """The model to answer with, with the conversation's own settings applied (selectors.conversation_spec).

    The one picked, else the conversation's, else the default (None: the demo).
    """
    model_id, spec = _picked_model(conversation, picked_id, user)
    return model_id, selectors.conversation_spec(spec, conversation)


def _picked_model(conversation: Conversation, picked_id: int | None, user) -> tuple[int | None, ModelSpec]:
    """The sender's pick (ModelNotAvailable if it is disabled or not open to them), else the conversation's model."""
    if picked_id is not None:
        spec = selectors.usable_model_spec(user, picked_id)
        if spec is None:
            raise ModelNotAvailable()
        return picked_id, spec
    return selectors.conversation_model_for(user, conversation)


def _touch(conversation: Conversation, model_id: int | None, *, title: str) -> None:
    # The model is kept on the conversation, so later sends need not look up the default again.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_CONVERSATIONS} SET title = %s, model_config_id = %s, updated = %s WHERE id = %s",
            [title, model_id, _db_now(), _db_conversation_id(conversation.id)],
        )


def _plan(user, conversation, spec: ModelSpec, reply_id: int, history: list[dict], **extra) -> ReplyPlan:
    return ReplyPlan(
        conversation_id=conversation.id,
        reply_id=reply_id,
        spec=spec,
        history=history,
        user=selectors.user_pseudonym(user.pk),
        **extra,
    )


def replies_checkpoint(contents: dict[int, str]) -> None:
    """Save the text so far of several streaming replies at once. A reply that has finished meanwhile keeps its final text."""
    now = _db_now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {_MESSAGES} SET content = %s, updated = %s WHERE id = %s AND status = %s",
            [(content, now, reply_id, Message.Status.STREAMING) for reply_id, content in contents.items()],
        )


def reply_finish(
    *,
    reply_id: int,
    content: str,
    status: str,
    finish_reason: str | None = None,
    error: str = "",
    usage: Usage | None = None,
    model_name: str = "",
) -> dict:
    """The reply's final state, rendered once here so pages never render it again. Returns what was saved."""
    fields = {
        "content": content,
        "html": render_markdown(content),
        "status": status,
        "finish_reason": finish_reason or "",
        "error": error,
        "model_name": model_name[:200],
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_MESSAGES} SET {', '.join(f'{name} = %s' for name in fields)}, updated = %s WHERE id = %s",
            [*fields.values(), _db_now(), reply_id],
        )
        metering.usage_finish(reply_id=reply_id, usage=usage, content=content, model_name=model_name)
    return fields


# --- The send path, in SQL ----------------------------------------------------------------
# reply_begin, the checkpoints and reply_finish run for every reply, one at a time on the
# database thread, so their cost is added to every sender's wait. Compiling an ORM statement
# took longer than running it (about 0.4 ms each on the 2-core benchmark machine), so these
# few statements are written out: bench/stream_load.py measured 7.2 ms of CPU per send with
# them in the ORM. Who may write is still decided in one place, permissions.role_of (the
# same Share rows Conversation.objects.writable_by filters on); for the owner it needs no query.

_MESSAGES = Message._meta.db_table
_CONVERSATIONS = Conversation._meta.db_table


def _db_now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


def _db_conversation_id(conversation_id: uuid.UUID):
    return Conversation._meta.pk.get_db_prep_value(conversation_id, connection)


def _sql_lock_conversation(conversation_id: uuid.UUID) -> Conversation | None:
    """The conversation's row, locked until the transaction ends (PostgreSQL; SQLite locks the whole database)."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, title, model_config_id, owner_id, temperature, system_prompt FROM {_CONVERSATIONS}"
            f" WHERE id = %s{lock}",
            [_db_conversation_id(conversation_id)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return Conversation(
        id=conversation_id,
        title=row[1],
        model_config_id=row[2],
        owner_id=row[3],
        temperature=row[4],
        system_prompt=row[5],
    )


def _sql_messages(conversation_id: uuid.UUID) -> list[_Row]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, role, content, status FROM {_MESSAGES} WHERE conversation_id = %s ORDER BY id",
            [_db_conversation_id(conversation_id)],
        )
        return [_Row(*row) for row in cursor.fetchall()]


def _sql_insert_turn(conversation_id: uuid.UUID, author_id: int, content: str) -> tuple[int, int]:
    """The person's message and the reply's streaming placeholder, in one statement. Returns their ids."""
    now, conversation = _db_now(), _db_conversation_id(conversation_id)
    columns = "conversation_id, role, content, status, author_id, html, finish_reason, error, model_name, created, updated"
    row = "(%s, %s, %s, %s, %s, '', '', '', '', %s, %s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_MESSAGES} ({columns}) VALUES {row}, {row} RETURNING id, role",
            [
                *(conversation, Message.Role.USER, content, Message.Status.COMPLETE, author_id, now, now),
                *(conversation, Message.Role.ASSISTANT, "", Message.Status.STREAMING, None, now, now),
            ],
        )
        ids = {role: message_id for message_id, role in cursor.fetchall()}
    return ids[Message.Role.USER], ids[Message.Role.ASSISTANT]


def provider_sync_from_env() -> ModelConfig | None:
    """Create or update the provider and model named by OPENAI_API_KEY / _BASE_URL / _MODEL.

    Idempotent: running it on every start changes nothing the second time. The
    model becomes the default unless an admin already chose another.
    """
    if not settings.OPENAI_API_KEY:
        return None
    # OpenAI itself, or any server speaking its API (OpenRouter, vLLM, a proxy): the same URL and
    # Bearer key either way; the type only says whether OpenAI-only settings apply.
    kind = Provider.Kind.OPENAI if settings.OPENAI_BASE_URL.startswith("https://api.openai.com") else Provider.Kind.OPENAI_COMPATIBLE
    with transaction.atomic():
        provider, _ = Provider.objects.update_or_create(
            from_env=True,
            defaults={"base_url": settings.OPENAI_BASE_URL, "api_key": settings.OPENAI_API_KEY, "kind": kind},
            create_defaults={
                "name": _free_provider_name("OpenAI (from environment)"),
                "base_url": settings.OPENAI_BASE_URL,
                "api_key": settings.OPENAI_API_KEY,
                "kind": kind,
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


@transaction.atomic
def provider_import_models(*, provider: Provider, model_ids: list[str]) -> tuple[int, int]:
    """A disabled model config (display name = id) for each listed id not yet configured for `provider`.

    Returns (created, skipped). Disabled, so nothing reaches the model picker before an admin looks at it.
    """
    configured = set(ModelConfig.objects.filter(provider=provider).values_list("model", flat=True))
    max_id = ModelConfig._meta.get_field("model").max_length
    max_name = ModelConfig._meta.get_field("display_name").max_length
    new = []
    for model_id in dict.fromkeys(model_ids):
        if model_id in configured or len(model_id) > max_id:
            continue
        new.append(ModelConfig(provider=provider, model=model_id, display_name=model_id[:max_name], enabled=False))
    ModelConfig.objects.bulk_create(new)
    return len(new), len(model_ids) - len(new)


@transaction.atomic
def provider_keys_rotate() -> int:
    """Re-encrypt every stored provider key with the first of CHAT_ENCRYPTION_KEYS; returns how many.

    A key saved before encryption existed is encrypted too. Every key must still decrypt with one of
    CHAT_ENCRYPTION_KEYS, or nothing is changed (ImproperlyConfigured).
    """
    providers = list(Provider.objects.select_for_update().exclude(api_key=""))
    for provider in providers:
        provider.save(update_fields=["api_key"])  # the field encrypts with the first key
    return len(providers)


def _free_provider_name(name: str) -> str:
    taken = set(Provider.objects.filter(Q(name=name) | Q(name__startswith=f"{name} (")).values_list("name", flat=True))
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} ({number})", number + 1
    return candidate

"""Reads: what pages and the socket show, and what a reply is asked with. Plain data out."""

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, replace

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.safestring import mark_safe

from . import permissions
from .exceptions import ConversationNotFound, ModelNotAvailable, PublicLinkNotFound, TeamNotFound
from .llm import ModelSpec, demo
from .models import (
    Conversation,
    Message,
    ModelConfig,
    Preset,
    PublicLink,
    Share,
    SiteSettings,
    Team,
    TeamMembership,
)
from .rendering import render_plain

DEMO_SPEC = ModelSpec(base_url=demo.BASE_URL + "/v1", model=demo.MODEL, label="Demo model (offline)")

# A reconnecting socket is sent at most this many missed messages; past that the page reloads.
CATCH_UP_LIMIT = 200


@dataclass(frozen=True)
class ModelChoice:
    id: int | None  # None: the built-in demo model
    name: str
    is_default: bool
    description: str = ""
    temperature_range: tuple[float, float] | None = None  # a person may set their own within it; None: they may not
    custom_system_prompt: bool = False  # a person may add their own system prompt
    temperature: float | None = None  # the model's own (None: the server's default)


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


def conversation_list_for(user):
    """The sidebar: this person's own conversations, most recently active first."""
    return Conversation.objects.filter(owner=user).only("id", "title", "updated").order_by("-updated")


def shared_conversation_list_for(user):
    """The sidebar's "Shared with me": conversations others shared with this person or their teams."""
    return (
        Conversation.objects.shared_with(user)
        .select_related("owner")
        .only("id", "title", "updated", "owner__username")
        .order_by("-updated")
    )


def has_several_writers(conversation: Conversation) -> bool:
    """Whether anyone besides the owner may write, so messages need their author's name."""
    return conversation.shares.filter(role=Share.Role.COLLABORATOR).exists()


def share_list(conversation: Conversation) -> list[Share]:
    return list(conversation.shares.select_related("user", "team").order_by("created"))


def teams_of(user) -> list[Team]:
    return list(Team.objects.filter(memberships__user=user).order_by("name"))


def teammates_of(user) -> list:
    """People who share a team with this person: the only people they can share with."""
    teams = TeamMembership.objects.filter(user=user).values("team_id")
    return list(
        get_user_model()
        .objects.filter(team_memberships__team__in=teams, is_active=True)
        .exclude(pk=user.pk)
        .distinct()
        .order_by("username")
    )


def public_links_on() -> bool:
    return SiteSettings.current().public_links_enabled


def public_link_list(conversation: Conversation) -> list[PublicLink]:
    return list(conversation.public_links.order_by("created"))


def public_link_for(token: str) -> PublicLink:
    """The usable link with this token; PublicLinkNotFound when deleted, expired or links are off."""
    link = PublicLink.objects.select_related("conversation").filter(token=token).first()
    if link is None or not public_links_on():
        raise PublicLinkNotFound()
    if link.is_expired():
        raise PublicLinkNotFound("This link has expired.", expired=True)
    return link


def public_link_rows(link: PublicLink) -> list[dict]:
    """What a public link shows: the snapshot, or for a live link the conversation now."""
    if link.kind == PublicLink.Kind.LIVE:
        return message_rows(link.conversation)
    return [{**row, "body": mark_safe(row["body"])} for row in link.snapshot]  # stored sanitised


def public_link_gate(link: PublicLink, user, session) -> str | None:
    """What stands between this visitor and the link: "login", "password", or None (they may look)."""
    if link.audience == PublicLink.Audience.USERS and not user.is_authenticated:
        return "login"
    if link.password and session is not None and session.get(link_unlock_key(link)) == link_unlock_value(link):
        return None
    return "password" if link.password else None


def link_unlock_key(link: PublicLink) -> str:
    return f"public-link-{link.pk}"


def link_unlock_value(link: PublicLink) -> str:
    """Kept in the session once the password was right; changes when the password does."""
    return salted_hmac("public-link-unlock", link.password).hexdigest()[:32]


def live_link_for(token: str, user, session) -> PublicLink | None:
    """The live link whose conversation this visitor's socket may watch now, or None."""
    try:
        link = public_link_for(token)
    except PublicLinkNotFound:
        return None
    if link.kind != PublicLink.Kind.LIVE or public_link_gate(link, user, session) is not None:
        return None
    return link


def team_for(user, team_id: int) -> Team:
    """A team this person belongs to, with `.is_owner` set; TeamNotFound otherwise."""
    membership = TeamMembership.objects.select_related("team").filter(user=user, team_id=team_id).first()
    if membership is None:
        raise TeamNotFound()
    team = membership.team
    team.is_owner = membership.role == TeamMembership.Role.OWNER
    return team


def team_member_rows(team: Team) -> list[TeamMembership]:
    return list(team.memberships.select_related("user").order_by("user__username"))


def conversation_export(conversation: Conversation) -> dict:
    """Everything a person may take away from a conversation, as plain JSON-ready data."""
    messages = conversation.messages.order_by("id").values(
        "role", "content", "status", "error", "finish_reason", "model_name", "created", "author__username"
    )
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
            for row in messages
        ],
    }


def export_markdown(export: dict) -> str:
    lines = [f"# {export['title']}", "", f"Exported {export['exported'][:16].replace('T', ' ')} UTC.", ""]
    for message in export["messages"]:
        if message["role"] == Message.Role.USER:
            heading = message["author"] or "User"
        else:
            heading = "Assistant" + (f" ({message['model']})" if message["model"] else "")
        lines += [f"## {heading}", "", message["content"], ""]
        if message["error"]:
            lines += [f"> {message['error']}", ""]
    return "\n".join(lines)


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
            "id", "role", "status", "content", "html", "error", "finish_reason", "author__username", "context_start"
        )
    )
    context_start = next((row["context_start"] for row in reversed(rows) if row["role"] == Message.Role.ASSISTANT), None)
    for row in rows:
        row["body"] = message_html(row["role"], row["status"], row["content"], row["html"])
        row["note"] = row["error"] or FINISH_NOTES.get(row["finish_reason"], "")
        row["note_class"] = "message-error" if row["error"] else "message-note"
        row["author"] = row.pop("author__username")
        # The latest reply was sent only the messages from this one on: the marker goes before it.
        row["context_marker"] = row["id"] == context_start
    return rows



def resume_from(rows: list[dict]) -> int:
    """The message id a page's socket asks to catch up from (`?since=`): the first streaming
    reply, else the one after the last shown, so nothing that changed after the render is missed."""
    streaming = [row["id"] for row in rows if row["status"] == Message.Status.STREAMING]
    if streaming:
        return streaming[0]
    return rows[-1]["id"] + 1 if rows else 0


# The default model first, then the picker's order: who gets which model when none is picked.
DEFAULT_FIRST = ("-is_default", "order", "display_name", "pk")


def default_model_config() -> ModelConfig | None:
    """The enabled model marked default, else the first enabled one, else None (the demo answers)."""
    configs = list(ModelConfig.objects.enabled().order_by(*DEFAULT_FIRST)[:1])
    return configs[0] if configs else None


def model_choices(user) -> list[ModelChoice]:
    """What the model picker offers this person: enabled models open to them, by `order` then name.

    With no model enabled at all, only the demo; with models enabled but none open to them, nothing.
    """
    configs = list(ModelConfig.objects.filter(enabled=True).usable_by(user).order_by("order", "display_name", "pk"))
    if not configs:
        if ModelConfig.objects.filter(enabled=True).exists():
            return []
        return [ModelChoice(id=None, name=DEMO_SPEC.label, is_default=True)]
    default = next((config for config in configs if config.is_default), configs[0])
    return [
        ModelChoice(
            id=config.id,
            name=config.display_name,
            is_default=config is default,
            description=config.description,
            temperature_range=custom_temperature_range(config),
            custom_system_prompt=config.allow_custom_system_prompt,
            temperature=config.temperature,
        )
        for config in configs
    ]


def custom_temperature_range(config: ModelConfig) -> tuple[float, float] | None:
    """The bounds a person's own temperature must keep to; None when they may not set one (or it is never sent)."""
    if not config.allow_custom_temperature or "temperature" in (config.omit_parameters or ()):
        return None
    return (config.temperature_min, config.temperature_max)


def team_ids_of(user) -> frozenset[int]:
    return frozenset(TeamMembership.objects.filter(user_id=user.pk).values_list("team_id", flat=True))


def preset_choices(user) -> list[tuple[str, list[Preset]]]:
    """The presets a person may apply, grouped for a select: ("For everyone", [...]) and ("Mine", [...]), by name.

    A group with nothing in it is left out.
    """
    presets = Preset.objects.available_to(user).only("id", "name", "owner_id")
    presets = sorted(presets, key=lambda preset: preset.name.lower())
    groups = [
        ("For everyone", [preset for preset in presets if preset.owner_id is None]),
        ("Mine", [preset for preset in presets if preset.owner_id is not None]),
    ]
    return [(label, group) for label, group in groups if group]


def preset_list(user) -> list[Preset]:
    """The "My presets" page: everything a person may apply, with its model."""
    presets = Preset.objects.available_to(user).select_related("model_config")
    return sorted(presets, key=lambda preset: (preset.owner_id is not None, preset.name.lower()))


def model_spec(config: ModelConfig | None) -> ModelSpec:
    if config is None:
        return DEMO_SPEC
    return replace(
        provider_spec(config.provider),
        model=config.model,
        endpoint=config.endpoint,
        parameters=config.api_parameters(),
        system_prompt=config.system_prompt,
        label=config.display_name,
        omit=frozenset(config.omit_parameters),
        context_window=config.context_window,
        temperature_range=custom_temperature_range(config),
        custom_system_prompt=config.allow_custom_system_prompt,
    )


def conversation_spec(spec: ModelSpec, conversation: Conversation) -> ModelSpec:
    """The model's settings with the conversation's own (temperature, system prompt) where the model allows them.

    The temperature is kept within the model's bounds now, not only when it was set: the model or
    its bounds may have changed since. `spec` is shared (cached): a changed copy is returned.
    """
    changes = {}
    if conversation.temperature is not None and spec.temperature_range is not None and "temperature" not in spec.omit:
        low, high = spec.temperature_range
        changes["parameters"] = {**spec.parameters, "temperature": min(max(conversation.temperature, low), high)}
    own_prompt = conversation.system_prompt.strip() if spec.custom_system_prompt else ""
    if own_prompt:
        changes["system_prompt"] = f"{spec.system_prompt}\n\n{own_prompt}" if spec.system_prompt.strip() else own_prompt
    return replace(spec, **changes) if changes else spec


def provider_headers(provider) -> dict[str, str]:
    """The provider's own headers: OpenAI's organization and project, then the admin's extra headers."""
    headers = {}
    if provider.organization:
        headers["OpenAI-Organization"] = provider.organization
    if provider.project:
        headers["OpenAI-Project"] = provider.project
    headers.update(provider.extra_headers or {})
    return headers


def provider_spec(provider) -> ModelSpec:
    """The provider's connection settings with no model: for listing its models."""
    return ModelSpec(
        base_url=provider.base_url,
        api_key=provider.api_key,
        model="",
        timeout=provider.timeout,
        label=provider.name,
        kind=provider.kind,
        api_version=provider.api_version,
        headers=provider_headers(provider),
        connect_timeout=provider.connect_timeout,
    )


def provider_probe_spec(provider) -> ModelSpec:
    """What Test connection asks for one token: the provider's first enabled model (Azure: its deployment),
    capped at one token under the name that model takes; with no enabled model, no model (the first listed is used).
    """
    spec = provider_spec(provider)
    config = provider.model_configs.filter(enabled=True).order_by("order", "display_name", "pk").first()
    if config is None:
        return replace(spec, parameters={"max_tokens": 1})
    limit = "max_completion_tokens" if config.max_completion_tokens is not None else "max_tokens"
    return replace(
        spec,
        model=config.model,
        endpoint=config.endpoint,
        parameters={limit: 1},
        omit=frozenset(config.omit_parameters) - {limit},
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


def model_lineup() -> dict[int, frozenset[int]]:
    """Every enabled model's id, the default first and then in picker order, with the teams it is
    limited to (empty: everyone). Cached like the specs; do not change the dict."""

    def load():
        lineup: dict[int, set[int]] = {}
        rows = ModelConfig.objects.filter(enabled=True).order_by(*DEFAULT_FIRST).values_list("pk", "allowed_teams")
        for model_id, team_id in rows:
            teams = lineup.setdefault(model_id, set())
            if team_id is not None:
                teams.add(team_id)
        return {model_id: frozenset(teams) for model_id, teams in lineup.items()}

    return _cached("lineup", load)


def usable_model_spec(user, model_id: int) -> ModelSpec | None:
    """Model `model_id`'s settings if it is enabled and open to this person; None otherwise.

    Costs a query (the person's teams) only for a model limited to teams.
    """
    teams = model_lineup().get(model_id)
    if teams is None or (teams and not teams & team_ids_of(user)):
        return None
    return enabled_model_spec(model_id)


def default_model_for(user) -> tuple[int | None, ModelSpec]:
    """The model a person gets when none is picked: the default if open to them, else the first open to them
    in picker order; (None, the demo) when no model is enabled. ModelNotAvailable when none is open to them."""
    lineup = model_lineup()
    if not lineup:
        return None, DEMO_SPEC
    mine = None
    for model_id, teams in lineup.items():
        if teams:
            mine = team_ids_of(user) if mine is None else mine
            if not teams & mine:
                continue
        spec = enabled_model_spec(model_id)
        if spec is not None:
            return model_id, spec
    raise ModelNotAvailable("No model is open to you yet; ask an admin to let your team use one.")


def default_model_id(user) -> int | None:
    """default_model_for's id, None when it is the demo or no model is open to this person."""
    try:
        return default_model_for(user)[0]
    except ModelNotAvailable:
        return None


def conversation_model_for(user, conversation: Conversation) -> tuple[int | None, ModelSpec]:
    """The model a send in this conversation uses when none is picked: the conversation's own if it is
    still enabled and open to this person, else their default (see default_model_for)."""
    if conversation.model_config_id is not None:
        spec = usable_model_spec(user, conversation.model_config_id)
        if spec is not None:
            return conversation.model_config_id, spec
    return default_model_for(user)


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
        "context_start": message.context_start,
    }


def messages_since(conversation_id: uuid.UUID, since_id: int) -> list[dict] | None:
    """What a (re)connecting socket missed: messages from `since_id` on. None when too many to send.

    The caller has checked access (the consumer does, on connect and on every access change).
    """
    messages = Message.objects.filter(conversation_id=conversation_id, id__gte=since_id).select_related("author")
    rows = list(messages.order_by("id")[: CATCH_UP_LIMIT + 1])
    if len(rows) > CATCH_UP_LIMIT:
        return None
    return [message_payload(message) for message in rows]


def user_pseudonym(user_id: int) -> str:
    """A stable id for the API's `user` field that says nothing about who the person is."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"openai-user:{user_id}".encode(), hashlib.sha256)
    return "u-" + digest.hexdigest()[:32]

"""Reads about models: what the picker offers a person, and what a reply is asked with (a ModelSpec).

Model settings are cached per process for a few seconds (see MODEL_CACHE_SECONDS): every send needs them.
"""

import hashlib
import hmac
import time
from dataclasses import dataclass, replace

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ..exceptions import ModelNotAvailable
from ..llm import ModelSpec, demo
from ..models import Conversation, ModelConfig
from .teams import team_ids_of

DEMO_SPEC = ModelSpec(base_url=demo.BASE_URL + "/v1", model=demo.MODEL, label=_("Demo model (offline)"))

@dataclass(frozen=True)
class ModelChoice:
    id: int | None  # None: the built-in demo model
    name: str
    is_default: bool
    description: str = ""
    temperature_range: tuple[float, float] | None = None  # a person may set their own within it; None: they may not
    custom_system_prompt: bool = False  # a person may add their own system prompt
    temperature: float | None = None  # the model's own (None: the server's default)

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
        allow_internal=provider.allow_internal,
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

def user_pseudonym(user_id: int) -> str:
    """A stable id for the API's `user` field that says nothing about who the person is."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"openai-user:{user_id}".encode(), hashlib.sha256)
    return "u-" + digest.hexdigest()[:32]

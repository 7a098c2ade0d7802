"""Providers and models: the one from the environment (OPENAI_*), importing a provider's models, rotating keys."""

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from ..models import ModelConfig, Provider


def provider_sync_from_env() -> ModelConfig | None:
    """Create or update the provider and model named by OPENAI_API_KEY / _BASE_URL / _MODEL.

    Idempotent: running it on every start changes nothing the second time. The
    model becomes the default unless an admin already chose another.
    """
    if not settings.OPENAI_API_KEY:
        return None
    # OpenAI itself, or any server speaking its API (OpenRouter, vLLM, a proxy): the same URL and
    # Bearer key either way; the type only says whether OpenAI-only settings apply.
    openai = settings.OPENAI_BASE_URL.startswith("https://api.openai.com")
    kind = Provider.Kind.OPENAI if openai else Provider.Kind.OPENAI_COMPATIBLE
    # Whoever sets the environment runs the server: their address is trusted as a superuser's choice,
    # a local Ollama included (`OPENAI_BASE_URL=http://127.0.0.1:11434/v1 make run`).
    connection = {"base_url": settings.OPENAI_BASE_URL, "api_key": settings.OPENAI_API_KEY, "kind": kind, "allow_internal": True}
    with transaction.atomic():
        provider, _ = Provider.objects.update_or_create(
            from_env=True,
            defaults=connection,
            create_defaults={"name": _free_provider_name("OpenAI (from environment)"), **connection, "from_env": True},
        )
        config, _ = ModelConfig.objects.get_or_create(
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

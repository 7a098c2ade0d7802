"""Presets: a person's own, and applying one to a conversation (its model and settings, where the model allows)."""

from django.db import transaction
from django.utils.translation import gettext as _

from .. import selectors
from ..exceptions import InvalidChange, ModelNotAvailable
from ..models import Conversation, Preset
from .conversations import check_own_settings, conversation_create


@transaction.atomic
def conversation_preset_apply(*, conversation: Conversation, user, preset: Preset) -> list[str]:
    """Make the conversation start from `preset`: its model (if it has one open to this person), its temperature
    (kept within the model's bounds) and system prompt, where the model allows them. Returns what was left out."""
    skipped = []
    model_id, spec = selectors.providers.conversation_model_for(user, conversation)
    if preset.model_config_id is not None:
        preset_spec = selectors.providers.usable_model_spec(user, preset.model_config_id)
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
        raise InvalidChange(_("You already have a preset called “%(name)s”.") % {"name": name})
    if model_config_id is not None:
        spec = selectors.providers.usable_model_spec(owner, model_config_id)
        if spec is None:
            raise ModelNotAvailable()
        check_own_settings(spec, temperature=temperature, system_prompt=system_prompt)
    return Preset.objects.create(
        owner=owner,
        name=name,
        model_config_id=model_config_id,
        system_prompt=system_prompt.strip(),
        temperature=temperature,
    )


def preset_delete(*, preset: Preset) -> None:
    preset.delete()

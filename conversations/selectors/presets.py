"""Reads about presets: the ones a person may apply, grouped for a select, and the "My presets" page."""

from ..models import Preset


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

"""Presets: named starting points (a system prompt and settings), shared by admins or a person's own."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .providers import ModelConfig


class PresetQuerySet(models.QuerySet):
    def available_to(self, user):
        """Admins' presets (no owner) and this person's own."""
        return self.filter(Q(owner__isnull=True) | Q(owner=user))


class Preset(models.Model):
    """A named starting point: a system prompt and settings, chosen when starting or changing a conversation."""

    name = models.CharField(max_length=100, verbose_name=_("name"))
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="presets",
        help_text=_("Empty: offered to everyone (made by an admin)."), verbose_name=_("owner"),
    )
    model_config = models.ForeignKey(
        ModelConfig,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="presets",
        help_text=_("Empty: keep the conversation's model."), verbose_name=_("model config"),
    )
    system_prompt = models.TextField(blank=True, verbose_name=_("system prompt"))
    temperature = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)], verbose_name=_("temperature")
    )
    created = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    objects = PresetQuerySet.as_manager()

    class Meta:
        verbose_name = _("preset")
        verbose_name_plural = _("presets")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="one_preset_name_per_owner"),
            models.UniqueConstraint(fields=["name"], condition=Q(owner__isnull=True), name="one_shared_preset_name"),
        ]

    def __str__(self) -> str:
        return self.name

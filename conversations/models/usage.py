"""Usage and limits: what each reply used and cost, and the caps on a person or a team (see metering.py)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .chat import Message
from .providers import ModelConfig
from .teams import Team


class UsageRecord(models.Model):
    """One reply's use of a model: who, which team, how many tokens, what it cost.

    Created when the reply starts (so requests-per-minute limits see it at once) and completed when it ends.
    """

    class Kind(models.TextChoices):
        REPLY = "reply", _("Reply")
        TITLE = "title", _("Title")

    # A title's record has no message (a title is never shown as one); it counts against budgets all the same.
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.REPLY, verbose_name=_("kind"))
    message = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage", verbose_name=_("message")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="usage_records", verbose_name=_("user")
    )
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="usage_records",
        help_text=_("The person's team when the reply was made (the first they joined), whose budget it counts against."),
        verbose_name=_("team"),
    )
    model_config = models.ForeignKey(
        ModelConfig,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="usage_records",
        verbose_name=_("model config"),
    )
    model_name = models.CharField(max_length=200, blank=True, verbose_name=_("model name"))
    prompt_tokens = models.PositiveIntegerField(default=0, verbose_name=_("prompt tokens"))
    completion_tokens = models.PositiveIntegerField(default=0, verbose_name=_("completion tokens"))
    estimated = models.BooleanField(
        default=False,
        help_text=_("The server sent no usage; the tokens were estimated from the text."),
        verbose_name=_("estimated"),
    )
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0, verbose_name=_("cost"))
    created = models.DateTimeField(default=timezone.now, db_index=True, verbose_name=_("created"))

    class Meta:
        verbose_name = _("usage record")
        verbose_name_plural = _("usage records")
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["user", "created"], name="usage_user_created"),
            models.Index(fields=["team", "created"], name="usage_team_created"),
        ]

    def __str__(self) -> str:
        return gettext("%(user)s · %(model)s · %(tokens)s tokens") % {
            "user": self.user,
            "model": self.model_name or self.model_config,
            "tokens": self.total_tokens,
        }

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Limit(models.Model):
    """Caps for one person or one team (exactly one): tokens per day and month, requests per minute."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="limit", verbose_name=_("user")
    )
    team = models.OneToOneField(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="limit", verbose_name=_("team")
    )
    daily_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Tokens per day (UTC). Empty: no cap."), verbose_name=_("daily tokens")
    )
    monthly_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Tokens per calendar month (UTC). Empty: no cap."), verbose_name=_("monthly tokens")
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Replies started per minute. Empty: no cap."), verbose_name=_("requests per minute")
    )

    class Meta:
        verbose_name = _("limit")
        verbose_name_plural = _("limits")
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False),
                name="limit_for_user_or_team",
            ),
        ]

    def __str__(self) -> str:
        return gettext("Limits for %(who)s") % {"who": self.user or self.team}

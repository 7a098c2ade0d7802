"""Sharing: a conversation shared with a person or a team, public links, and the site-wide switch for links."""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .chat import Conversation
from .teams import Team, TeamMembership


class ShareQuerySet(models.QuerySet):
    def granting(self, user):
        """Shares that reach this person: made to them, or to a team they belong to."""
        teams = TeamMembership.objects.filter(user=user).values("team_id")
        return self.filter(Q(user=user) | Q(team__in=teams))


class Share(models.Model):
    """A conversation shared with one person or one team (exactly one of the two)."""

    class Role(models.TextChoices):
        VIEWER = "viewer", _("Viewer (reads and watches live)")
        COLLABORATOR = "collaborator", _("Collaborator (also sends, stops and regenerates)")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="shares", verbose_name=_("conversation")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="shares_received",
        verbose_name=_("user"),
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="shares", verbose_name=_("team"))
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER, verbose_name=_("role"))
    created = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    objects = ShareQuerySet.as_manager()

    class Meta:
        verbose_name = _("share")
        verbose_name_plural = _("shares")
        ordering = ["created"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False),
                name="share_with_user_or_team",
            ),
            models.UniqueConstraint(
                fields=["conversation", "user"], condition=Q(user__isnull=False), name="one_share_per_user"
            ),
            models.UniqueConstraint(
                fields=["conversation", "team"], condition=Q(team__isnull=False), name="one_share_per_team"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "conversation"], name="share_user"),
            models.Index(fields=["team", "conversation"], name="share_team"),
        ]

    def __str__(self) -> str:
        return gettext("%(conversation)s with %(target)s (%(role)s)") % {
            "conversation": self.conversation,
            "target": self.user or self.team,
            "role": self.get_role_display(),
        }

    @property
    def target(self):
        return self.user or self.team


def new_link_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


class PublicLinkQuerySet(models.QuerySet):
    def usable(self):
        """Links that open now: not expired (deleted links no longer exist)."""
        now = timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class PublicLink(models.Model):
    """A read-only link to a conversation, opened at /s/<token>/ without an account (unless limited to users)."""

    class Kind(models.TextChoices):
        SNAPSHOT = "snapshot", _("Snapshot (as it is now)")
        LIVE = "live", _("Live (always the current conversation)")

    class Audience(models.TextChoices):
        ANYONE = "anyone", _("Anyone with the link")
        USERS = "users", _("Only people logged in to this site")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="public_links", verbose_name=_("conversation")
    )
    token = models.CharField(max_length=64, unique=True, default=new_link_token, editable=False, verbose_name=_("token"))
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SNAPSHOT, verbose_name=_("kind"))
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.ANYONE, verbose_name=_("audience"))
    password = models.CharField(
        max_length=128, blank=True, help_text=_("A password hash; empty for none."), verbose_name=_("password")
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text=_("Empty: never expires."), verbose_name=_("expires at"))
    title = models.CharField(
        max_length=200, blank=True, help_text=_("The conversation's title when the snapshot was taken."), verbose_name=_("title")
    )
    snapshot = models.JSONField(
        default=list, blank=True, help_text=_("The messages as shown when the snapshot was taken."), verbose_name=_("snapshot")
    )
    snapshot_at = models.DateTimeField(null=True, blank=True, verbose_name=_("snapshot at"))
    created = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    objects = PublicLinkQuerySet.as_manager()

    class Meta:
        verbose_name_plural = _("public links")
        ordering = ["created"]
        verbose_name = _("public link")

    def __str__(self) -> str:
        return gettext("%(kind)s link to %(conversation)s") % {"kind": self.get_kind_display(), "conversation": self.conversation}

    @property
    def has_password(self) -> bool:
        return bool(self.password)

    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class SiteSettings(models.Model):
    """Site-wide switches, kept in the database so an admin can change them without a deploy. One row."""

    public_links_enabled = models.BooleanField(
        default=True,
        help_text=_("Let owners create public links, and let existing links open. Off: every /s/ link answers 404."),
        verbose_name=_("public links enabled"),
    )
    titles_by_model = models.BooleanField(
        default=True,
        help_text=_("After a conversation's first reply, ask a model for a short title (recorded in usage as a title)."
        " Off: conversations keep their first message's first line."), verbose_name=_("titles by model"),
    )
    title_model = models.ForeignKey(
        "ModelConfig",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The model that writes titles. Empty: the conversation's own model."), verbose_name=_("title model"),
    )

    class Meta:
        verbose_name = verbose_name_plural = _("site settings")

    def __str__(self) -> str:
        return gettext("Site settings")

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def current(cls) -> "SiteSettings":
        """The settings row; the defaults (unsaved) until an admin first saves it."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)

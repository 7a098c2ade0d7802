"""People's own settings (Profile) and invitations for people who have no account yet (AccountInvitation).

An AccountInvitation is not a TeamInvitation: that one asks an existing person to consent to joining a
team; this one lets someone without an account make one (and join the team it names, having accepted by
following the link). Its token is shown once, to the inviter or in an email, and only its hash is kept.
"""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Profile(models.Model):
    """What a person chose for themselves. Made on first save: until then, the defaults apply (Profile.default)."""

    class Theme(models.TextChoices):
        SYSTEM = "system", _("As the system")
        LIGHT = "light", _("Light")
        DARK = "dark", _("Dark")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile", verbose_name=_("user")
    )
    display_name = models.CharField(_("display name"), max_length=100, blank=True)
    # "" follows the browser (Accept-Language, or the language cookie); else a code from settings.LANGUAGES.
    language = models.CharField(_("language"), max_length=16, blank=True)
    theme = models.CharField(_("theme"), max_length=16, choices=Theme.choices, default=Theme.SYSTEM)

    class Meta:
        verbose_name = _("profile")
        verbose_name_plural = _("profiles")

    def __str__(self) -> str:
        return self.display_name or str(self.user)

    @classmethod
    def default(cls, user) -> "Profile":
        """The unsaved profile of someone who never saved one."""
        return cls(user=user)


def invitation_token_hash(token: str) -> str:
    """What is stored of a token. The token has 256 random bits, so a fast hash is as good as a slow one."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_invitation_token() -> str:
    return secrets.token_urlsafe(32)


class AccountInvitationQuerySet(models.QuerySet):
    def usable(self):
        """Invitations a link can still be accepted by: not used, not revoked, not expired."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires__gt=timezone.now())


class AccountInvitation(models.Model):
    """A single-use, expiring link that lets someone make an account, and joins them to `team` (if any)."""

    team = models.ForeignKey(
        "Team", null=True, blank=True, on_delete=models.CASCADE, related_name="account_invitations",
        help_text=_("The team they join; empty for an account in no team."), verbose_name=_("team"),
    )
    email = models.EmailField(
        blank=True, help_text=_("Where the link was sent; empty for a link the inviter passed on."), verbose_name=_("email")
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False, verbose_name=_("token hash"))
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="account_invitations_sent",
        verbose_name=_("invited by"),
    )
    created = models.DateTimeField(default=timezone.now, verbose_name=_("created"))
    expires = models.DateTimeField(verbose_name=_("expires"))
    accepted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("accepted at"))
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="account_invitation_used",
        verbose_name=_("accepted by"),
    )
    revoked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("revoked at"))

    objects = AccountInvitationQuerySet.as_manager()

    class Meta:
        verbose_name_plural = _("account invitations")
        ordering = ["-created"]
        verbose_name = _("account invitation")
        indexes = [
            models.Index(fields=["team", "created"], name="account_invitation_team"),
            models.Index(fields=["invited_by", "created"], name="account_invitation_inviter"),
        ]

    def __str__(self) -> str:
        return f"{self.email or 'link'} to {self.team or 'no team'}"

    @property
    def state(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires <= timezone.now():
            return "expired"
        return "pending"

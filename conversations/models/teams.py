"""Teams: people who work together, and may share conversations with each other and with the team.

Joining takes the person's consent: an owner sends a TeamInvitation, and the TeamMembership exists
only once the invitee accepts (an admin adding someone in the admin is an admin's act, and needs none).
A TeamBlock keeps a team's invitations from reaching someone.
"""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class Team(models.Model):
    """People who work together. Teammates can share conversations with each other and with the team."""

    name = models.CharField(max_length=100, unique=True, verbose_name=_("name"))
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="TeamMembership", related_name="teams", verbose_name=_("members")
    )
    created = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", _("Owner (adds and removes people)")
        MEMBER = "member", _("Member")

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("team"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships", verbose_name=_("user")
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER, verbose_name=_("role"))
    created = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    class Meta:
        verbose_name_plural = _("team members")
        ordering = ["team", "user"]
        verbose_name = _("team member")
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team")]
        indexes = [models.Index(fields=["user", "team"], name="membership_user_team")]

    def __str__(self) -> str:
        role = self.get_role_display()
        return gettext("%(user)s in %(team)s (%(role)s)") % {"user": self.user, "team": self.team, "role": role}


class TeamInvitationQuerySet(models.QuerySet):
    def open(self):
        """Invitations still waiting for an answer: pending, and sent less than TeamInvitation.OPEN_FOR ago."""
        return self.filter(status=TeamInvitation.Status.PENDING, created__gt=timezone.now() - TeamInvitation.OPEN_FOR)

    def lapsed(self):
        """Pending invitations nobody answered in time: no longer shown, and they cannot be accepted."""
        return self.filter(status=TeamInvitation.Status.PENDING, created__lte=timezone.now() - TeamInvitation.OPEN_FOR)


class TeamInvitation(models.Model):
    """A team owner's invitation to join; the membership exists only once the invitee accepts.

    Every invitation an owner sends is a row, also one that reaches no one (no active account has
    that name, the person blocked the team, or already has an invitation from it): its `invitee` is
    empty. So an invitation costs the same work and counts the same against the limits whatever the
    name, and neither the reply nor the limits tell an owner whether a username exists.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACCEPTED = "accepted", _("Accepted")
        DECLINED = "declined", _("Declined")

    # An unanswered invitation lapses after this long; a lapsed one is no longer shown and cannot be accepted.
    OPEN_FOR = timedelta(days=14)

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations", verbose_name=_("team"))
    invitee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="team_invitations",
        help_text=_("Empty when the invitation reached no one."), verbose_name=_("invitee"),
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="team_invitations_sent",
        verbose_name=_("invited by"),
    )
    role = models.CharField(
        max_length=16, choices=TeamMembership.Role.choices, default=TeamMembership.Role.MEMBER, verbose_name=_("role")
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, verbose_name=_("status"))
    # Not auto_now_add: tests date invitations in the past to see them lapse.
    created = models.DateTimeField(default=timezone.now, verbose_name=_("created"))

    objects = TeamInvitationQuerySet.as_manager()

    class Meta:
        verbose_name = _("team invitation")
        verbose_name_plural = _("team invitations")
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "invitee"],
                condition=Q(status="pending", invitee__isnull=False),
                name="one_pending_invitation_per_team_and_person",
            )
        ]
        indexes = [
            models.Index(fields=["invitee", "status", "created"], name="invitation_invitee"),
            models.Index(fields=["invited_by", "created"], name="invitation_inviter"),
            models.Index(fields=["team", "created"], name="invitation_team"),
        ]

    def __str__(self) -> str:
        return gettext("%(invitee)s to %(team)s (%(status)s)") % {
            "invitee": self.invitee or gettext("no one"),
            "team": self.team,
            "status": self.get_status_display(),
        }


class TeamBlock(models.Model):
    """A person refuses a team's invitations: its owners' invitations no longer reach them until they unblock it."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="blocks", verbose_name=_("team"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_blocks", verbose_name=_("user")
    )
    created = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))

    class Meta:
        verbose_name = _("team block")
        verbose_name_plural = _("team blocks")
        ordering = ["team"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_block_per_team_and_person")]

    def __str__(self) -> str:
        return gettext("%(user)s blocked %(team)s") % {"user": self.user, "team": self.team}

"""Teams: creating one, inviting people (who join only by accepting), blocking a team, and leaving or removing people.

Whether a username exists is never told to an inviter: team_invite answers every name alike, writes one
invitation row for every name (one that reaches no one has no invitee), and the limits count those rows.
Access changes (a membership made or ended) reach open sockets through signals.py, after the commit.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..exceptions import Forbidden, InvalidChange, InvitationNotFound, TeamNotFound, TooManyInvitations
from ..models import Team, TeamBlock, TeamInvitation, TeamMembership

# Invitation limits. There is no sign-up page (admins make accounts), so the risk is a person with an
# account inviting many others, over and over, to pour a team's shares into their sidebars.
# One person sends at most this many invitations a day, across their teams: more than a team being
# set up needs (a bigger team can be filled by an admin in the admin), few enough that nobody is flooded.
INVITATIONS_PER_INVITER_PER_DAY = 20
# A team sends at most this many while invitations stay open (TeamInvitation.OPEN_FOR): several owners
# together cannot reach more people than that.
INVITATIONS_PER_TEAM = 50
# A person sees at most this many open invitations; more reach no one until they answer some.
# Invitations from many teams cannot fill their Teams page.
OPEN_INVITATIONS_PER_PERSON = 20


@transaction.atomic
def team_create(*, name: str, owner) -> Team:
    name = name.strip()
    if Team.objects.filter(name__iexact=name).exists():
        raise InvalidChange(_("A team called “%(name)s” already exists.") % {"name": name})
    team = Team.objects.create(name=name)
    TeamMembership.objects.create(team=team, user=owner, role=TeamMembership.Role.OWNER)
    return team


@transaction.atomic
def team_invite(*, team: Team, by, username: str, role: str = TeamMembership.Role.MEMBER) -> TeamMembership | None:
    """A team owner invites the person called `username` to join as `role`.

    Returns the membership when they are in the team already (their role becomes `role`: the owner sees
    who is in the team anyway); None otherwise, whether an invitation reached anyone or not. For every name
    that is not a member's, the same work is done: one query finds the person with what decides whether
    the invitation reaches them, and one row is written (see TeamInvitation).
    """
    _require_team_owner(team, by)
    if role not in TeamMembership.Role.values:
        raise InvalidChange(_("Choose owner or member."))
    # Invitations to one team are made one at a time: the limits hold, and two at once cannot both be pending.
    Team.objects.select_for_update().filter(pk=team.pk).first()
    person = _invitation_target(team, username.strip())
    if person is not None and person.member_role is not None:
        return _membership_role_change(team=team, user=person, role=role)
    _check_invitation_limits(team, by)
    reaches = (
        person is not None
        and not person.blocked_team
        and not person.has_open_invitation
        and person.open_invitations < OPEN_INVITATIONS_PER_PERSON
    )
    if reaches and person.lapsed_invitation_id is not None:
        # The one pending row per team and person lapsed unanswered: it is sent again rather than doubled.
        TeamInvitation.objects.filter(pk=person.lapsed_invitation_id).update(
            invited_by=by, role=role, created=timezone.now()
        )
    else:
        TeamInvitation.objects.create(team=team, invitee=person if reaches else None, invited_by=by, role=role)
    return None


def _check_invitation_limits(team: Team, by) -> None:
    """TooManyInvitations when `by` or the team has sent its share; the counts include invitations that
    reached no one, so hitting a limit says nothing about who exists."""
    now = timezone.now()
    sent_by_person = TeamInvitation.objects.filter(invited_by=by, created__gt=now - timedelta(days=1)).count()
    if sent_by_person >= INVITATIONS_PER_INVITER_PER_DAY:
        raise TooManyInvitations(
            ngettext(
                "You have sent %(count)d invitation in the last 24 hours, the most allowed. Try again tomorrow.",
                "You have sent %(count)d invitations in the last 24 hours, the most allowed. Try again tomorrow.",
                sent_by_person,
            )
            % {"count": sent_by_person}
        )
    sent_by_team = TeamInvitation.objects.filter(team=team, created__gt=now - TeamInvitation.OPEN_FOR).count()
    if sent_by_team >= INVITATIONS_PER_TEAM:
        days = TeamInvitation.OPEN_FOR.days
        raise TooManyInvitations(
            ngettext(
                "%(team)s has sent %(count)d invitations in the last %(days)d day, the most allowed.",
                "%(team)s has sent %(count)d invitations in the last %(days)d days, the most allowed.",
                days,
            )
            % {"team": team.name, "count": sent_by_team, "days": days}
        )


def _invitation_target(team: Team, username: str):
    """The active person called `username`, or None, with what decides whether an invitation reaches them:
    `member_role`, `blocked_team`, `has_open_invitation`, `open_invitations` (from any team) and
    `lapsed_invitation_id`. One query, so finding out costs the same whoever is asked about."""
    open_invitations = TeamInvitation.objects.open().filter(invitee=OuterRef("pk"))
    return (
        get_user_model()
        .objects.filter(username=username, is_active=True)
        .annotate(
            member_role=Subquery(TeamMembership.objects.filter(team=team, user=OuterRef("pk")).values("role")[:1]),
            blocked_team=Exists(TeamBlock.objects.filter(team=team, user=OuterRef("pk"))),
            has_open_invitation=Exists(open_invitations.filter(team=team)),
            open_invitations=Coalesce(
                Subquery(open_invitations.order_by().values("invitee").annotate(count=Count("pk")).values("count")[:1]),
                0,
            ),
            lapsed_invitation_id=Subquery(
                TeamInvitation.objects.lapsed().filter(team=team, invitee=OuterRef("pk")).values("pk")[:1]
            ),
        )
        .first()
    )


def _membership_role_change(*, team: Team, user, role: str) -> TeamMembership:
    membership = TeamMembership.objects.select_for_update().get(team=team, user=user)
    if membership.role != role:
        if membership.role == TeamMembership.Role.OWNER:
            _require_another_owner(team)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def invitation_accept(*, invitation_id: int, by) -> TeamMembership:
    """`by` accepts their open invitation: from now on they are in the team, with the role it offered."""
    invitation = _open_invitation_of(by, invitation_id)
    invitation.status = TeamInvitation.Status.ACCEPTED
    invitation.save(update_fields=["status"])
    # An admin may have added them meanwhile: that membership, and its role, stand.
    membership, _created = TeamMembership.objects.get_or_create(
        team_id=invitation.team_id, user=by, defaults={"role": invitation.role}
    )
    return membership


@transaction.atomic
def invitation_decline(*, invitation_id: int, by) -> Team:
    """`by` says no to an open invitation. The team's owners are not told, and may invite them again."""
    return _declined(by, invitation_id)


@transaction.atomic
def team_block(*, invitation_id: int, by) -> Team:
    """`by` declines an open invitation and blocks its team: its owners' invitations no longer reach them."""
    team = _declined(by, invitation_id)
    TeamBlock.objects.get_or_create(team=team, user=by)
    return team


@transaction.atomic
def team_unblock(*, team_id: int, by) -> Team:
    """The team's owners may invite `by` again. TeamNotFound unless `by` had blocked it."""
    block = TeamBlock.objects.select_related("team").filter(team_id=team_id, user=by).first()
    if block is None:
        raise TeamNotFound()
    block.delete()
    return block.team


def _declined(person, invitation_id: int) -> Team:
    invitation = _open_invitation_of(person, invitation_id)
    invitation.status = TeamInvitation.Status.DECLINED
    invitation.save(update_fields=["status"])
    return invitation.team


def _open_invitation_of(person, invitation_id: int) -> TeamInvitation:
    """The invitation, locked, if it is open and `person`'s; InvitationNotFound otherwise (answered, lapsed, another's)."""
    invitation = (
        TeamInvitation.objects.open()
        .select_for_update()
        .select_related("team")
        .filter(pk=invitation_id, invitee=person)
        .first()
    )
    if invitation is None:
        raise InvitationNotFound()
    return invitation


@transaction.atomic
def team_remove_member(*, team: Team, by, user_id: int) -> None:
    """A team owner removes someone; anyone may leave. The last owner cannot go (the team would be unmanaged)."""
    if user_id != by.pk:
        _require_team_owner(team, by)
    membership = TeamMembership.objects.select_for_update().filter(team=team, user_id=user_id).first()
    if membership is None:
        return
    if membership.role == TeamMembership.Role.OWNER:
        _require_another_owner(team)
    membership.delete()


def _require_another_owner(team: Team) -> None:
    """Before an owner leaves or stops being one: InvalidChange if they are the team's only owner."""
    if TeamMembership.objects.filter(team=team, role=TeamMembership.Role.OWNER).count() == 1:
        raise InvalidChange(_("A team needs an owner: make someone else owner first."))


def _require_team_owner(team: Team, user) -> None:
    if not TeamMembership.objects.filter(team=team, user=user, role=TeamMembership.Role.OWNER).exists():
        raise Forbidden(_("Only a team owner can invite or remove people."))

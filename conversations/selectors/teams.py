"""Reads about teams: the teams a person is in, their teammates, a team's members, and a person's invitations and blocks."""

from django.contrib.auth import get_user_model

from ..exceptions import TeamNotFound
from ..models import Team, TeamInvitation, TeamMembership


def teams_of(user) -> list[Team]:
    return list(Team.objects.filter(memberships__user=user).order_by("name"))


def teammates_of(user) -> list:
    """People who share a team with this person: the only people they can share with."""
    teams = TeamMembership.objects.filter(user=user).values("team_id")
    return list(
        get_user_model()
        .objects.filter(team_memberships__team__in=teams, is_active=True)
        .exclude(pk=user.pk)
        .distinct()
        .order_by("username")
    )

def team_for(user, team_id: int) -> Team:
    """A team this person belongs to, with `.is_owner` set; TeamNotFound otherwise."""
    membership = TeamMembership.objects.select_related("team").filter(user=user, team_id=team_id).first()
    if membership is None:
        raise TeamNotFound()
    team = membership.team
    team.is_owner = membership.role == TeamMembership.Role.OWNER
    return team


def team_member_rows(team: Team) -> list[TeamMembership]:
    return list(team.memberships.select_related("user").order_by("user__username"))

def team_ids_of(user) -> frozenset[int]:
    return frozenset(TeamMembership.objects.filter(user_id=user.pk).values_list("team_id", flat=True))


def open_invitations_for(user) -> list[TeamInvitation]:
    """The invitations waiting for this person's answer, newest first, with their team and who sent them."""
    return list(TeamInvitation.objects.open().filter(invitee=user).select_related("team", "invited_by"))


def open_invitation_count(user) -> int:
    """How many invitations wait for this person's answer (the sidebar shows the number)."""
    return TeamInvitation.objects.open().filter(invitee=user).count()


def blocked_teams_of(user) -> list[Team]:
    """The teams whose invitations this person refuses."""
    return list(Team.objects.filter(blocks__user_id=user.pk).order_by("name"))

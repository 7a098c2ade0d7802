"""Teams: creating one, and its owners adding and removing people."""

from django.contrib.auth import get_user_model
from django.db import transaction

from ..exceptions import Forbidden, InvalidChange
from ..models import Team, TeamMembership


@transaction.atomic
def team_create(*, name: str, owner) -> Team:
    name = name.strip()
    if Team.objects.filter(name__iexact=name).exists():
        raise InvalidChange(f"A team called {name!r} already exists.")
    team = Team.objects.create(name=name)
    TeamMembership.objects.create(team=team, user=owner, role=TeamMembership.Role.OWNER)
    return team


@transaction.atomic
def team_add_member(*, team: Team, by, username: str, role: str = TeamMembership.Role.MEMBER) -> TeamMembership:
    _require_team_owner(team, by)
    if role not in TeamMembership.Role.values:
        raise InvalidChange("Choose owner or member.")
    user = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise InvalidChange(f"There is no one called {username.strip()!r} on this site.")
    membership, _ = TeamMembership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def team_remove_member(*, team: Team, by, user_id: int) -> None:
    """A team owner removes someone; anyone may leave. The last owner cannot go (the team would be unmanaged)."""
    if user_id != by.pk:
        _require_team_owner(team, by)
    membership = TeamMembership.objects.select_for_update().filter(team=team, user_id=user_id).first()
    if membership is None:
        return
    owners = TeamMembership.objects.filter(team=team, role=TeamMembership.Role.OWNER)
    if membership.role == TeamMembership.Role.OWNER and owners.count() == 1:
        raise InvalidChange("A team needs an owner: make someone else owner first.")
    membership.delete()


def _require_team_owner(team: Team, user) -> None:
    if not TeamMembership.objects.filter(team=team, user=user, role=TeamMembership.Role.OWNER).exists():
        raise Forbidden("Only a team owner can add or remove people.")

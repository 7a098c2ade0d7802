"""Reads about people's accounts: a person's profile, and account invitations (by their token, or a team's)."""

from ..models import AccountInvitation, Profile, Team, invitation_token_hash


def profile_of(user) -> Profile:
    """This person's profile; an unsaved one with the defaults if they never saved theirs."""
    return Profile.objects.filter(user=user).first() or Profile.default(user)


def display_name_of(user) -> str:
    """What the app calls a person: their display name, else their username."""
    profile = Profile.objects.filter(user=user).first()
    return (profile.display_name if profile else "") or user.get_username()


def account_invitation_for(token: str) -> AccountInvitation | None:
    """The invitation this token opens, whatever its state (accepted, revoked, expired), with its team and
    inviter; None for a token that opens none."""
    return (
        AccountInvitation.objects.select_related("team", "invited_by", "invited_by__profile")
        .filter(token_hash=invitation_token_hash(token))
        .first()
    )


def pending_account_invitations(team: Team) -> list[AccountInvitation]:
    """The team's invitations that can still be used, newest first, with who sent them."""
    return list(AccountInvitation.objects.usable().filter(team=team).select_related("invited_by"))

"""People's accounts: their profile, and account invitations (a single-use, expiring link to make an account).

Who may invite: a team's owners, to their team; staff with the "add account invitation" permission, to any team
or none. The token leaves this module once, to the caller (who shows it or emails it); only its hash is kept.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..exceptions import AccountInvitationGone, Forbidden, InvalidChange, TooManyInvitations
from ..models import (
    AccountInvitation,
    Profile,
    Team,
    TeamMembership,
    invitation_token_hash,
    new_invitation_token,
)

# A team owner makes at most this many account invitations a day (staff are not counted): enough to bring a
# team in, few enough that one account cannot mint links (or send emails) without end.
ACCOUNT_INVITATIONS_PER_INVITER_PER_DAY = 20


@transaction.atomic
def profile_update(*, user, display_name: str, language: str, theme: str) -> Profile:
    """Save what this person chose: their display name, language ("" follows the browser) and theme."""
    if language and language not in dict(settings.LANGUAGES):
        raise InvalidChange(_("Choose one of the languages offered."))
    if theme not in Profile.Theme.values:
        raise InvalidChange(_("Choose one of the themes offered."))
    profile, _created = Profile.objects.update_or_create(
        user=user, defaults={"display_name": display_name.strip(), "language": language, "theme": theme}
    )
    return profile


@transaction.atomic
def profile_language_set(*, user, language: str) -> Profile:
    """Only the language (the switcher's one click)."""
    if language and language not in dict(settings.LANGUAGES):
        raise InvalidChange(_("Choose one of the languages offered."))
    profile, _created = Profile.objects.update_or_create(user=user, defaults={"language": language})
    return profile


def may_invite(user, team: Team | None) -> bool:
    """Staff who may add account invitations, to any team or none; a team's owners, to their team."""
    if user.is_active and user.has_perm("conversations.add_accountinvitation"):
        return True
    return team is not None and TeamMembership.objects.filter(team=team, user=user, role=TeamMembership.Role.OWNER).exists()


@transaction.atomic
def account_invitation_create(*, by, team: Team | None, email: str = "") -> tuple[AccountInvitation, str]:
    """A new invitation and its token (shown or sent once, never stored). Forbidden unless `by` may_invite."""
    if not may_invite(by, team):
        raise Forbidden(_("Only a team owner or an admin can invite people."))
    now = timezone.now()
    if not by.has_perm("conversations.add_accountinvitation"):
        made = AccountInvitation.objects.filter(invited_by=by, created__gt=now - timedelta(days=1)).count()
        if made >= ACCOUNT_INVITATIONS_PER_INVITER_PER_DAY:
            raise TooManyInvitations(
                ngettext(
                    "You have made %(count)d invitation in the last 24 hours, the most allowed. Try again tomorrow.",
                    "You have made %(count)d invitations in the last 24 hours, the most allowed. Try again tomorrow.",
                    made,
                )
                % {"count": made}
            )
    token = new_invitation_token()
    invitation = AccountInvitation.objects.create(
        team=team,
        email=email.strip(),
        token_hash=invitation_token_hash(token),
        invited_by=by,
        created=now,
        expires=now + timedelta(days=settings.CHAT_INVITATION_DAYS),
    )
    return invitation, token


@transaction.atomic
def account_invitation_revoke(*, invitation_id: int, by) -> AccountInvitation:
    """The link stops working. Forbidden unless `by` may invite to its team; InvalidChange once it was used."""
    invitation = AccountInvitation.objects.select_for_update(of=("self",)).select_related("team").filter(pk=invitation_id).first()
    if invitation is None or not may_invite(by, invitation.team):
        raise Forbidden(_("Only a team owner or an admin can revoke an invitation."))
    if invitation.accepted_at is not None:
        raise InvalidChange(_("This invitation was used already."))
    if invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation


def _claim(token: str, user) -> AccountInvitation:
    """Mark the token's invitation used by `user`, if it still can be: one conditional UPDATE, so two people
    with the same link cannot both get in, on any database. AccountInvitationGone otherwise."""
    now = timezone.now()
    token_hash = invitation_token_hash(token)
    claimed = AccountInvitation.objects.usable().filter(token_hash=token_hash).update(accepted_at=now, accepted_by=user)
    invitation = AccountInvitation.objects.select_related("team").filter(token_hash=token_hash).first()
    if not claimed:
        raise AccountInvitationGone(state=invitation.state if invitation else "unknown")
    return invitation


@transaction.atomic
def account_invitation_accept(*, token: str, username: str, password: str, display_name: str = ""):
    """Someone without an account accepts: their account, profile and membership of the invitation's team
    (as a member: following the link was their consent). The caller validated the username and password.
    AccountInvitationGone (and nothing made) if the link can no longer be used."""
    invitation = AccountInvitation.objects.usable().filter(token_hash=invitation_token_hash(token)).first()
    if invitation is None:
        _claim(token, None)  # raises, saying why
    user = get_user_model().objects.create_user(username=username, email=invitation.email, password=password)
    invitation = _claim(token, user)
    Profile.objects.create(user=user, display_name=display_name.strip())
    if invitation.team_id is not None:
        TeamMembership.objects.create(team_id=invitation.team_id, user=user, role=TeamMembership.Role.MEMBER)
    return user


@transaction.atomic
def account_invitation_join(*, token: str, user) -> AccountInvitation:
    """Someone with an account follows the link and chooses to join its team with that account."""
    invitation = _claim(token, user)
    if invitation.team_id is not None:
        TeamMembership.objects.get_or_create(
            team_id=invitation.team_id, user=user, defaults={"role": TeamMembership.Role.MEMBER}
        )
    return invitation


def account_invitations_use_by_email(*, user, email: str) -> list[AccountInvitation]:
    """A new account made by single sign-on for an address that was invited: each pending invitation to it is
    used by that account, which joins the invitations' teams (signing in was their acceptance)."""
    used = []
    for invitation in AccountInvitation.objects.usable().filter(email__iexact=email).select_related("team"):
        if AccountInvitation.objects.usable().filter(pk=invitation.pk).update(accepted_at=timezone.now(), accepted_by=user):
            if invitation.team_id is not None:
                TeamMembership.objects.get_or_create(
                    team_id=invitation.team_id, user=user, defaults={"role": TeamMembership.Role.MEMBER}
                )
            used.append(invitation)
    return used

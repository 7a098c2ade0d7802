"""Single sign-on: which account a person the identity provider vouches for signs in to, and their teams.

The protocol (redirects, tokens, signatures) is mozilla-django-oidc's, in conversations/oidc.py; this
module only sees the verified claims. A person is found by their link (issuer + subject), else by an
email address the provider says is verified (then linked), else gets a new account if
may_create_account() allows. The groups claim, when configured, joins them to teams.
"""

import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _

from ..models import AccountInvitation, ExternalIdentity, Profile, Team, TeamMembership
from .accounts import account_invitations_use_by_email

USERNAME_MAX = 150


class SignInRefused(Exception):
    """The provider vouched for the person, but they may not sign in here; `message` says why, for them."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def may_create_account(claims: dict) -> bool:
    """Whether a person with no account here gets one at this sign-in (CHAT_OIDC_CREATE_USERS).

    The one place that decides it, so that other rules (say, only people with an invitation) go here.
    With CHAT_OIDC_EMAIL_DOMAINS, only people whose verified address is in one of them.
    """
    mode = settings.CHAT_OIDC_CREATE_USERS
    if not mode:
        return False
    email = verified_email(claims)
    if settings.CHAT_OIDC_EMAIL_DOMAINS and email.rpartition("@")[2].lower() not in settings.CHAT_OIDC_EMAIL_DOMAINS:
        return False
    if mode == "invited":
        return bool(email) and AccountInvitation.objects.usable().filter(email__iexact=email).exists()
    return True


def verified_email(claims: dict) -> str:
    """The person's email address if the provider vouches for it (email_verified, or CHAT_OIDC_TRUST_EMAIL), else ""."""
    email = str(claims.get("email") or "").strip()
    verified = claims.get("email_verified") in (True, "true") or settings.CHAT_OIDC_TRUST_EMAIL
    return email if email and verified else ""


@transaction.atomic
def sso_sign_in(*, issuer: str, claims: dict):
    """The account the person behind `claims` signs in to, created or updated from the claims.

    SignInRefused when there is none and none may be made, when their address matches several
    accounts, or when the account is turned off.
    """
    subject = str(claims.get("sub") or "")
    if not subject:
        raise SignInRefused(_("The sign-in service did not say who you are."))
    identity = ExternalIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    user = identity.user if identity else _user_by_email(claims)
    if user is None:
        if not may_create_account(claims):
            raise SignInRefused(
                _("There is no account for you here yet. Ask an administrator to make one, then sign in again.")
            )
        user = _user_create(claims)
    if not user.is_active:
        raise SignInRefused(_("Your account here is turned off. Ask an administrator."))
    if identity is None:
        identity = ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    else:
        identity.save(update_fields=["last_sign_in"])
    _user_update(user, claims)
    if settings.CHAT_OIDC_GROUPS_CLAIM:
        sso_teams_sync(user=user, groups=claim_groups(claims))
    return user


def _user_by_email(claims: dict):
    email = verified_email(claims)
    if not email:
        return None
    users = list(get_user_model().objects.filter(email__iexact=email)[:2])
    if len(users) > 1:
        raise SignInRefused(
            _("Several accounts here have your email address, so none was chosen. Ask an administrator.")
        )
    return users[0] if users else None


def _user_create(claims: dict):
    """A new account, named as the provider names the person; invitations sent to their address are used now."""
    email = verified_email(claims)
    user = get_user_model().objects.create_user(username=available_username(claims), email=email)
    Profile.objects.create(user=user, display_name=str(claims.get("name") or "")[:100])
    if email:
        account_invitations_use_by_email(user=user, email=email)
    return user


def available_username(claims: dict) -> str:
    """A free username from preferred_username, else the email's local part, else the subject.

    Never an existing account's: a provider's "admin" is not this site's admin (it becomes "admin-2").
    """
    User = get_user_model()
    email = str(claims.get("email") or "")
    for candidate in (claims.get("preferred_username"), email.partition("@")[0], claims.get("sub")):
        base = re.sub(r"[^\w.@+-]", "", str(candidate or ""))[: USERNAME_MAX - 8]
        if base:
            break
    else:
        base = "user"
    username, number = base, 1
    while User.objects.filter(username__iexact=username).exists():
        number += 1
        username = f"{base}-{number}"
    return username


def _user_update(user, claims: dict) -> None:
    """Names (and a verified address) follow the provider's at every sign-in."""
    first = claims.get("given_name")
    last = claims.get("family_name")
    if not first and not last and claims.get("name"):
        first, last = claims["name"], ""
    changed = {}
    if first or last:
        changed["first_name"] = str(first or "")[:150]
        changed["last_name"] = str(last or "")[:150]
    email = verified_email(claims)
    if email:
        changed["email"] = email
    changed = {field: value for field, value in changed.items() if getattr(user, field) != value}
    if changed:
        for field, value in changed.items():
            setattr(user, field, value)
        user.save(update_fields=list(changed))


def claim_groups(claims: dict) -> list[str]:
    """The groups claim (CHAT_OIDC_GROUPS_CLAIM) as a list of names: providers send a list, or one string."""
    groups = claims.get(settings.CHAT_OIDC_GROUPS_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]
    return [str(group) for group in groups if group]


def sso_teams_sync(*, user, groups: list[str]) -> None:
    """Join `user` (as a member) to the teams their groups lead to: CHAT_OIDC_TEAMS, else the team named like a group.

    Teams are never created here (an admin makes them), and a membership they already have keeps its
    role. With CHAT_OIDC_TEAMS_REMOVE, members of mapped teams their groups no longer lead to are removed.
    """
    mapping = settings.CHAT_OIDC_TEAMS
    wanted = {mapping[group] for group in groups if group in mapping} if mapping else set(groups)
    for team in Team.objects.filter(name__in=wanted):
        TeamMembership.objects.get_or_create(team=team, user=user, defaults={"role": TeamMembership.Role.MEMBER})
    if mapping and settings.CHAT_OIDC_TEAMS_REMOVE:
        gone = set(mapping.values()) - wanted
        for membership in TeamMembership.objects.filter(user=user, team__name__in=gone, role=TeamMembership.Role.MEMBER):
            membership.delete()  # one by one, so that signals.py tells open sockets

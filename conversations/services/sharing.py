"""Sharing: with a teammate or a team, changing a role, revoking, and public links.

Access changes reach open sockets through signals.py, after the transaction commits.
"""

from django.contrib.auth.hashers import check_password, make_password
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import permissions, selectors
from ..exceptions import Forbidden, InvalidChange, TooManyAttempts
from ..models import Conversation, PublicLink, Share


@transaction.atomic
def conversation_share(
    *, conversation: Conversation, by, role: str, user_id: int | None = None, team_id: int | None = None
) -> Share:
    """Share with one of `by`'s teammates or teams, or change the role of an existing share."""
    if conversation.owner_id != by.pk:
        raise Forbidden(permissions.FORBIDDEN_MESSAGES[permissions.Action.SHARE])
    if role not in Share.Role.values:
        raise InvalidChange(_("Choose viewer or collaborator."))
    if (user_id is None) == (team_id is None):
        raise InvalidChange(_("Share with one person or one team."))
    if user_id is not None:
        if user_id not in {teammate.pk for teammate in selectors.teams.teammates_of(by)}:
            raise InvalidChange(_("You can share only with people in your teams."))
        target = {"user_id": user_id}
    else:
        if team_id not in {team.pk for team in selectors.teams.teams_of(by)}:
            raise InvalidChange(_("You can share only with teams you are in."))
        target = {"team_id": team_id}
    share, _created = Share.objects.update_or_create(conversation=conversation, **target, defaults={"role": role})
    return share


@transaction.atomic
def share_change_role(*, share: Share, role: str) -> Share:
    if role not in Share.Role.values:
        raise InvalidChange(_("Choose viewer or collaborator."))
    share.role = role
    share.save(update_fields=["role"])
    return share


@transaction.atomic
def share_revoke(*, share: Share) -> None:
    share.delete()

# --- public links ----------------------------------------------------------------------------


@transaction.atomic
def public_link_create(
    *, conversation: Conversation, kind: str, audience: str, password: str = "", expires_at=None
) -> PublicLink:
    if not selectors.sharing.public_links_on():
        raise InvalidChange(_("Public links are turned off on this site."))
    link = PublicLink(
        conversation=conversation,
        kind=kind,
        audience=audience,
        password=make_password(password) if password else "",
        expires_at=expires_at,
    )
    _take_snapshot(link)
    link.save()
    return link


@transaction.atomic
def public_link_refresh(*, link: PublicLink) -> PublicLink:
    """A snapshot link now shows the conversation as it is."""
    _take_snapshot(link)
    link.save(update_fields=["title", "snapshot", "snapshot_at"])
    return link


def public_link_delete(*, link: PublicLink) -> None:
    link.delete()


def _take_snapshot(link: PublicLink) -> None:
    conversation = link.conversation
    link.title = str(conversation)
    link.snapshot_at = timezone.now()
    if link.kind == PublicLink.Kind.SNAPSHOT:
        rows = selectors.conversations.message_rows(conversation)
        # Only what is shown; a reply still streaming is kept as its text so far.
        keys = ("id", "role", "status", "content", "body", "note", "note_class", "author", "context_marker")
        link.snapshot = [{key: str(row[key]) if key == "body" else row[key] for key in keys} for row in rows]
    else:
        link.snapshot = []


# Guessing a link's password: this many wrong tries from one address, then a pause. Counted in
# Django's cache, so per process with the default local-memory cache.
PASSWORD_ATTEMPTS = 10
PASSWORD_LOCKOUT = 600


def public_link_unlock(*, link: PublicLink, password: str, address: str) -> bool:
    """Whether `password` is the link's. After PASSWORD_ATTEMPTS wrong tries from `address`, TooManyAttempts
    (and the password is not even checked) until PASSWORD_LOCKOUT seconds after the first of them."""
    failures = f"public-link-failures:{link.pk}:{address}"
    if cache.get(failures, 0) >= PASSWORD_ATTEMPTS:
        minutes = PASSWORD_LOCKOUT // 60
        raise TooManyAttempts(
            ngettext(
                "Too many wrong passwords. Try again in %(minutes)d minute.",
                "Too many wrong passwords. Try again in %(minutes)d minutes.",
                minutes,
            )
            % {"minutes": minutes}
        )
    if check_password(password, link.password):
        cache.delete(failures)
        return True
    cache.add(failures, 0, PASSWORD_LOCKOUT)
    cache.incr(failures)
    return False

"""Access changes reach open sockets: after the change commits, each affected conversation's sockets re-check.

Receivers rather than calls in services, so the admin, services and cascades
(a user or team deleted) all take the same path. Connected in apps.py.
"""

from . import realtime
from .models import Conversation, PublicLink, Share, SiteSettings, TeamMembership


def share_changed(sender, instance: Share, **kwargs) -> None:
    realtime.access_changed_after_commit([instance.conversation_id])


def membership_changed(sender, instance: TeamMembership, **kwargs) -> None:
    # A team's shares now reach one person more or one fewer.
    shares = Share.objects.filter(team_id=instance.team_id)
    realtime.access_changed_after_commit(shares.values_list("conversation_id", flat=True))


def public_link_changed(sender, instance: PublicLink, **kwargs) -> None:
    realtime.access_changed_after_commit([instance.conversation_id])


def account_deactivated(sender, instance, **kwargs) -> None:
    """A deactivated account can no longer log in; its open sockets close too."""
    if instance.is_active:
        return
    realtime.access_changed_after_commit(Conversation.objects.visible_to_account(instance).values_list("pk", flat=True))


def site_settings_changed(sender, instance: SiteSettings, **kwargs) -> None:
    realtime.public_links_changed_after_commit()


def conversation_deleted(sender, instance: Conversation, **kwargs) -> None:
    """However it was deleted (the page, the admin, a deleted account), its reply stops and its sockets close."""
    realtime.deleted_after_commit(instance.pk)


def logged_out(sender, request, user, **kwargs) -> None:
    """The session's open sockets close too (logging out in one tab ends the others' sockets)."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        realtime.session_ended_after_commit(session_key)

"""Access changes reach open sockets: after the change commits, each affected conversation's sockets re-check.

Receivers rather than calls in services, so the admin, services and cascades
(a user or team deleted) all take the same path.
"""

from asgiref.sync import async_to_sync
from django.db import transaction

from . import streaming
from .models import Conversation, PublicLink, Share, SiteSettings, TeamMembership


# on_commit(robust=True) logs a failing callback by its __qualname__, which neither partial()
# nor async_to_sync() objects have: the callbacks are plain named functions.


def _announce_after_commit(conversation_ids) -> None:
    ids = set(conversation_ids)
    if not ids:
        return

    def announce_access_changed() -> None:
        async_to_sync(streaming.announce_access_changed)(ids)

    transaction.on_commit(announce_access_changed, robust=True)


def share_changed(sender, instance: Share, **kwargs) -> None:
    _announce_after_commit([instance.conversation_id])


def membership_changed(sender, instance: TeamMembership, **kwargs) -> None:
    # A team's shares now reach one person more or one fewer.
    _announce_after_commit(Share.objects.filter(team_id=instance.team_id).values_list("conversation_id", flat=True))


def public_link_changed(sender, instance: PublicLink, **kwargs) -> None:
    _announce_after_commit([instance.conversation_id])


def account_deactivated(sender, instance, **kwargs) -> None:
    """A deactivated account can no longer log in; its open sockets close too."""
    if instance.is_active:
        return
    _announce_after_commit(Conversation.objects.visible_to_account(instance).values_list("pk", flat=True))


def site_settings_changed(sender, instance: SiteSettings, **kwargs) -> None:
    def announce_public_links_changed() -> None:
        async_to_sync(streaming.announce_public_links_changed)()

    transaction.on_commit(announce_public_links_changed, robust=True)

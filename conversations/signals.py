"""Access changes reach open sockets: after the change commits, each affected conversation's sockets re-check.

Receivers rather than calls in services, so the admin, services and cascades
(a user or team deleted) all take the same path.
"""

from functools import partial

from asgiref.sync import async_to_sync
from django.db import transaction

from . import streaming
from .models import PublicLink, Share, SiteSettings, TeamMembership


def _announce_after_commit(conversation_ids) -> None:
    ids = set(conversation_ids)
    if ids:
        transaction.on_commit(partial(async_to_sync(streaming.announce_access_changed), ids), robust=True)


def share_changed(sender, instance: Share, **kwargs) -> None:
    _announce_after_commit([instance.conversation_id])


def membership_changed(sender, instance: TeamMembership, **kwargs) -> None:
    # A team's shares now reach one person more or one fewer.
    _announce_after_commit(Share.objects.filter(team_id=instance.team_id).values_list("conversation_id", flat=True))


def public_link_changed(sender, instance: PublicLink, **kwargs) -> None:
    _announce_after_commit([instance.conversation_id])


def site_settings_changed(sender, instance: SiteSettings, **kwargs) -> None:
    transaction.on_commit(async_to_sync(streaming.announce_public_links_changed), robust=True)

"""A socket opened from a live public link (/s/<token>/): watches, never writes."""

import asyncio

from channels.db import database_sync_to_async
from django.urls import reverse
from django.utils import timezone

from .. import realtime, selectors
from ..permissions import Role
from .conversation import ConversationConsumer
from .presence import GUEST


class PublicLinkConsumer(ConversationConsumer):
    """A socket opened from a live public link (/s/<token>/): watches, never writes."""

    requires_login = False
    sees_names = False  # a link's visitors see how many others are here, not who
    chooses_branches = False  # a link shows the conversation's current branch

    async def current_role(self) -> Role:
        token = self.scope["url_route"]["kwargs"]["token"]
        link = await database_sync_to_async(selectors.sharing.live_link_for)(token, self.user, self.scope.get("session"))
        if link is None or (self.conversation_id and link.conversation_id != self.conversation_id):
            return Role.NONE
        self.conversation_id = self.conversation_id or link.conversation_id
        self._close_at_expiry(link.expires_at)
        return Role.VIEWER

    def _close_at_expiry(self, expires_at) -> None:
        # Nothing announces the moment a link expires; its open sockets close themselves then.
        if getattr(self, "expiry_timer", None) is not None:
            self.expiry_timer.cancel()
        self.expiry_timer = None
        if expires_at is not None:
            delay = max(0.0, (expires_at - timezone.now()).total_seconds())
            self.expiry_timer = asyncio.get_running_loop().call_later(
                delay, lambda: asyncio.ensure_future(self.access_changed({"type": realtime.ACCESS_CHANGED}))
            )

    async def role_after_change(self, change: str) -> Role | None:
        role = await self.current_role()
        if role != Role.NONE:
            return role
        exists = await database_sync_to_async(selectors.conversations.conversation_exists)(self.conversation_id)
        return role if exists else None

    def presence_name(self) -> str:
        return self.user.get_username() if self.user.is_authenticated else GUEST

    def fetch_url(self, message_id: int) -> str:
        return reverse("public_link_message", args=[self.scope["url_route"]["kwargs"]["token"], message_id])

    def groups_to_join(self) -> list[str]:
        # Also the site-wide switch for public links.
        return [*super().groups_to_join(), realtime.PUBLIC_LINKS_GROUP]

    async def _leave(self) -> None:
        if getattr(self, "expiry_timer", None) is not None:
            self.expiry_timer.cancel()
        await super()._leave()

"""The websocket protocol adapter: who may connect, which frames are valid, and relaying events.

The generation itself lives in streaming.py; this only starts and stops it
and forwards what it sends, making sure each socket gets a reply's text
exactly once and in order (see `_relay_delta`).
"""

import asyncio
import json
import time
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from . import events, permissions, realtime, selectors, streaming
from .exceptions import ChatError
from .models import Message
from .permissions import Action, Role

# Close codes (4000-4999 are the application's): the browser does not retry these.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_REVOKED = 4403
CLOSE_DELETED = 4410

GUEST = "guest"  # how a public link's visitor appears to the others

SNAPSHOT_RETRY_SECONDS = 1.0
PRESENCE_DELAY = 0.2


def _dumps(frame: dict) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


# One look-up of everyone's role per access change and process, shared by all its sockets on the
# conversation: a revoke seen by a hundred sockets costs one trip to the database, not a hundred.
_role_lookups: dict[tuple, asyncio.Future] = {}
ROLE_LOOKUP_SECONDS = 10.0


async def _roles_after(conversation_id, change: str) -> dict[int, Role] | None:
    key = (conversation_id, change)
    lookup = _role_lookups.get(key)
    if lookup is None or not change:
        lookup = asyncio.ensure_future(database_sync_to_async(permissions.roles_in)(conversation_id))
        if change:
            _role_lookups[key] = lookup
            asyncio.get_running_loop().call_later(ROLE_LOOKUP_SECONDS, _role_lookups.pop, key, None)
    return await asyncio.shield(lookup)


class ConversationConsumer(AsyncWebsocketConsumer):
    """A logged-in person's socket on a conversation they own or that was shared with them."""

    async def connect(self) -> None:
        self.user = self.scope["user"]
        self.conversation_id = self.scope["url_route"]["kwargs"].get("conversation_id")
        if not self.user.is_authenticated and self.requires_login:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.role = await self.current_role()
        if self.role == Role.NONE:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        # Characters of each streaming reply this socket has sent; None until known.
        self.replies: dict[int, int] = {}
        self.snapshot_asked_at = 0.0
        self.present: dict[str, str] = {}  # channel name -> who, of the other sockets here
        self.presence_shown: tuple[list[str], int] = ([], 0)
        self.presence_dirty = False
        self.presence_task: asyncio.Task | None = None
        self.group = realtime.conversation_group(self.conversation_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._catch_up()
        await self._ask_for_snapshot()
        await self._presence(realtime.PRESENCE_JOIN)

    requires_login = True

    async def current_role(self) -> Role:
        """This socket's person's role now; Role.NONE once they may no longer see the conversation."""
        return await database_sync_to_async(permissions.role_in)(self.user, self.conversation_id)

    async def role_after_change(self, change: str) -> Role | None:
        """The role after an access change; None if the conversation is gone."""
        roles = await _roles_after(self.conversation_id, change)
        return None if roles is None else roles.get(self.user.pk, Role.NONE)

    def presence_name(self) -> str:
        return self.user.get_username()

    async def dispatch(self, message: dict) -> None:
        # Channels runs close_old_connections() on the database thread before every handler:
        # one thread hop per relayed frame per socket, queued behind the replies being saved.
        # Only handlers that use database_sync_to_async touch the database, and it does the
        # same clean-up itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        if getattr(self, "presence_task", None) is not None:
            self.presence_task.cancel()
        if getattr(self, "group", None):
            group, self.group = self.group, None
            await self.channel_layer.group_discard(group, self.channel_name)
            await self.channel_layer.group_send(group, {"type": realtime.PRESENCE_LEAVE, "channel": self.channel_name})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = events.parse_client_frame(text_data, max_chars=settings.CHAT_MAX_MESSAGE_CHARS)
        except events.FrameError as exc:
            await self._send(events.error_frame(exc.code, exc.message))
            return
        try:
            # The role is checked again on every access change (access_changed), so it is current;
            # send and regenerate are checked once more in the transaction that saves them.
            match frame:
                case events.Send(content=content, model=model):
                    permissions.check(self.role, Action.SEND)
                    await streaming.reply_send(
                        user=self.user, conversation_id=self.conversation_id, content=content, model_id=model
                    )
                case events.Stop():
                    permissions.check(self.role, Action.STOP)
                    await realtime.request_stop(self.conversation_id)
                case events.Regenerate(model=model):
                    permissions.check(self.role, Action.REGENERATE)
                    await streaming.reply_regenerate(user=self.user, conversation_id=self.conversation_id, model_id=model)
        except ChatError as exc:
            await self._send(events.error_frame(exc.code, exc.message))

    # --- channel-layer events -------------------------------------------------

    async def chat_frame(self, event: dict) -> None:
        frame = event["frame"]
        kind = frame["type"]
        if kind == "delta":
            await self._relay_delta(frame)
            return
        if kind == "start":
            self.replies.setdefault(frame["message_id"], 0)
        elif kind == "done":
            self.replies.pop(frame["message_id"], None)
        await self._send(frame)

    async def chat_snapshot(self, event: dict) -> None:
        message_id, content = event["message_id"], event["content"]
        sent = await self._known(message_id)
        if len(content) > sent:
            await self._send(events.delta_frame(message_id, sent, content[sent:]))
            self.replies[message_id] = len(content)

    async def chat_deleted(self, event: dict) -> None:
        if not getattr(self, "group", None):
            return
        await self._send(events.error_frame("deleted", "This conversation was deleted."))
        await self._leave()
        await self.close(code=CLOSE_DELETED)

    async def access_changed(self, event: dict) -> None:
        """A share, a team or a link changed: stay, change role, or go."""
        if not getattr(self, "group", None):
            return
        role = await self.role_after_change(event.get("change", ""))
        if role is None:
            await self.chat_deleted(event)  # deleting a conversation also deletes its shares
        elif role == Role.NONE:
            await self._send(events.error_frame("access_revoked", "Your access to this conversation was removed."))
            await self._leave()
            await self.close(code=CLOSE_REVOKED)
        elif role != self.role:
            self.role = role
            await self._send(events.access_frame(role.label))

    # Presence: each socket announces itself to the others on joining, each answers with its
    # own name, and each says goodbye on leaving. No shared store, so it works across processes.

    async def presence_join(self, event: dict) -> None:
        if event["channel"] != self.channel_name:
            self.present[event["channel"]] = event["name"]
            await self.channel_layer.send(
                event["channel"], {"type": realtime.PRESENCE_HERE, "channel": self.channel_name, "name": self.presence_name()}
            )
            self._presence_changed()

    async def presence_here(self, event: dict) -> None:
        self.present[event["channel"]] = event["name"]
        self._presence_changed()

    async def presence_leave(self, event: dict) -> None:
        if self.present.pop(event["channel"], None) is not None:
            self._presence_changed()

    # --- helpers ----------------------------------------------------------------

    async def _relay_delta(self, frame: dict) -> None:
        """Forward only text that extends what this socket already sent: no gap, no repeat."""
        message_id, offset, content = frame["message_id"], frame["offset"], frame["content"]
        sent = self.replies.get(message_id)
        if sent is None and offset == 0:
            sent = await self._known(message_id)
        if sent is None or offset > sent:
            # Joined mid-reply, or a frame was dropped: the snapshot carries the text so far.
            await self._ask_for_snapshot()
            return
        end = offset + len(content)
        if end <= sent:
            return
        if offset < sent:
            frame = events.delta_frame(message_id, sent, content[sent - offset :])
        self.replies[message_id] = end
        await self._send(frame)

    async def _presence(self, kind: str) -> None:
        await self.channel_layer.group_send(
            self.group, {"type": kind, "channel": self.channel_name, "name": self.presence_name()}
        )

    def _presence_changed(self) -> None:
        # Shown a moment later, all changes at once: when a room fills up, each socket gets one
        # frame instead of one per arrival.
        self.presence_dirty = True
        if self.presence_task is None or self.presence_task.done():
            self.presence_task = asyncio.create_task(self._show_presence())

    async def _show_presence(self) -> None:
        while self.presence_dirty:
            await asyncio.sleep(PRESENCE_DELAY)
            self.presence_dirty = False
            own = self.presence_name() if self.user.is_authenticated else None
            guests = sum(1 for name in self.present.values() if name == GUEST)
            people = sorted({name for name in self.present.values() if name not in (own, GUEST)})
            if (people, guests) != self.presence_shown:  # another tab of the same person changes nothing shown
                self.presence_shown = (people, guests)
                await self._send(events.presence_frame(people, guests))

    async def _known(self, message_id: int) -> int:
        """Characters already sent of a reply; announces the reply first if this socket never saw it start."""
        if message_id not in self.replies:
            self.replies[message_id] = 0
            await self._send(events.start_frame(message_id))
        return self.replies[message_id]

    async def _ask_for_snapshot(self) -> None:
        now = time.monotonic()
        if now - self.snapshot_asked_at >= SNAPSHOT_RETRY_SECONDS:
            self.snapshot_asked_at = now
            await realtime.request_snapshot(self.conversation_id, self.channel_name)

    async def _catch_up(self) -> None:
        """Send what a reconnecting page missed: every message from ?since=<id> on."""
        since = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("since", [""])[0]
        if not since.isdigit():
            return
        missed = await database_sync_to_async(selectors.conversations.messages_since)(self.conversation_id, int(since))
        if missed is None:
            await self._send(events.error_frame("reload", "Too much was missed while offline; reload the page."))
            return
        for payload in missed:
            await self._send(events.message_frame(payload))
            if payload["status"] == Message.Status.STREAMING:
                # The saved text is a prefix of the live text: continue from its end.
                self.replies[payload["id"]] = len(payload["content"])

    async def _send(self, frame: dict) -> None:
        await self.send(text_data=_dumps(frame))


class PublicLinkConsumer(ConversationConsumer):
    """A socket opened from a live public link (/s/<token>/): watches, never writes."""

    requires_login = False

    async def current_role(self) -> Role:
        token = self.scope["url_route"]["kwargs"]["token"]
        link = await database_sync_to_async(selectors.sharing.live_link_for)(token, self.user, self.scope.get("session"))
        if link is None or (self.conversation_id and link.conversation_id != self.conversation_id):
            return Role.NONE
        if self.conversation_id is None:
            self.conversation_id = link.conversation_id
            await self.channel_layer.group_add(realtime.PUBLIC_LINKS_GROUP, self.channel_name)
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
        return role

    def presence_name(self) -> str:
        return self.user.get_username() if self.user.is_authenticated else GUEST

    async def _leave(self) -> None:
        if getattr(self, "expiry_timer", None) is not None:
            self.expiry_timer.cancel()
        await super()._leave()
        await self.channel_layer.group_discard(realtime.PUBLIC_LINKS_GROUP, self.channel_name)

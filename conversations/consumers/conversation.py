"""A logged-in person's socket on a conversation: who may connect, which frames are valid, access changes.

Replies are relayed by replies.ReplyRelay, presence by presence.Presence; the reply itself runs in streaming.
"""

import asyncio
import functools
import json
import logging

import orjson
from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.functional import cached_property
from django.utils.translation import gettext as _

from .. import clients, events, permissions, realtime, services, streaming, throttle
from ..exceptions import ChatError, Forbidden
from ..languages import saved_language, scope_language
from ..models import Message
from ..permissions import Action, Role
from ..streaming import upkeep
from . import presence
from .presence import Presence
from .replies import ReplyRelay

log = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's). The browser does not retry these:
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_REVOKED = 4403
CLOSE_DELETED = 4410
# and reconnects after these (through the proxy, to another process), catching up with ?since:
CLOSE_UNAVAILABLE = 4503  # the message broker cannot be reached, or this process is shutting down
CLOSE_TOO_MANY = 4429  # too many sockets (the page retries later), or a socket that kept flooding frames

# A socket that sent this many frames over its budget since it last kept to the rate is closed.
FLOOD_CLOSE_AFTER = 200


def _dumps(frame: dict) -> str:
    try:
        return orjson.dumps(frame, option=orjson.OPT_NON_STR_KEYS).decode()  # every frame of every reply
    except orjson.JSONEncodeError:  # text with a lone surrogate: the standard library writes it as before
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


async def in_turn(sources: list, dispatch) -> None:
    """Dispatch what each source gives, one message at a time, until a handler raises (StopConsumer at the end).

    Channels' await_many_dispatch starts a task and an asyncio.wait per message; a socket on a streaming reply
    handles a frame every tenth of a second, so here each source has one reader for the socket's life,
    which takes its next message only once the last was handled, as there.
    """
    turn = asyncio.Lock()

    async def read(source) -> None:
        while True:
            message = await source()
            async with turn:
                await dispatch(message)

    readers = [asyncio.create_task(read(source)) for source in sources]
    try:
        done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_EXCEPTION)
        for reader in done:
            reader.result()
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


class ConversationConsumer(ReplyRelay, Presence, AsyncWebsocketConsumer):
    """A logged-in person's socket on a conversation they own or that was shared with them."""

    async def __call__(self, scope, receive, send):
        try:
            await self._serve(scope, receive, send)
        except StopConsumer:
            pass
        except Exception:
            if getattr(self, "channel_name", None):
                raise
            # The layer could not even give this socket a channel (Redis is down): a close code the page
            # retries after, instead of the HTTP 500 an exception before the handshake would be.
            log.warning("A socket could not get a channel from the layer", exc_info=True)
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})

    async def _serve(self, scope, receive, send) -> None:
        """AsyncConsumer.__call__, with the socket's messages and its channel's dispatched by `in_turn`."""
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        await in_turn([receive, self.channel_receive], self.dispatch)

    async def connect(self) -> None:
        self.user = self.scope["user"]
        if saved := await database_sync_to_async(saved_language)(self.user):
            self.language = saved  # the profile's choice wins over the cookie and the browser, as on pages
            translation.activate(saved)  # for the rest of connect; dispatch restores the scope's after it
        self.conversation_id = self.scope["url_route"]["kwargs"].get("conversation_id")
        if not self.user.is_authenticated and self.requires_login:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        self.role = await self.current_role()
        if self.role == Role.NONE:
            await self._refuse(CLOSE_NOT_FOUND)
            return
        self.address = clients.scope_address(self.scope)
        self.counted_as = self.user.pk if self.user.is_authenticated else None
        refusal = await sync_to_async(throttle.socket_open, thread_sensitive=False)(
            user_id=self.counted_as, address=self.address
        )
        if refusal is not None:
            self.counted_as = self.address = None  # nothing to count down
            await self.accept()
            await self.send(text_data=_dumps(events.error_frame("rate_limited", refusal)))
            await self.close(code=CLOSE_TOO_MANY)
            return
        self.frames = throttle.FrameBudget()
        self.init_relay()
        self.init_presence()
        self.group = realtime.conversation_group(self.conversation_id)
        try:
            for group in self.groups_to_join():
                await self.channel_layer.group_add(group, self.channel_name)
        except Exception as exc:  # Redis is down: a close code the page retries after, not an HTTP 500
            log.warning("A socket on %s could not join its group: %s", self.conversation_id, exc)
            self.group = None
            await self.accept()
            await self.close(code=CLOSE_UNAVAILABLE)
            return
        await self.accept()
        upkeep.socket_opened(self)
        await self._catch_up()
        await self._ask_for_snapshot()
        await presence.join(self)

    requires_login = True

    def groups_to_join(self) -> list[str]:
        groups = [self.group]
        session_key = getattr(self.scope.get("session"), "session_key", None)
        if self.user.is_authenticated and session_key:
            groups.append(realtime.session_group(session_key))  # logging out closes this socket
        return groups

    async def _refuse(self, code: int) -> None:
        # Accepted, then closed with the code, so the page learns why (and does not retry): a refusal before
        # accepting would reach the browser as an HTTP 403 at the handshake, which it cannot tell from a blip.
        await self.accept()
        await self.close(code=code)

    async def _over_budget(self) -> None:
        """A frame over the socket's budget is dropped unread: the first says so, a flood that goes on is closed."""
        if self.frames.dropped == 1:
            message = _("Too many frames: slow down. Frames over the limit are ignored.")
            await self._send(events.error_frame("rate_limited", message))
        elif self.frames.dropped >= FLOOD_CLOSE_AFTER and getattr(self, "group", None):
            await database_sync_to_async(throttle.penalise)(self.address)
            await self._leave()
            await self.close(code=CLOSE_TOO_MANY)

    async def session_ended(self, event: dict) -> None:
        """This socket's session logged out (in another tab, say)."""
        if getattr(self, "group", None):
            await self._leave()
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def current_role(self) -> Role:
        """This socket's person's role now; Role.NONE once they may no longer see the conversation."""
        return await database_sync_to_async(permissions.role_in)(self.user, self.conversation_id)

    async def role_after_change(self, change: str) -> Role | None:
        """The role after an access change; None if the conversation is gone."""
        roles = await _roles_after(self.conversation_id, change)
        return None if roles is None else roles.get(self.user.pk, Role.NONE)

    def presence_name(self) -> str:
        return self.user.get_username()

    @cached_property
    def language(self) -> str:
        return scope_language(self.scope)

    async def dispatch(self, message: dict) -> None:
        if message["type"] == realtime.FRAME and message["frame"]["type"] == "delta":
            # Most of what a socket handles, and nothing in it is worded: no switch of language.
            await self._relay_delta(message["frame"])
            return
        # Every handler runs in the person's language: error frames are worded for them, and a reply their
        # send starts inherits it (the demo model answers in it).
        with translation.override(self.language):
            await self._dispatch(message)

    async def _dispatch(self, message: dict) -> None:
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
        if getattr(self, "address", None) is not None:
            address, self.address = self.address, None
            await sync_to_async(throttle.socket_closed, thread_sensitive=False)(user_id=self.counted_as, address=address)

    async def _leave(self) -> None:
        upkeep.socket_closed(self)
        for task in self.relay_tasks():
            task.cancel()
        if getattr(self, "group", None):
            groups = self.groups_to_join()
            self.group = None
            await presence.leave(self)
            for joined in groups:
                try:
                    await self.channel_layer.group_discard(joined, self.channel_name)
                except Exception:  # the layer is down: Redis forgets the subscription with the connection
                    log.debug("Leaving %s failed", joined, exc_info=True)

    async def close_for_restart(self) -> None:
        """This process is shutting down: the page reconnects (to another process) and catches up.

        Sent through the socket's own channel, so the frames already queued for it (a `done`) go out first."""
        if not await realtime.send_to_channel(self.channel_name, {"type": realtime.SERVER_RESTARTING}):
            await self.server_restarting({})

    async def server_restarting(self, event: dict) -> None:
        if getattr(self, "group", None):
            await self._leave()
            await self.close(code=CLOSE_UNAVAILABLE)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.frames.take():
            await self._over_budget()
            return
        received_at = timezone.now()  # what decides whether a stop came before or after a send, across processes
        try:
            frame = events.parse_client_frame(text_data, max_chars=settings.CHAT_MAX_MESSAGE_CHARS)
        except events.FrameError as exc:
            await self._send(events.error_frame(exc.code, exc.message))
            return
        try:
            # The role is checked again on every access change (access_changed), so it is current;
            # send and regenerate are checked once more in the transaction that saves them.
            match frame:
                case events.Send(content=content, model=model, parent_id=parent_id):
                    permissions.check(self.role, Action.SEND)
                    await streaming.reply_send(
                        user=self.user,
                        conversation_id=self.conversation_id,
                        content=content,
                        model_id=model,
                        received_at=received_at,
                        parent_id=parent_id,
                    )
                case events.Stop():
                    permissions.check(self.role, Action.STOP)
                    await self._stop(received_at)
                case events.Regenerate(model=model, message_id=message_id):
                    permissions.check(self.role, Action.REGENERATE)
                    await streaming.reply_regenerate(
                        user=self.user,
                        conversation_id=self.conversation_id,
                        model_id=model,
                        received_at=received_at,
                        message_id=message_id,
                    )
                case events.Select(message_id=message_id):
                    await self._select(message_id)
        except ChatError as exc:
            await self._send(events.error_frame(exc.code, exc.message))

    chooses_branches = True  # a public link's socket shows the current branch only

    async def _select(self, message_id: int) -> None:
        """Show this socket the branch through a message; for those who may write, it becomes the current one.
        Other open pages keep the branch they show (README, "Versions and branches")."""
        if not self.chooses_branches:
            raise Forbidden()
        permissions.check(self.role, Action.VIEW)
        parent_id, leaf_id, payloads = await database_sync_to_async(services.conversations.branch_select)(
            conversation_id=self.conversation_id, message_id=message_id, save=permissions.allows(self.role, Action.SEND)
        )
        await self._send(events.branch_frame(parent_id, leaf_id))
        for payload in payloads:
            await self._send(events.message_frame(payload))
            if payload["status"] == Message.Status.STREAMING:
                self.replies[payload["id"]] = len(payload["content"])  # the saved text; the rest follows as deltas
                self._heard()

    # --- channel-layer events -------------------------------------------------

    async def chat_deleted(self, event: dict) -> None:
        if not getattr(self, "group", None):
            return
        await self._send(events.error_frame("deleted", _("This conversation was deleted.")))
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
            await self._send(events.error_frame("access_revoked", _("Your access to this conversation was removed.")))
            await self._leave()
            await self.close(code=CLOSE_REVOKED)
        elif role != self.role:
            self.role = role
            await self._send(events.access_frame(role.label))

    async def _send(self, frame: dict) -> None:
        encoded = _dumps(frame)
        for part in events.within_limit(frame, encoded, self.fetch_url):
            await self.send(text_data=encoded if part is frame else _dumps(part))

    def fetch_url(self, message_id: int) -> str:
        """Where the page gets a message too big for a frame."""
        return reverse("conversation_message", args=[self.conversation_id, message_id])

"""Limits on what one person, one address or one socket may do, so that no single client can stall everyone else.

    frames per socket      CHAT_FRAMES_PER_SECOND (a burst of twice that): more are dropped unread, the
                           first with a `rate_limited` error; a socket that keeps flooding is closed (4429),
                           and its address may open no socket for CHAT_FLOOD_PENALTY_SECONDS
    sockets                CHAT_SOCKETS_PER_PERSON open at once per person, CHAT_SOCKETS_PER_ADDRESS per
                           client address (public-link guests included), CHAT_CONNECTS_PER_MINUTE new ones per
                           address (refused at the handshake, before any database work: ConnectLimiter)
    sends                  CHAT_SENDS_PER_MINUTE replies started per person (the admin's Limits are budgets)
    conversations          CHAT_CONVERSATIONS_PER_HOUR created per person

Counters live in Django's cache: in Redis when it is configured, so every process counts together.
Open-socket counts expire an hour after their last change, so a process that died with sockets open
cannot lock anyone out for longer. The frame rate is per socket, so it is counted in the process.
"""

import math
import threading
import time
import weakref
from contextlib import contextmanager

from asgiref.sync import sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .exceptions import ChatError

SOCKET_COUNT_SECONDS = 3600


class RateLimited(ChatError):
    code = "rate_limited"
    message = gettext_lazy("Too many requests; slow down.")


def _hit(key: str, window: float) -> int:
    """Count one event under `key` in a fixed window of `window` seconds; the count so far."""
    redis = _redis_client()
    if redis is not None:
        return _redis_hit(redis, cache.make_and_validate_key(key), window)
    cache.add(key, 0, timeout=window)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        return 1


# Each send is counted (sends_check), on the database thread: through Django's cache API a count took three
# Redis round trips and two new clients (add, then incr, which first asks whether the key exists), a third of
# reply_begin's time on the benchmark. With Redis it is one pipeline, on one client per cache backend.
_redis_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _redis_client():
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    if backend not in _redis_clients:
        _redis_clients[backend] = backend._cache.get_client(write=True)
    return _redis_clients[backend]


def _redis_hit(redis, key: str, window: float) -> int:
    return _redis_hits(redis, [key], window)[0]


def _redis_hits(redis, keys: list[str], window: float) -> list[int]:
    """Count one event under each key (a key may repeat) in one round trip; each count so far, in order."""
    # Stored as a plain integer, as Django's cache stores ints, so cache.get still reads it.
    pipeline = redis.pipeline(transaction=False)
    for key in keys:
        pipeline.set(key, 0, ex=max(1, math.ceil(window)), nx=True)
        pipeline.incr(key)
    return pipeline.execute()[1::2]


def _sends_key(user_id: int) -> str:
    return f"throttle:sends:{user_id}:{int(time.time() // 60)}"


# Counts taken ahead for a group of sends (sends_counted_ahead), by person, in the order of their sends.
_ahead = threading.local()


@contextmanager
def sends_counted_ahead(user_ids: list[int]):
    """Count a group's sends (services.replies.replies_together) in one Redis round trip; each send's sends_check
    then takes its count from here. One round trip per send, on the database thread, inside the group's
    transaction, would make the group wait for each. A send refused for another reason is counted all the same
    (it arrived), and the sends of a group undone by a database error are counted again when each is begun
    alone. Nothing is taken ahead without Redis: the process's own cache costs no round trip."""
    redis = _redis_client()
    if not settings.CHAT_SENDS_PER_MINUTE or redis is None or not user_ids:
        yield
        return
    keys = [cache.make_and_validate_key(_sends_key(user_id)) for user_id in user_ids]
    counts: dict[int, list[int]] = {}
    for user_id, count in zip(user_ids, _redis_hits(redis, keys, 60), strict=True):
        counts.setdefault(user_id, []).append(count)
    _ahead.counts = counts
    try:
        yield
    finally:
        _ahead.counts = None


def sends_check(user) -> None:
    """RateLimited when this person has started CHAT_SENDS_PER_MINUTE replies in the current minute."""
    limit = settings.CHAT_SENDS_PER_MINUTE
    if not limit:
        return
    ahead = (getattr(_ahead, "counts", None) or {}).get(user.pk)
    if (ahead.pop(0) if ahead else _hit(_sends_key(user.pk), 60)) > limit:
        raise RateLimited(
            ngettext(
                "You are sending too fast: at most %(limit)d message a minute. Try again in a moment.",
                "You are sending too fast: at most %(limit)d messages a minute. Try again in a moment.",
                limit,
            )
            % {"limit": limit}
        )


def conversations_check(user) -> None:
    """RateLimited when this person has created CHAT_CONVERSATIONS_PER_HOUR conversations in the current hour."""
    limit = settings.CHAT_CONVERSATIONS_PER_HOUR
    if limit and _hit(f"throttle:conversations:{user.pk}:{int(time.time() // 3600)}", 3600) > limit:
        raise RateLimited(
            _("You have started %(limit)d conversations in the last hour; try again later.") % {"limit": limit}
        )


def _socket_keys(user_id: int | None, address: str) -> list[tuple[str, int]]:
    keys = [(f"throttle:sockets:address:{address}", settings.CHAT_SOCKETS_PER_ADDRESS)]
    if user_id is not None:
        keys.append((f"throttle:sockets:user:{user_id}", settings.CHAT_SOCKETS_PER_PERSON))
    return keys


# Addresses this process penalised, until when: refused without even asking the cache.
_penalised_here: dict[str, float] = {}


def penalised_here(address: str) -> bool:
    until = _penalised_here.get(address)
    if until is not None and until < time.monotonic():
        del _penalised_here[address]
        return False
    return until is not None


def connect_allowed(address: str) -> bool:
    """Count a new socket from this address; False past CHAT_CONNECTS_PER_MINUTE in the current minute, or
    while the address is penalised for a flood."""
    if penalised_here(address) or cache.get(f"throttle:penalty:{address}"):
        return False
    limit = settings.CHAT_CONNECTS_PER_MINUTE
    return not limit or _hit(f"throttle:connects:{address}:{int(time.time() // 60)}", 60) <= limit


def forget_penalties() -> None:
    """This process forgets the addresses it penalised (tests; the shared cache is cleared on its own)."""
    _penalised_here.clear()


def penalise(address: str) -> None:
    """An address whose socket was cut off for flooding may open no socket for CHAT_FLOOD_PENALTY_SECONDS."""
    if settings.CHAT_FLOOD_PENALTY_SECONDS:
        _penalised_here[address] = time.monotonic() + settings.CHAT_FLOOD_PENALTY_SECONDS
        cache.set(f"throttle:penalty:{address}", True, timeout=settings.CHAT_FLOOD_PENALTY_SECONDS)


class ConnectLimiter:
    """ASGI middleware: a websocket from an address over CHAT_CONNECTS_PER_MINUTE is refused at the handshake,
    before its session and user are looked up: a client that reconnects in a loop costs almost nothing."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            from .clients import scope_address

            address = scope_address(scope)
            if penalised_here(address) or not await sync_to_async(connect_allowed, thread_sensitive=False)(address):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def socket_open(*, user_id: int | None, address: str) -> str | None:
    """Count a new socket of this person (None: a guest) from this address. None if allowed, else why not
    (the socket is then not counted). Touches no database: consumers call it off the database thread."""
    keys = _socket_keys(user_id, address)
    counts = _add_to_socket_counts([key for key, _cap in keys], 1)
    if any(cap and count > cap for (_key, cap), count in zip(keys, counts, strict=True)):
        _add_to_socket_counts([key for key, _cap in keys], -1)
        return _("Too many open connections; close some tabs and try again.")
    return None


def socket_closed(*, user_id: int | None, address: str) -> None:
    _add_to_socket_counts([key for key, _cap in _socket_keys(user_id, address)], -1)


def _add_to_socket_counts(keys: list[str], delta: int) -> list[int]:
    """Add `delta` to each open-socket count (never below 0), renewing its SOCKET_COUNT_SECONDS; the counts.
    With Redis, one round trip for all of them."""
    redis = _redis_client()
    if redis is None:
        return [_add_to_cached_count(key, delta) for key in keys]
    pipeline = redis.pipeline(transaction=False)
    for key in keys:
        key = cache.make_and_validate_key(key)
        pipeline.set(key, 0, ex=SOCKET_COUNT_SECONDS, nx=True)
        pipeline.incrby(key, delta)
        pipeline.expire(key, SOCKET_COUNT_SECONDS)
    counts = pipeline.execute()[1::3]
    below = [cache.make_and_validate_key(key) for key, count in zip(keys, counts, strict=True) if count < 0]
    if below:  # a count that had expired while its sockets were open
        pipeline = redis.pipeline(transaction=False)
        for key in below:
            pipeline.set(key, 0, ex=SOCKET_COUNT_SECONDS)
        pipeline.execute()
    return [max(count, 0) for count in counts]


def _add_to_cached_count(key: str, delta: int) -> int:
    cache.add(key, 0, timeout=SOCKET_COUNT_SECONDS)
    try:
        count = cache.incr(key, delta)
    except ValueError:  # expired between add and incr
        count = max(delta, 0)
        cache.set(key, count, timeout=SOCKET_COUNT_SECONDS)
        return count
    if count < 0:
        cache.set(key, 0, timeout=SOCKET_COUNT_SECONDS)
        return 0
    cache.touch(key, SOCKET_COUNT_SECONDS)
    return count


class FrameBudget:
    """A token bucket for one socket's frames: CHAT_FRAMES_PER_SECOND, with a burst of twice that."""

    def __init__(self, *, rate_factor: float = 1) -> None:
        self.rate = settings.CHAT_FRAMES_PER_SECOND * rate_factor
        self.capacity = 2 * self.rate
        self.tokens = float(self.capacity)
        self.at = time.monotonic()
        self.dropped = 0  # frames refused since the bucket was last full (a flooder never lets it refill)

    def take(self) -> bool:
        """Whether one more frame may be read now."""
        if not self.rate:
            return True
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= self.capacity:
            self.dropped = 0  # quiet long enough to refill: the past is forgiven
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.dropped += 1
        return False


def address_check(*, action: str, address: str, limit: int, seconds: int) -> None:
    """RateLimited when this address did `action` `limit` times in the current window of `seconds` (forms that
    anyone may post, such as accepting an invitation or asking for a password reset)."""
    if limit and _hit(f"throttle:{action}:{address}:{int(time.time() // seconds)}", seconds) > limit:
        raise RateLimited(_("Too many attempts from your address; try again later."))

"""A reply's life in the database: begun (the person's message and a streaming placeholder), checkpointed, finished.

Runs on every send, so the hot statements are written out in SQL (see "The send path, in SQL" below).
"""

import logging
import threading
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from .. import context, fulltext, metering, permissions, selectors, throttle
from ..exceptions import ChatError, ConversationNotFound, MessageNotFound, ModelNotAvailable, NothingToRegenerate, ReplyInProgress
from ..llm import ModelSpec, Usage
from ..models import Conversation, Message
from ..rendering import render_markdown
from ..tree import CURRENT, Tree
from .conversations import title_from

log = logging.getLogger(__name__)

# Stored in English with the reply; each reader sees it in their language (selectors.conversations.error_text).
INTERRUPTED = gettext_noop("The reply was interrupted: the server stopped while it was streaming.")


@dataclass(frozen=True)
class ReplyPlan:
    """Everything a generation needs, read in the same transaction that created its placeholder."""

    conversation_id: uuid.UUID
    reply_id: int
    spec: ModelSpec
    history: list[dict]
    user: str  # the pseudonymous id sent as the API's `user`
    user_message: dict | None = None  # the saved message, for a send
    parent_id: int | None = None  # the message the reply answers
    versions: tuple[int, ...] = ()  # the reply and its siblings (the other versions of it), oldest first
    context_start: int | None = None  # the first message sent, when older ones were left out to fit the context window
    received_at: datetime | None = None  # when the send or regenerate arrived: a stop that arrived later applies
    stop_requested: bool = False  # such a stop arrived before this reply was saved
    user_id: int | None = None  # who asked: a title request after the first reply counts against their budgets
    first_exchange: bool = False  # the conversation's first reply: once it is complete, a model may title it


# --- replies ---------------------------------------------------------------------------------


def reply_begin(
    *,
    user,
    conversation_id: uuid.UUID,
    content: str,
    model_config_id: int | None = None,
    received_at: datetime | None = None,
    parent_id=CURRENT,
) -> ReplyPlan:
    """Save the person's message and a streaming placeholder for the reply, before anything goes upstream.

    The message follows `parent_id` (None: it starts the conversation again, as an edited first question
    does; CURRENT: the current branch's last message), and its branch becomes the current one. A few
    statements in one transaction; this runs on every send (see "The send path, in SQL").
    """
    with _one_reply_at_a_time():
        conversation, rows = _open_for_reply(user, conversation_id)
        model_id, spec = _reply_model(conversation, model_config_id, user)
        metering.limits_check(user)  # before anything is saved or sent
        throttle.sends_check(user)
        tree = Tree((row.id, row.parent_id) for row in rows)
        if parent_id is CURRENT:
            parent_id = tree.current_leaf(conversation.current_leaf_id)
        elif parent_id is not None and parent_id not in tree:
            raise MessageNotFound()
        with _pipelined():
            user_message_id, reply_id = _sql_insert_turn(conversation.id, user.pk, content, parent_id)
            # From here on nothing is read back: these writes go to PostgreSQL in one round trip.
            _touch(conversation, model_id, title=conversation.title or title_from(content), leaf=reply_id)
            if not conversation.title:  # the first message named it
                fulltext.index.title_index(conversation.id, title_from(content))
            by_id = {row.id: row for row in rows}
            turns = [
                *_turns(by_id[i] for i in tree.path(parent_id)), {"id": user_message_id, "role": "user", "content": content}
            ]
            history, context_start = _fit_context(spec, turns, reply_id)
            metering.usage_begin(user=user, reply_id=reply_id, model_config_id=model_id, spec=spec, history=history)
        user_message = Message(
            id=user_message_id, parent_id=parent_id, role=Message.Role.USER, content=content, author=user
        )
        versions = [*tree.versions_under(parent_id), user_message_id]
        return _plan(
            user, conversation, spec, reply_id, history, received_at,
            user_message=selectors.conversations.message_payload(user_message, versions=versions),
            parent_id=user_message_id, versions=(reply_id,), context_start=context_start,
            first_exchange=_no_reply_yet(rows),
        )


def reply_regenerate_begin(
    *,
    user,
    conversation_id: uuid.UUID,
    model_config_id: int | None = None,
    received_at: datetime | None = None,
    message_id: int | None = None,
) -> ReplyPlan:
    """A new version of a reply, kept beside the old one: of `message_id`, else of the current branch's last
    reply (or the first reply to its last message, when that is the person's and unanswered). The new
    reply's branch becomes the current one."""
    with _one_reply_at_a_time():
        conversation, rows = _open_for_reply(user, conversation_id)
        model_id, spec = _reply_model(conversation, model_config_id, user)
        metering.limits_check(user)
        throttle.sends_check(user)
        tree, by_id = Tree((row.id, row.parent_id) for row in rows), {row.id: row for row in rows}
        if message_id is None:
            leaf = tree.current_leaf(conversation.current_leaf_id)
            answering = by_id[leaf].parent_id if leaf is not None and by_id[leaf].role == Message.Role.ASSISTANT else leaf
        elif message_id in by_id and by_id[message_id].role == Message.Role.ASSISTANT:
            answering = by_id[message_id].parent_id
        else:
            raise MessageNotFound()
        path = tree.path(answering)
        if not any(by_id[i].role == Message.Role.USER for i in path):
            raise NothingToRegenerate()
        reply = Message.objects.create(
            conversation_id=conversation.id, parent_id=answering, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
        )
        _touch(conversation, model_id, title=conversation.title, leaf=reply.id)
        history, context_start = _fit_context(spec, _turns(by_id[i] for i in path), reply.id)
        metering.usage_begin(user=user, reply_id=reply.id, model_config_id=model_id, spec=spec, history=history)
        return _plan(
            user, conversation, spec, reply.id, history, received_at,
            parent_id=answering, versions=(*tree.versions_under(answering), reply.id), context_start=context_start,
            first_exchange=_no_reply_yet(rows),
        )


# Set while replies_together runs its group (on the database thread).
_together = threading.local()


def replies_together(
    calls: list[Callable[[], Any]], *, conversation_ids: list | None = None, sender_ids: list | None = None
) -> list[Any]:
    """Several sends or final saves (reply_begin, reply_regenerate_begin, reply_finish, bound to their arguments)
    in one transaction: a group commit. Returns each one's result, or the exception that refused it, in order.

    A transaction costs round trips of its own on PostgreSQL (BEGIN, COMMIT and its flush to disk, and Channels'
    connection check before each call from async code), all on the one database thread: calls that arrive
    together share them (streaming/together.py). A send that is refused (a ChatError, always raised before it
    writes anything) is refused alone; anything else (a database error) undoes the whole group, and each call
    runs again in a transaction of its own.

    `conversation_ids`, for sends (in the order the calls lock them): on PostgreSQL their rows are locked and
    read for the whole group at once, new messages' ids are taken from the sequence at once, and every call's
    statements travel in one pipeline, so that a group of sends costs a few round trips instead of a few each
    (_group_read). `sender_ids`, for sends: who sent each, counted against CHAT_SENDS_PER_MINUTE at once
    (throttle.sends_counted_ahead).
    """
    if len(calls) > 1:
        results: list[Any] = []
        _together.active = True
        try:
            with throttle.sends_counted_ahead(sender_ids or []), transaction.atomic(), _group_pipeline(conversation_ids):
                for call in calls:
                    try:
                        results.append(call())
                    except ChatError as exc:
                        results.append(exc)
            return results
        except Exception:
            log.warning("%d calls made together failed; making each on its own", len(calls), exc_info=True)
        finally:
            _together.active = False
            _together.read, _together.ids, _together.pipelined = {}, [], False
    return [_alone(call) for call in calls]


@contextmanager
def _group_pipeline(conversation_ids: list | None):
    """A group's statements in one psycopg pipeline, the conversations of its sends read first (PostgreSQL;
    nothing elsewhere). Reading a result sends what waits; no call in a group reads a row count."""
    if connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    with connection.connection.pipeline():
        _together.pipelined = True
        if conversation_ids:
            _group_read(conversation_ids)
        yield


def _group_read(conversation_ids: list) -> None:
    """Lock and read the group's conversations and their messages, and take two message ids per send from the
    sequence: one round trip for the whole group. Each call then takes its conversation's rows (once: a second
    send to the same conversation in the group reads them again, with the first one's messages) and its ids."""
    keys = sorted({_db_conversation_id(conversation_id) for conversation_id in conversation_ids})
    with connection.cursor() as conversations, connection.cursor() as messages, connection.cursor() as ids:
        conversations.execute(f"{_CONVERSATION_ROW} WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [keys])
        messages.execute(
            f"SELECT conversation_id, {_ROW_COLUMNS} FROM {_MESSAGES} WHERE conversation_id = ANY(%s) ORDER BY id",
            [keys],
        )
        ids.execute(
            f"SELECT nextval(pg_get_serial_sequence('{_MESSAGES}', 'id')) FROM generate_series(1, %s)",
            [2 * len(conversation_ids)],
        )
        read: dict = {key: (None, []) for key in keys}
        for row in conversations.fetchall():
            read[row[0]] = (row, [])
        for conversation_id, *message in messages.fetchall():
            read[conversation_id][1].append(_Row(*message))
        _together.read = read
        _together.ids = [row[0] for row in ids.fetchall()]


def _alone(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:
        return exc


@contextmanager
def _pipelined():
    """On PostgreSQL, statements whose results are not read at once travel together (psycopg's pipeline mode):
    reading a result, or the block's end, sends what waits in one round trip. Only for statements whose row
    counts nobody reads (in pipeline mode they are known only after that round trip)."""
    if connection.vendor != "postgresql" or getattr(_together, "pipelined", False):
        yield
        return
    connection.ensure_connection()
    with connection.connection.pipeline():
        yield


@contextmanager
def _own_transaction():
    """transaction.atomic(), unless replies_together already runs this call in its transaction."""
    if getattr(_together, "active", False):
        yield
    else:
        with transaction.atomic():
            yield


def _no_reply_yet(rows: list["_Row"]) -> bool:
    return not any(row.role == Message.Role.ASSISTANT for row in rows)


@contextmanager
def _one_reply_at_a_time():
    if getattr(_together, "active", False):
        # Inside replies_together's transaction: a lost race fails the group, and this send is begun alone.
        yield
        return
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        # Another send won the race for the one streaming slot (see Message.Meta.constraints).
        raise ReplyInProgress() from None


class _Row(NamedTuple):
    id: int
    parent_id: int | None
    role: str
    content: str
    status: str


def _open_for_reply(user, conversation_id: uuid.UUID) -> tuple[Conversation, list[_Row]]:
    """The conversation, locked, and its messages, if this person may write in it.

    ConversationNotFound or Forbidden otherwise; ReplyInProgress if a live reply is streaming in it.
    """
    conversation, rows = _sql_lock_and_read(conversation_id)
    if conversation is None:
        raise ConversationNotFound()
    # The owner needs no query; anyone else's role comes from the shares that reach them.
    permissions.check(permissions.role_of(user, conversation), permissions.Action.SEND)
    if any(row.status == Message.Status.STREAMING for row in rows):
        replies_close_orphaned(conversation_id=conversation.id)
        if Message.objects.filter(conversation_id=conversation.id, status=Message.Status.STREAMING).exists():
            raise ReplyInProgress()
        rows = _sql_messages(conversation.id)
    return conversation, rows


# --- stop, leases and orphans --------------------------------------------------------------
# A running reply's process renews its lease (Message.updated) every few seconds; one that has
# not been renewed for CHAT_STALE_AFTER seconds belongs to a process that died without draining.


def reply_stop_request(*, conversation_id: uuid.UUID, at: datetime) -> dict | None:
    """Remember that a stop for this conversation arrived at `at`: a reply whose send arrived earlier applies it
    when it starts, even if it was not listening yet. Returns the streaming reply ({id, renewed}) if there is one."""
    with transaction.atomic():
        Conversation.objects.filter(pk=conversation_id).filter(
            Q(stop_requested_at__isnull=True) | Q(stop_requested_at__lt=at)
        ).update(stop_requested_at=at)
        return (
            Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING)
            .values("id", renewed=F("updated"))
            .first()
        )


def stops_requested(conversation_ids) -> dict[uuid.UUID, datetime]:
    """When a stop last arrived for each of these conversations (those with none are left out)."""
    rows = Conversation.objects.filter(pk__in=list(conversation_ids), stop_requested_at__isnull=False)
    return dict(rows.values_list("pk", "stop_requested_at"))


def replies_close_orphaned(*, conversation_id: uuid.UUID | None = None, reply_id: int | None = None) -> list[dict]:
    """Close the streaming replies whose lease ran out (or this one reply, whatever its lease: a stop found nobody
    running it) as `error`, "interrupted", with the text last saved. Returns what was saved, as `message` frames carry
    it, for the replies this call closed: several processes may sweep at once, and each reply is closed once."""
    candidates = Message.objects.filter(status=Message.Status.STREAMING)
    if reply_id is not None:
        candidates = candidates.filter(pk=reply_id)
    else:
        candidates = candidates.filter(updated__lt=timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER))
    if conversation_id is not None:
        candidates = candidates.filter(conversation_id=conversation_id)
    closed = []
    # Locked as they are read, so that each is closed once (another sweep waits, then no longer finds it), and
    # without reading a row count (which a group's pipeline on PostgreSQL does not know yet).
    with transaction.atomic():
        for reply in candidates.select_related("author").select_for_update(of=("self",)):
            html = render_markdown(reply.content)
            fields = {"status": Message.Status.ERROR, "error": INTERRUPTED, "html": html, "updated": timezone.now()}
            Message.objects.filter(pk=reply.pk).update(**fields)
            log.warning("Closed orphaned streaming reply %s (%d characters kept)", reply.pk, len(reply.content))
            fulltext.index.messages_index([(reply.pk, reply.conversation_id, reply.content)])
            for name, value in fields.items():
                setattr(reply, name, value)
            closed.append({"conversation_id": reply.conversation_id, **selectors.conversations.message_payload(reply)})
    return closed


def _turns(rows) -> list[dict]:
    """The history sent upstream: every message of the branch with text, in order (with its id, which is not sent)."""
    return [{"id": row.id, "role": row.role, "content": row.content} for row in rows if row.content]


def _fit_context(spec: ModelSpec, turns: list[dict], reply_id: int) -> tuple[list[dict], int | None]:
    """The turns that fit the model's context window, and the first one's id when older ones were left out.

    The reply remembers that id (Message.context_start), so the page can mark where the sent history starts.
    """
    kept, first_kept_id = context.fit(spec, turns)
    if first_kept_id is not None:
        Message.objects.filter(pk=reply_id).update(context_start=first_kept_id)
    return [{"role": turn["role"], "content": turn["content"]} for turn in kept], first_kept_id


def _reply_model(conversation: Conversation, picked_id: int | None, user) -> tuple[int | None, ModelSpec]:
    """The model to answer with, with the conversation's own settings applied (selectors.providers.conversation_spec).

    The one picked, else the conversation's, else the default (None: the demo).
    """
    model_id, spec = _picked_model(conversation, picked_id, user)
    return model_id, selectors.providers.conversation_spec(spec, conversation)


def _picked_model(conversation: Conversation, picked_id: int | None, user) -> tuple[int | None, ModelSpec]:
    """The sender's pick (ModelNotAvailable if it is disabled or not open to them), else the conversation's model."""
    if picked_id is not None:
        spec = selectors.providers.usable_model_spec(user, picked_id)
        if spec is None:
            raise ModelNotAvailable()
        return picked_id, spec
    return selectors.providers.conversation_model_for(user, conversation)


def _touch(conversation: Conversation, model_id: int | None, *, title: str, leaf: int) -> None:
    # The model is kept on the conversation, so later sends need not look up the default again.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_CONVERSATIONS} SET title = %s, model_config_id = %s, updated = %s, current_leaf_id = %s"
            f" WHERE id = %s",
            [title, model_id, _db_now(), leaf, _db_conversation_id(conversation.id)],
        )


def _plan(user, conversation, spec: ModelSpec, reply_id: int, history: list[dict], received_at, **extra) -> ReplyPlan:
    stop = conversation.stop_requested_at
    return ReplyPlan(
        conversation_id=conversation.id,
        reply_id=reply_id,
        spec=spec,
        history=history,
        user=selectors.providers.user_pseudonym(user.pk),
        user_id=user.pk,
        received_at=received_at,
        stop_requested=received_at is not None and stop is not None and stop >= received_at,
        **extra,
    )


def replies_checkpoint(contents: dict[int, str]) -> None:
    """Save the text so far of several streaming replies at once, renewing their leases. A reply that has finished
    meanwhile keeps its final text."""
    now = _db_now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {_MESSAGES} SET content = %s, updated = %s WHERE id = %s AND status = %s",
            [(content, now, reply_id, Message.Status.STREAMING) for reply_id, content in contents.items()],
        )


def replies_renew(reply_ids) -> None:
    """Renew the leases of running replies whose text did not change since their last checkpoint."""
    Message.objects.filter(pk__in=list(reply_ids), status=Message.Status.STREAMING).update(updated=timezone.now())


def reply_finish(
    *,
    reply_id: int,
    content: str,
    status: str,
    finish_reason: str | None = None,
    error: str = "",
    usage: Usage | None = None,
    model_name: str = "",
) -> dict:
    """The reply's final state, rendered once here so pages never render it again. Returns what was saved."""
    fields = {
        "content": content,
        "html": render_markdown(content),
        "status": status,
        "finish_reason": finish_reason or "",
        "error": error,
        "model_name": model_name[:200],
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
    }
    # Nothing is read back: on PostgreSQL the statements travel in one round trip, a group's all together.
    with _own_transaction(), _pipelined(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_MESSAGES} SET {', '.join(f'{name} = %s' for name in fields)}, updated = %s WHERE id = %s",
            [*fields.values(), _db_now(), reply_id],
        )
        # Findable once it ends (unless its conversation was deleted meanwhile).
        cursor.execute(*fulltext.index.saved_message_index(reply_id, content))
        metering.usage_finish(reply_id=reply_id, usage=usage, content=content, model_name=model_name)
    return fields


# --- The send path, in SQL ----------------------------------------------------------------
# reply_begin, the checkpoints and reply_finish run for every reply, one at a time on the
# database thread, so their cost is added to every sender's wait. Compiling an ORM statement
# took longer than running it (about 0.4 ms each on the 2-core benchmark machine), so these
# few statements are written out: bench/stream_load.py measured 7.2 ms of CPU per send with
# them in the ORM. Who may write is still decided in one place, permissions.role_of (the
# same Share rows Conversation.objects.writable_by filters on); for the owner it needs no query.

_MESSAGES = Message._meta.db_table
_CONVERSATIONS = Conversation._meta.db_table
_ROW_COLUMNS = "id, parent_id, role, content, status"  # _Row's fields
_MESSAGES_OF = f"SELECT {_ROW_COLUMNS} FROM {_MESSAGES} WHERE conversation_id = %s ORDER BY id"


def _db_now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


def _db_datetime(value) -> datetime | None:
    """A datetime column read with a raw cursor: naive UTC from SQLite (text in some setups), aware from PostgreSQL."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def _db_conversation_id(conversation_id: uuid.UUID):
    return Conversation._meta.pk.get_db_prep_value(conversation_id, connection)


_CONVERSATION_ROW = (
    f"SELECT id, title, model_config_id, owner_id, temperature, system_prompt, stop_requested_at, current_leaf_id"
    f" FROM {_CONVERSATIONS}"
)


def _sql_lock_and_read(conversation_id: uuid.UUID) -> tuple[Conversation | None, list[_Row]]:
    """The conversation's row, locked until the transaction ends (PostgreSQL; SQLite locks the whole database),
    and its messages, read after the lock is held: one round trip on PostgreSQL, none in a group that read it."""
    key = _db_conversation_id(conversation_id)
    read = getattr(_together, "read", None)
    if read and key in read:
        row, rows = read.pop(key)
    else:
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        with _pipelined(), connection.cursor() as conversation_cursor, connection.cursor() as messages_cursor:
            conversation_cursor.execute(f"{_CONVERSATION_ROW} WHERE id = %s{lock}", [key])
            messages_cursor.execute(_MESSAGES_OF, [key])
            row = conversation_cursor.fetchone()
            rows = [_Row(*message) for message in messages_cursor.fetchall()]
    if row is None:
        return None, []
    return Conversation(
        id=conversation_id,
        title=row[1],
        model_config_id=row[2],
        owner_id=row[3],
        temperature=row[4],
        system_prompt=row[5],
        stop_requested_at=_db_datetime(row[6]),
        current_leaf_id=row[7],
    ), rows


def _sql_messages(conversation_id: uuid.UUID) -> list[_Row]:
    with connection.cursor() as cursor:
        cursor.execute(_MESSAGES_OF, [_db_conversation_id(conversation_id)])
        return [_Row(*row) for row in cursor.fetchall()]


def _sql_insert_turn(conversation_id: uuid.UUID, author_id: int, content: str, parent_id: int | None) -> tuple[int, int]:
    """The person's message after `parent_id`, and the reply's streaming placeholder after it. Returns their ids:
    taken from the group's (_group_read), so nothing is read back, or else returned by the inserts."""
    now, conversation = _db_now(), _db_conversation_id(conversation_id)
    columns = (
        "conversation_id, parent_id, role, content, status, author_id, html, finish_reason, error, model_name, created,"
        " updated"
    )
    values = "%s, %s, %s, %s, %s, %s, '', '', '', '', %s, %s"
    ids = getattr(_together, "ids", None)
    taken = (ids.pop(0), ids.pop(0)) if ids and len(ids) >= 2 else None
    if taken:
        insert = f"INSERT INTO {_MESSAGES} (id, {columns}) VALUES (%s, {values})"
    else:
        insert = f"INSERT INTO {_MESSAGES} ({columns}) VALUES ({values}) RETURNING id"
    with connection.cursor() as cursor:
        user, reply = Message.Role.USER, Message.Role.ASSISTANT
        first = [conversation, parent_id, user, content, Message.Status.COMPLETE, author_id, now, now]
        cursor.execute(insert, [taken[0], *first] if taken else first)
        user_message_id = taken[0] if taken else cursor.fetchone()[0]
        # Findable as soon as it is saved; the reply is indexed once it ends (reply_finish), never per checkpoint.
        cursor.execute(
            fulltext.index.message_index_statement(),
            fulltext.index.message_parameters(user_message_id, conversation_id, content),
        )
        second = [conversation, user_message_id, reply, "", Message.Status.STREAMING, None, now, now]
        cursor.execute(insert, [taken[1], *second] if taken else second)
        reply_id = taken[1] if taken else cursor.fetchone()[0]
    return user_message_id, reply_id

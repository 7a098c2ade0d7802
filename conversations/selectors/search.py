"""Search: the conversations this person may see whose title or messages (any branch) match, with a snippet each.

One result per conversation: title matches first (most recently active first), then by newest matching message,
showing that message. The access rule
is Conversation.objects.visible_to, applied inside the query: a revoked share stops matching at once.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils.safestring import SafeString, mark_safe

from ..fulltext import terms
from ..fulltext.index import MESSAGES, TITLES
from ..models import Conversation, Message

PER_PAGE = 20


@dataclass(frozen=True)
class SearchResult:
    conversation_id: uuid.UUID
    title: str
    title_html: SafeString  # the title, escaped, matches marked
    owner: str | None  # who owns it, when it is someone else's (shared with this person)
    message_id: int | None  # the newest matching message; None when only the title matched
    snippet: SafeString  # escaped text around the match, matches in <mark>
    date: datetime


@dataclass(frozen=True)
class SearchPage:
    results: list[SearchResult]
    number: int
    has_next: bool


def _visible_sql(user) -> tuple[str, tuple]:
    return Conversation.objects.visible_to(user).order_by().values("pk").query.sql_with_params()


# Matching messages are read newest first in chunks (the first of FIRST_CHUNK, each next one twice as big, each
# starting below the last id read), until a page's conversations are found: a common word matches tens of
# thousands of messages, and grouping them all by conversation took 200-400 ms (bench/search_load.py).
FIRST_CHUNK = 100
LARGEST_CHUNK = 5000


def _title_hits(match: str, user) -> list[uuid.UUID]:
    """Visible conversations whose title matches, most recently active first (a few: one row per conversation)."""
    visible, params = _visible_sql(user)
    if connection.vendor == "sqlite":
        sql = (
            f"SELECT c.id FROM conversations_conversation c WHERE c.id IN (SELECT conversation_id FROM {TITLES}"
            f" WHERE {TITLES} MATCH %s) AND c.id IN ({visible}) ORDER BY c.updated DESC, c.id"
        )
    else:
        sql = (
            f"SELECT c.id FROM conversations_conversation c JOIN {TITLES} t ON t.conversation_id = c.id"
            f" WHERE t.terms @@ %s::tsquery AND c.id IN ({visible}) ORDER BY c.updated DESC, c.id"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [match, *params])
        return [uuid.UUID(str(row[0])) for row in cursor.fetchall()]


def _message_hits_sql(user) -> tuple[str, tuple]:
    """SQLite: (conversation id, message id) of visible matching messages, newest first, a chunk at a time."""
    visible, params = _visible_sql(user)
    # FTS5 reads its matches in rowid order (descending here) and stops at the LIMIT.
    sql = (
        f"SELECT m.conversation_id, s.rowid FROM {MESSAGES} s JOIN conversations_message m ON m.id = s.rowid"
        f" WHERE {MESSAGES} MATCH %s AND s.rowid < %s AND m.conversation_id IN ({visible})"
        f" ORDER BY s.rowid DESC LIMIT %s"
    )
    return sql, params


def _sqlite_message_hits(user, match: str, wanted: int, hits: dict) -> None:
    sql, params = _message_hits_sql(user)
    below, chunk = 2**63 - 1, FIRST_CHUNK
    while len(hits) < wanted:
        with connection.cursor() as cursor:
            cursor.execute(sql, [match, below, *params, chunk])
            rows = cursor.fetchall()
        for conversation_id, message_id in rows:
            hits.setdefault(uuid.UUID(str(conversation_id)), message_id)
        if len(rows) < chunk:
            break
        below, chunk = rows[-1][1], min(chunk * 2, LARGEST_CHUNK)


# PostgreSQL reads a person's own messages (the index keeps each one's owner) apart from those shared with them.
# Own: the newest OWN_WINDOWS rows (btree on (owner_id, message_id)), each tested against the query, which finds
# a common word's newest matches at once; when they are not enough (a rare word or phrase), the remaining
# matches from the GIN index on (owner_id, terms), grouped by conversation. The planner cannot choose between
# the two well (it guesses a phrase's frequency, and walked everyone's newer messages backwards), so we do.
# `owner_id >= me AND (owner_id, message_id) < (me, below)` is `owner_id = me AND message_id < below`, written
# so that only the owner index gives the order (with `owner_id = me` the planner walked the primary key instead).
OWN_WINDOWS = (1000, 4000)
_OWN_WINDOW_SQL = (
    f"WITH w AS (SELECT conversation_id, message_id, terms FROM {MESSAGES}"
    f" WHERE owner_id >= %s AND (owner_id, message_id) < (%s, %s) ORDER BY owner_id DESC, message_id DESC LIMIT %s)"
    f" SELECT conversation_id, message_id FROM w WHERE terms @@ %s::tsquery"
    f" UNION ALL (SELECT NULL, min(message_id) FROM w HAVING count(*) = %s)"
)
_OWN_REST_SQL = (
    f"SELECT conversation_id, max(message_id) AS newest FROM {MESSAGES}"
    f" WHERE owner_id = %s AND terms @@ %s::tsquery AND message_id < %s"
    f" GROUP BY conversation_id ORDER BY newest DESC LIMIT %s"
)


def _postgresql_message_hits(user, match: str, wanted: int, hits: dict) -> None:
    if not user.is_authenticated:  # visible_to: nothing
        return
    found: list[tuple[int, object]] = []  # (message id, conversation id), own and shared
    own: set = set()
    below: int | None = 2**63 - 1
    with connection.cursor() as cursor:
        for window in OWN_WINDOWS:
            cursor.execute(_OWN_WINDOW_SQL, [user.pk, user.pk, below, window, match, window])
            below = None  # the window was the last of the person's messages unless told otherwise
            for conversation_id, message_id in cursor.fetchall():
                if conversation_id is None:
                    below = message_id
                else:
                    found.append((message_id, conversation_id))
                    own.add(conversation_id)
            if below is None or len(own) >= wanted:
                break
        if below is not None and len(own) < wanted:
            cursor.execute(_OWN_REST_SQL, [user.pk, match, below, wanted])
            found += [(message_id, conversation_id) for conversation_id, message_id in cursor.fetchall()]
        # Shared with this person (usually a few conversations): each one's newest match, through the messages'
        # (conversation_id, id) index.
        shared, params = Conversation.objects.shared_with(user).order_by().values("pk").query.sql_with_params()
        cursor.execute(
            f"SELECT s.conversation_id, max(s.message_id) FROM conversations_message m"
            f" JOIN {MESSAGES} s ON s.message_id = m.id WHERE m.conversation_id IN ({shared})"
            f" AND s.terms @@ %s::tsquery GROUP BY s.conversation_id",
            [*params, match],
        )
        found += [(message_id, conversation_id) for conversation_id, message_id in cursor.fetchall()]
    for message_id, conversation_id in sorted(found, key=lambda row: row[0], reverse=True):
        hits.setdefault(uuid.UUID(str(conversation_id)), message_id)


def search(user, text: str, *, page: int = 1) -> SearchPage:
    """A page of results for what was typed in the search box (terms.parse_query says what it may hold): the
    conversations whose title matches, most recently active first, then those whose messages match, by their
    newest matching message."""
    query = terms.parse_query(text)
    page = max(1, page)
    if not query:
        return SearchPage([], page, False)
    match = terms.fts5_match(query) if connection.vendor == "sqlite" else terms.tsquery(query)
    wanted = page * PER_PAGE + 1  # one more than the page's last, to know whether a next page exists
    hits: dict[uuid.UUID, int | None] = dict.fromkeys(_title_hits(match, user))
    if connection.vendor == "sqlite":
        _sqlite_message_hits(user, match, wanted, hits)
    else:
        _postgresql_message_hits(user, match, wanted, hits)
    ordered = list(hits.items())
    shown = ordered[(page - 1) * PER_PAGE : page * PER_PAGE]
    return SearchPage(_results(user, shown, query.words), page, len(ordered) > page * PER_PAGE)


def _results(user, hits: list[tuple[uuid.UUID, int | None]], words: list[str]) -> list[SearchResult]:
    conversations = Conversation.objects.filter(pk__in=[conversation_id for conversation_id, _ in hits]).select_related(
        "owner"
    )
    by_id = {conversation.pk: conversation for conversation in conversations.only("id", "title", "updated", "owner__username")}
    messages = Message.objects.filter(pk__in=[message_id for _, message_id in hits if message_id is not None])
    message_by_id = {row["id"]: row for row in messages.values("id", "content", "created")}
    results = []
    for conversation_id, message_id in hits:
        conversation = by_id.get(conversation_id)
        message = message_by_id.get(message_id)
        if conversation is None:  # deleted between the two queries
            continue
        title = str(conversation)
        results.append(
            SearchResult(
                conversation_id=conversation_id,
                title=title,
                title_html=mark_safe(terms.snippet(title, words, width=200)),
                owner=None if conversation.owner_id == user.pk else conversation.owner.get_username(),
                message_id=message["id"] if message else None,
                snippet=mark_safe(terms.snippet(message["content"], words)) if message else mark_safe(""),
                date=message["created"] if message else conversation.updated,
            )
        )
    return results

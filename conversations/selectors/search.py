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
    """(conversation id, message id) of visible matching messages, newest first, a chunk at a time."""
    visible, params = _visible_sql(user)
    if connection.vendor == "sqlite":
        # FTS5 reads its matches in rowid order (descending here) and stops at the LIMIT.
        sql = (
            f"SELECT m.conversation_id, s.rowid FROM {MESSAGES} s JOIN conversations_message m ON m.id = s.rowid"
            f" WHERE {MESSAGES} MATCH %s AND s.rowid < %s AND m.conversation_id IN ({visible})"
            f" ORDER BY s.rowid DESC LIMIT %s"
        )
    else:
        sql = (
            f"SELECT conversation_id, message_id FROM {MESSAGES} WHERE terms @@ %s::tsquery"
            f" AND message_id < %s AND conversation_id IN ({visible}) ORDER BY message_id DESC LIMIT %s"
        )
    return sql, params


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

"""Search: the conversations this person may see whose title or messages (any branch) match, with a snippet each.

One result per conversation, most recently active first, showing its newest matching message. The access rule
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


def _matches_sql(query: terms.Query, user) -> tuple[str, list]:
    """(conversation id, newest matching message id or NULL for a title) rows, for visible conversations."""
    visible, visible_params = _visible_sql(user)
    if connection.vendor == "sqlite":
        match = terms.fts5_match(query)
        messages = (
            f"SELECT m.conversation_id AS conversation_id, MAX(m.id) AS message_id FROM {MESSAGES} s"
            f" JOIN conversations_message m ON m.id = s.rowid WHERE {MESSAGES} MATCH %s"
            f" AND m.conversation_id IN ({visible}) GROUP BY m.conversation_id"
        )
        titles = f"SELECT conversation_id, NULL FROM {TITLES} WHERE {TITLES} MATCH %s AND conversation_id IN ({visible})"
    else:
        match = terms.tsquery(query)
        messages = (
            f"SELECT conversation_id, MAX(message_id) AS message_id FROM {MESSAGES}"
            f" WHERE terms @@ %s::tsquery AND conversation_id IN ({visible}) GROUP BY conversation_id"
        )
        titles = f"SELECT conversation_id, NULL FROM {TITLES} WHERE terms @@ %s::tsquery AND conversation_id IN ({visible})"
    sql = f"{messages} UNION ALL {titles}"
    return sql, [match, *visible_params, match, *visible_params]


def search(user, text: str, *, page: int = 1) -> SearchPage:
    """A page of results for what was typed in the search box (terms.parse_query says what it may hold)."""
    query = terms.parse_query(text)
    page = max(1, page)
    if not query:
        return SearchPage([], page, False)
    matches, params = _matches_sql(query, user)
    sql = (
        f"SELECT h.conversation_id, MAX(h.message_id) FROM ({matches}) h"
        f" JOIN conversations_conversation c ON c.id = h.conversation_id"
        f" GROUP BY h.conversation_id, c.updated ORDER BY c.updated DESC, h.conversation_id LIMIT %s OFFSET %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, PER_PAGE + 1, (page - 1) * PER_PAGE])
        rows = cursor.fetchall()
    has_next, rows = len(rows) > PER_PAGE, rows[:PER_PAGE]
    hits = [(uuid.UUID(str(conversation_id)), message_id) for conversation_id, message_id in rows]
    return SearchPage(_results(user, hits, query.words), page, has_next)


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

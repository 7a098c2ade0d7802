"""The sidebar's lists, a page at a time: pinned, recent (grouped by date), shared with me, archived.

Every list is keyset-paginated on (updated, id), newest first: a page is "the PAGE_SIZE rows before this
cursor", one indexed range scan whatever the number of conversations (never OFFSET, which reads and skips
every row before it). The cursor is the last row's (updated, id), so rows with equal `updated` are
neither repeated nor skipped across pages.
"""

import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from ..models import Conversation

PAGE_SIZE = 50
# Pinned conversations shown at most: the most recently pinned (pinning is meant for a few).
PINNED_LIMIT = 50

OWN, SHARED, ARCHIVED = "own", "shared", "archived"
LISTS = (OWN, SHARED, ARCHIVED)


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    updated: datetime
    id: uuid.UUID

    def __str__(self) -> str:
        return f"{self.updated.isoformat()}~{self.id}"

    @classmethod
    def parse(cls, text: str) -> "Cursor":
        """A cursor from its text (`?before=`); BadCursor if it is not one."""
        try:
            updated, conversation_id = text.split("~")
            moment = datetime.fromisoformat(updated)
            if timezone.is_naive(moment):
                raise ValueError
            return cls(moment, uuid.UUID(conversation_id))
        except ValueError:
            raise BadCursor(text) from None


@dataclass(frozen=True)
class SidebarPage:
    rows: list[dict]  # id, title, updated (and owner for "shared"), each with its date group
    next_cursor: Cursor | None  # None: this was the last page


def _page(conversations, before: Cursor | None, fields: dict) -> tuple[list[dict], Cursor | None]:
    if before is not None:
        conversations = conversations.filter(
            Q(updated__lt=before.updated) | Q(updated=before.updated, id__lt=before.id)
        )
    rows = list(conversations.order_by("-updated", "-id").values("id", "title", "updated", **fields)[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return rows, Cursor(rows[-1]["updated"], rows[-1]["id"]) if more else None


def sidebar_page(user, which: str = OWN, *, before: Cursor | None = None, zone=None) -> SidebarPage:
    """One page of a sidebar list, in one query. OWN: this person's conversations neither pinned nor archived;
    SHARED: those others shared with them (their owner's pins and archive do not apply); ARCHIVED: this
    person's archived ones. Each row carries its date group in `zone` (default: the server's time zone)."""
    fields = {}
    if which == OWN:
        conversations = Conversation.objects.filter(owner=user, archived_at__isnull=True, pinned_at__isnull=True)
    elif which == ARCHIVED:
        conversations = Conversation.objects.filter(owner=user, archived_at__isnull=False)
    elif which == SHARED:
        conversations = Conversation.objects.shared_with(user)
        fields["owner_name"] = _username_field()
    else:
        raise ValueError(which)
    rows, next_cursor = _page(conversations, before, fields)
    today = timezone.localdate(timezone=zone)
    for row in rows:
        row["group"], row["group_label"] = date_group(row["updated"], today=today, zone=zone)
    return SidebarPage(rows, next_cursor)


def _username_field():
    from django.contrib.auth import get_user_model
    from django.db.models import F

    return F(f"owner__{get_user_model().USERNAME_FIELD}")


def pinned_list(user) -> list[dict]:
    """This person's pinned conversations (not archived), most recently pinned first, PINNED_LIMIT at most."""
    pinned = Conversation.objects.filter(owner=user, pinned_at__isnull=False, archived_at__isnull=True)
    return list(pinned.order_by("-pinned_at").values("id", "title", "updated")[:PINNED_LIMIT])


def date_group(moment: datetime, *, today: date, zone=None) -> tuple[str, str]:
    """The sidebar group a conversation last active at `moment` falls in, as (key, label): Today, Yesterday,
    Previous 7 days, Previous 30 days, then its month ("March 2026"). Days are `zone`'s (the server's if None)."""
    day = timezone.localtime(moment, timezone=zone).date()
    if day >= today:  # a clock a little ahead counts as today
        return "today", _("Today")
    if day == today - timedelta(days=1):
        return "yesterday", _("Yesterday")
    if day > today - timedelta(days=7):
        return "week", _("Previous 7 days")
    if day > today - timedelta(days=30):
        return "month", _("Previous 30 days")
    return day.strftime("%Y-%m"), date_format(day, "YEAR_MONTH_FORMAT")


def zone_named(name: str | None):
    """The time zone a browser said it is in (the `tz` cookie sidebar.js sets), or None (the server's)."""
    if not name or len(name) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None

"""The sidebar: date groups, pages loaded as it scrolls (keyset on updated and id), pinning, archiving, and
archiving or deleting several at once."""

import html
import json
import re
import zoneinfo
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from conversations.models import Conversation
from conversations.selectors import sidebar
from tests import factories
from tests.helpers import flashes, page, shared_sidebar, sidebar_list, sidebar_titles

pytestmark = pytest.mark.django_db


def groups(text: str) -> list[str]:
    return re.findall(r'<li class="sidebar-group" data-group="([^"]+)">', text)


def more_url(text: str, list_id: str) -> str | None:
    found = re.search(rf'<ul [^>]*id="{list_id}"[^>]*data-more="([^"]+)"', text)
    return found.group(1).replace("&amp;", "&") if found else None


def titles_in(fragment: str) -> list[str]:
    return [html.unescape(title) for title in re.findall(r'<span class="sidebar-title">([^<]*)</span>', fragment)]


# --- date groups ---------------------------------------------------------------------------


def test_date_groups_today_yesterday_previous_7_and_30_days_then_months():
    zone = zoneinfo.ZoneInfo("Europe/Paris")
    today = datetime(2026, 3, 20, 12, tzinfo=zone).date()

    def group(*args):
        return sidebar.date_group(datetime(*args, tzinfo=zone), today=today, zone=zone)

    assert group(2026, 3, 20, 0, 5) == ("today", "Today")
    assert group(2026, 3, 19, 23, 59) == ("yesterday", "Yesterday")
    assert group(2026, 3, 14)[0] == "week"
    assert group(2026, 3, 13)[0] == "month"
    assert group(2026, 2, 19)[0] == "month"
    assert group(2026, 2, 18) == ("2026-02", "February 2026")
    assert group(2025, 12, 1) == ("2025-12", "December 2025")


def test_date_groups_follow_the_browsers_time_zone_when_it_says(logged_in, make_conversation):
    # 23:30 UTC yesterday is already today in Tokyo.
    now = timezone.now()
    late = now.replace(hour=23, minute=30, second=0, microsecond=0) - timedelta(days=1)
    make_conversation(title="Late", updated=late)
    tokyo_today = timezone.localdate(timezone=zoneinfo.ZoneInfo("Asia/Tokyo"))
    expected = "today" if timezone.localtime(late, zoneinfo.ZoneInfo("Asia/Tokyo")).date() == tokyo_today else "yesterday"
    logged_in.cookies["tz"] = "Asia/Tokyo"
    assert groups(page(logged_in.get("/"))) == [expected]
    logged_in.cookies["tz"] = "Asia%2FTokyo"  # as sidebar.js writes it (encodeURIComponent)
    assert groups(page(logged_in.get("/"))) == [expected]
    logged_in.cookies["tz"] = "../../etc/passwd"  # not a zone: the server's
    assert logged_in.get("/").status_code == 200


def test_home_page_groups_conversations_by_date(logged_in, make_conversation):
    for title, days in [("Now", 0), ("Yesterday's", 1), ("Last week", 3), ("Last month", 12), ("Old", 400)]:
        make_conversation(title=title, ago=timedelta(days=days))
    html = page(logged_in.get("/"))
    assert sidebar_titles(html) == ["Now", "Yesterday's", "Last week", "Last month", "Old"]
    assert groups(html)[:4] == ["today", "yesterday", "week", "month"]
    assert re.fullmatch(r"\d{4}-\d{2}", groups(html)[4])


# --- paging --------------------------------------------------------------------------------


def all_pages(client, first_page: str, list_id: str = "sidebar-own") -> list[str]:
    titles = [title for title, _ in sidebar_list(first_page, list_id)]
    url = more_url(first_page, list_id)
    while url:
        answer = client.get(url).json()
        titles += titles_in(answer["html"])
        url = answer["more"]
    return titles


def test_pages_continue_exactly_where_the_last_stopped_even_with_equal_times(logged_in, user):
    same = timezone.now() - timedelta(hours=1)
    # 130 conversations, 70 of them with the very same `updated`: the cursor's id breaks the tie.
    for number in range(130):
        updated = same if number < 70 else same - timedelta(seconds=number)
        factories.make_conversation(owner=user, title=f"Chat {number}", updated=updated)
    html = page(logged_in.get("/"))
    assert len(sidebar_list(html, "sidebar-own")) == sidebar.PAGE_SIZE
    titles = all_pages(logged_in, html)
    assert len(titles) == 130 and len(set(titles)) == 130
    expected = list(Conversation.objects.filter(owner=user).order_by("-updated", "-id").values_list("title", flat=True))
    assert titles == expected


def test_a_later_page_repeats_no_date_heading_the_last_page_ended_in(logged_in, user):
    for number in range(60):
        factories.make_conversation(owner=user, title=f"Chat {number}", ago=timedelta(seconds=number))
    html = page(logged_in.get("/"))
    assert groups(html) == ["today"]
    second = logged_in.get(more_url(html, "sidebar-own")).json()
    assert groups(second["html"]) == [] and len(titles_in(second["html"])) == 10 and second["more"] is None


def test_shared_with_me_pages_the_same_way(logged_in, user, make_user):
    bob = make_user("bob")
    for number in range(55):
        chat = factories.make_conversation(owner=bob, title=f"Bob's {number}", ago=timedelta(minutes=number))
        factories.make_share(conversation=chat, user=user)
    html = page(logged_in.get("/"))
    assert len(shared_sidebar(html)) == 50 and shared_sidebar(html)[0] == ("Bob's 0", "bob")
    titles = all_pages(logged_in, html, "sidebar-shared")
    assert titles == [f"Bob's {number}" for number in range(55)]


def test_a_bad_cursor_or_list_is_refused(logged_in):
    assert logged_in.get("/sidebar/?before=nonsense").status_code == 400
    assert logged_in.get("/sidebar/?list=archived&before=x").status_code == 400


def test_a_page_only_ever_lists_your_own(logged_in, user, make_user):
    factories.make_conversation(owner=make_user("bob"), title="Bob's secret")
    mine = factories.make_conversation(owner=user, title="Mine")
    cursor = sidebar.Cursor(mine.updated + timedelta(days=1), mine.id)
    answer = logged_in.get("/sidebar/", {"list": "own", "before": str(cursor)}).json()
    assert titles_in(answer["html"]) == ["Mine"]


# --- pinning and archiving ------------------------------------------------------------------


def test_a_pinned_conversation_stays_at_the_top(logged_in, make_conversation):
    old = make_conversation(title="Old favourite", ago=timedelta(days=90))
    make_conversation(title="Recent")
    logged_in.post(f"/c/{old.id}/pin/", {"pinned": "1"})
    html = page(logged_in.get("/"))
    assert sidebar_list(html, "sidebar-pinned") == [("Old favourite", "")]
    assert sidebar_titles(html) == ["Old favourite", "Recent"]
    logged_in.post(f"/c/{old.id}/pin/", {"pinned": "0"})
    assert sidebar_list(page(logged_in.get("/")), "sidebar-pinned") == []


def test_an_archived_conversation_leaves_the_sidebar_but_opens_by_url_and_is_listed_under_archived(
    logged_in, make_conversation
):
    gone = make_conversation(title="Done with it")
    make_conversation(title="Still here")
    response = logged_in.post(f"/c/{gone.id}/archive/", {"archived": "1"})
    assert response.status_code == 302
    assert sidebar_titles(page(logged_in.get("/"))) == ["Still here"]
    opened = logged_in.get(f"/c/{gone.id}/")
    assert opened.status_code == 200 and 'id="archived-badge"' in page(opened)
    assert "Done with it" in page(logged_in.get("/archived/"))
    logged_in.post(f"/c/{gone.id}/archive/", {"archived": "0"})
    assert sorted(sidebar_titles(page(logged_in.get("/")))) == ["Done with it", "Still here"]


def test_only_the_owner_may_pin_or_archive(client, user, make_user, make_conversation):
    bob = make_user("bob")
    chat = make_conversation(title="Alice's")
    factories.make_share(conversation=chat, user=bob, role="collaborator")
    client.force_login(bob)
    assert client.post(f"/c/{chat.id}/pin/", {"pinned": "1"}).status_code == 403
    assert client.post(f"/c/{chat.id}/archive/", {"archived": "1"}).status_code == 403
    chat.refresh_from_db()
    assert chat.pinned_at is None and chat.archived_at is None


# --- several at once ------------------------------------------------------------------------


def test_bulk_archive_and_delete_change_only_your_own(logged_in, user, make_user, make_conversation):
    bob = make_user("bob")
    bobs = factories.make_conversation(owner=bob, title="Bob's")
    factories.make_share(conversation=bobs, user=user, role="collaborator")
    first, second, kept = (make_conversation(title=title) for title in ("First", "Second", "Kept"))
    response = logged_in.post("/sidebar/bulk/", {"action": "archive", "ids": [first.id, bobs.id], "next": "/"})
    assert response.status_code == 302
    first.refresh_from_db(), bobs.refresh_from_db()
    assert first.archived_at is not None and bobs.archived_at is None

    response = logged_in.post("/sidebar/bulk/", {"action": "delete", "ids": [second.id, bobs.id], "next": "/"}, follow=True)
    assert not Conversation.objects.filter(pk=second.pk).exists()
    assert Conversation.objects.filter(pk=bobs.pk).exists() and Conversation.objects.filter(pk=kept.pk).exists()
    messages = [text for _, text in flashes(response)]
    assert "1 conversation deleted." in messages
    assert any("left as it was" in text for text in messages)


def test_bulk_needs_the_csrf_token(user, make_conversation):
    chat = make_conversation(title="Keep me")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    refused = client.post("/sidebar/bulk/", {"action": "delete", "ids": [chat.id]})
    assert refused.status_code == 403
    assert Conversation.objects.filter(pk=chat.pk).exists()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page(client.get("/"))).group(1)
    accepted = client.post("/sidebar/bulk/", {"action": "delete", "ids": [chat.id], "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302
    assert not Conversation.objects.filter(pk=chat.pk).exists()


@pytest.mark.parametrize(
    "data", [{"action": "archive"}, {"action": "explode", "ids": ["x"]}, {"action": "delete", "ids": ["nope"]}]
)
def test_bulk_without_valid_ids_or_action_changes_nothing(logged_in, make_conversation, data):
    chat = make_conversation(title="Safe")
    logged_in.post("/sidebar/bulk/", data)
    chat.refresh_from_db()
    assert chat.archived_at is None


def test_unarchive_from_the_archived_page(logged_in, make_conversation):
    chat = make_conversation(title="Back again")
    logged_in.post("/sidebar/bulk/", {"action": "archive", "ids": [chat.id]})
    logged_in.post("/sidebar/bulk/", {"action": "unarchive", "ids": [chat.id], "next": "/archived/"})
    assert sidebar_titles(page(logged_in.get("/"))) == ["Back again"]


# --- weight ---------------------------------------------------------------------------------


def sidebar_bytes(html: str) -> int:
    start = html.index('<aside class="sidebar"')
    return len(html[start : html.index("</aside>", start)].encode())


def test_the_sidebar_weighs_the_same_with_60_or_600_conversations(logged_in, user):
    def make(numbers, step):
        now = timezone.now()
        Conversation.objects.bulk_create(
            [Conversation(owner=user, title=f"Chat {n:04}", updated=now - step * n) for n in numbers]
        )

    make(range(60), timedelta(minutes=1))
    few = sidebar_bytes(page(logged_in.get("/")))
    make(range(60, 600), timedelta(days=1))
    many = sidebar_bytes(page(logged_in.get("/")))
    assert abs(many - few) < 2_000, (few, many)


def test_more_returns_json(logged_in, user):
    for number in range(51):
        factories.make_conversation(owner=user, title=f"Chat {number}", ago=timedelta(minutes=number))
    answer = logged_in.get(more_url(page(logged_in.get("/")), "sidebar-own"))
    assert answer["Content-Type"] == "application/json"
    assert json.loads(answer.content)["more"] is None

"""Usage pages: the admin's usage records (read-only, with totals) and limits, and a person's "My usage"."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from conversations import metering
from conversations.models import Conversation, Limit, Message, ModelConfig, Team, TeamMembership, UsageRecord
from tests.factories import make_model_config, make_provider, make_usage_record

pytestmark = pytest.mark.django_db

USAGE = "/admin/conversations/usagerecord/"
LIMITS = "/admin/conversations/limit/"


@pytest.fixture
def models(db) -> tuple[ModelConfig, ModelConfig]:
    provider = make_provider()
    return make_model_config(provider=provider, display_name="Big"), make_model_config(provider=provider, display_name="Small")


def record(user, model, prompt: int, completion: int, cost: str, *, at: datetime | None = None, **extra) -> UsageRecord:
    return make_usage_record(
        user=user,
        model_config=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=Decimal(cost),
        created=at,
        **extra,
    )


def totals(response) -> dict:
    """The admin changelist's totals line, as numbers."""
    html = response.content.decode()
    return {
        name: value.replace(",", "")
        for name, value in re.findall(r'<span data-total="(\w+)">([^<]*)</span>', html)
    }


# --- the admin's usage records ---------------------------------------------------------------


@pytest.fixture
def spending(user, bob, models):
    big, small = models
    research = Team.objects.create(name="Research")
    record(user, big, 1000, 200, "0.012", at=datetime(2025, 3, 10, 12, tzinfo=UTC), team=research)
    record(user, small, 100, 20, "0.0001", at=datetime(2025, 3, 11, 12, tzinfo=UTC), estimated=True)
    record(bob, big, 5000, 1000, "0.06", at=datetime(2025, 4, 2, 12, tzinfo=UTC))
    return research


def test_the_changelist_totals_every_record_shown(admin_client, spending):
    response = admin_client.get(USAGE)
    assert response.status_code == 200
    assert totals(response) == {"prompt": "6100", "completion": "1220", "tokens": "7320", "cost": "0.072100"}
    assert "Totals for the 3 replies selected" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("user__id__exact={alice}", {"prompt": "1100", "completion": "220", "tokens": "1320", "cost": "0.012100"}),
        ("estimated__exact=1", {"prompt": "100", "completion": "20", "tokens": "120", "cost": "0.000100"}),
        ("model_config__id__exact={big}", {"prompt": "6000", "completion": "1200", "tokens": "7200", "cost": "0.072000"}),
        ("team__id__exact={team}", {"prompt": "1000", "completion": "200", "tokens": "1200", "cost": "0.012000"}),
        ("q=bob", {"prompt": "5000", "completion": "1000", "tokens": "6000", "cost": "0.060000"}),
        ("created__year=2025&created__month=3", {"prompt": "1100", "completion": "220", "tokens": "1320", "cost": "0.012100"}),
        (
            "created__year=2025&created__month=3&created__day=11",
            {"prompt": "100", "completion": "20", "tokens": "120", "cost": "0.000100"},
        ),
        (
            "user__id__exact={alice}&created__year=2025&created__month=4",
            {"prompt": "0", "completion": "0", "tokens": "0", "cost": "0.000000"},
        ),
    ],
)
def test_the_totals_follow_filters_search_and_dates(admin_client, spending, user, models, query, expected):
    query = query.format(alice=user.pk, big=models[0].pk, team=spending.pk)
    response = admin_client.get(f"{USAGE}?{query}")
    assert response.status_code == 200
    assert totals(response) == expected


def test_the_date_hierarchy_and_filters_render(admin_client, spending):
    html = admin_client.get(f"{USAGE}?created__year=2025").content.decode()
    months = html.split('<nav class="toplinks">')[1].split("</nav>")[0]
    assert "March 2025" in months and "April 2025" in months  # the months of 2025 with usage
    headings = [" ".join(text.split()) for text in re.findall(r"<summary>(.*?)</summary>", html, re.S)]
    assert headings == ["By user", "By team", "By model", "By estimated", "By created"]
    users = html.split("By user")[1].split("</ul>")[0]
    assert "alice" in users and "bob" in users


def test_usage_records_are_read_only_and_never_show_the_reply(admin_client, user, conversation, models):
    reply = Message.objects.create(conversation=conversation, role="assistant", content="Top secret answer")
    usage = record(user, models[0], 10, 20, "0", message=reply)
    assert admin_client.get(f"{USAGE}add/").status_code == 403
    page = admin_client.get(f"{USAGE}{usage.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"#{reply.pk}" in html and "Top secret" not in html
    assert 'name="_save"' not in html
    assert admin_client.post(f"{USAGE}{usage.pk}/change/", {"prompt_tokens": 1}).status_code == 403
    assert admin_client.post(f"{USAGE}{usage.pk}/delete/", {"post": "yes"}).status_code == 403
    assert UsageRecord.objects.get(pk=usage.pk).prompt_tokens == 10


def test_staff_with_the_view_permission_see_everyones_usage(client, make_user, spending):
    staff = make_user("accountant", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_usagerecord"))
    client.force_login(staff)
    response = client.get(USAGE)
    assert response.status_code == 200
    assert totals(response)["tokens"] == "7320"


def test_staff_without_the_permission_see_no_usage(client, make_user, spending):
    client.force_login(make_user("helper", is_staff=True))
    assert client.get(USAGE).status_code == 403


# --- the admin's limits --------------------------------------------------------------------------


def limit_form(**fields) -> dict:
    return {"user": "", "team": "", "daily_tokens": "", "monthly_tokens": "", "requests_per_minute": "", **fields}


def test_a_limit_is_for_a_person_or_a_team_not_both(admin_client, user):
    team = Team.objects.create(name="Research")
    for data in (limit_form(daily_tokens=10), limit_form(user=user.pk, team=team.pk, daily_tokens=10)):
        response = admin_client.post(f"{LIMITS}add/", data)
        assert response.status_code == 200
        html = response.content.decode()
        assert "Choose either a person or a team" in html and "violated" not in html
    assert not Limit.objects.exists()


def test_a_second_limit_for_the_same_person_is_refused_plainly(admin_client, user):
    Limit.objects.create(user=user, daily_tokens=10)
    response = admin_client.post(f"{LIMITS}add/", limit_form(user=user.pk, monthly_tokens=10))
    assert "This person already has a limit: change that one." in response.content.decode()


def test_a_limit_needs_a_cap(admin_client, user):
    response = admin_client.post(f"{LIMITS}add/", limit_form(user=user.pk))
    assert "Set at least one cap" in response.content.decode()


def test_an_admin_sets_a_limit_and_it_applies_at_once(admin_client, user):
    UsageRecord.objects.create(user=user, prompt_tokens=500)
    metering.limits_check(user)  # "no limits" is cached
    response = admin_client.post(f"{LIMITS}add/", limit_form(user=user.pk, daily_tokens=500))
    assert response.status_code == 302
    with pytest.raises(Exception, match="daily budget of 500 tokens"):
        metering.limits_check(user)
    add_page = admin_client.get(f"{LIMITS}add/").content.decode()
    assert "Prompt and reply tokens per UTC day" in add_page and "first team" in add_page


# --- My usage ------------------------------------------------------------------------------------


def cells(html: str, table_id: str) -> list[list[str]]:
    """A table's body rows, as the text of each cell."""
    table = html.split(f'id="{table_id}"')[1].split("</table>")[0]
    body = table.split("<tbody>")[1]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        texts = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        rows.append(texts)
    return rows


def test_my_usage_needs_a_login(client):
    response = client.get("/usage/")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_my_usage_totals_per_period_and_model(logged_in, user, bob, models, conversation):
    big, small = models
    reply = Message.objects.create(conversation=conversation, role="assistant", content="A")
    record(user, big, 1000, 200, "0.0120", message=reply)
    record(user, small, 100, 20, "0.0001", estimated=True)
    record(user, big, 2000, 400, "0.0240", at=timezone.now() - timedelta(days=40))
    record(bob, big, 99_999, 99_999, "9.9999")  # someone else's

    html = logged_in.get("/usage/").content.decode()
    assert cells(html, "usage-totals") == [
        ["Today (UTC)", "2", "1,100", "220", "1,320", "0.0121"],
        ["This month (UTC)", "2", "1,100", "220", "1,320", "0.0121"],
        ["All time", "3", "3,100", "620", "3,720", "0.0361"],
    ]
    assert cells(html, "usage-models") == [
        ["Big", "2", "3,000", "600", "3,600", "0.0360"],
        ["Small", "1", "100", "20", "120", "0.0001"],
    ]
    assert [row[1:] for row in cells(html, "usage-recent")] == [
        ["—", "Small", "≈100", "≈20", "0.000100"],
        ["Test chat", "Big", "1,000", "200", "0.012000"],
        ["—", "Big", "2,000", "400", "0.024000"],
    ]
    assert "99,999" not in html and "9.9999" not in html
    assert 'href="/usage/"' in html  # the sidebar links here
    assert "No limits apply to you." in html


def test_my_usage_lists_the_latest_replies_with_estimates_marked(logged_in, user, models, conversation, make_user):
    big, small = models
    mine = Message.objects.create(conversation=conversation, role="assistant", content="A")
    other = Conversation.objects.create(owner=make_user("carol"), title="Carol's secret plans")
    not_mine = Message.objects.create(conversation=other, role="assistant", content="B")
    now = timezone.now()
    record(user, big, 1000, 200, "0.012", message=mine, at=now - timedelta(minutes=3))
    record(user, small, 100, 20, "0.0001", estimated=True, at=now - timedelta(minutes=2))
    record(user, big, 5, 5, "0", message=not_mine, at=now - timedelta(minutes=1))  # shared once, no longer

    html = logged_in.get("/usage/").content.decode()
    rows = [row[1:] for row in cells(html, "usage-recent")]
    assert rows == [
        ["—", "Big", "5", "5", "0.000000"],
        ["—", "Small", "≈100", "≈20", "0.000100"],
        ["Test chat", "Big", "1,000", "200", "0.012000"],
    ]
    assert f'href="/c/{conversation.id}/"' in html
    assert "Carol" not in html


def test_my_usage_shows_my_limits_and_what_is_left(logged_in, user, bob, models):
    team = Team.objects.create(name="Research")
    TeamMembership.objects.create(team=team, user=user)
    Limit.objects.create(user=user, daily_tokens=10_000, requests_per_minute=5)
    Limit.objects.create(team=team, monthly_tokens=1_000)
    record(user, models[0], 3000, 500, "0", team=team)
    record(bob, models[0], 700, 0, "0", team=team)

    html = logged_in.get("/usage/").content.decode()
    rows = cells(html, "usage-limits")
    assert rows[0][:5] == ["Tokens per day", "You", "10,000", "3,500", "6,500"]
    assert rows[0][5].startswith("tomorrow at 00:00 UTC, in ")
    assert rows[1][:5] == ["Requests per minute", "You", "5", "1", "4"]
    assert rows[2][:5] == ["Tokens per month", "Team Research", "1,000", "4,200", "0 (reached)"]
    assert " at 00:00 UTC, in " in rows[2][5]


def test_the_new_chat_form_says_why_it_is_refused(logged_in, user):
    Limit.objects.create(user=user, requests_per_minute=1)
    UsageRecord.objects.create(user=user)
    response = logged_in.post("/c/new/", {"content": "Hello?"})
    assert response.status_code == 400
    assert "You have reached your limit of 1 request per minute. Try again in " in response.content.decode()
    assert not Conversation.objects.exists()


@pytest.mark.parametrize("count", [3, 30])
def test_my_usage_query_count_does_not_grow_with_records(logged_in, user, models, conversation, count, django_assert_num_queries):
    Limit.objects.create(user=user, daily_tokens=10_000)
    for index in range(count):
        reply = Message.objects.create(conversation=conversation, role="assistant", content=str(index))
        record(user, models[index % 2], 10, 10, "0.0001", message=reply)
    # Session, user, the limits (cached per process afterwards), usage for them; totals,
    # per model, latest replies; the sidebar's two lists and its count of invitations waiting.
    # The sidebar's pinned conversations and the profile are two more (test_views.HOME_QUERIES).
    with django_assert_num_queries(12):
        response = logged_in.get("/usage/")
    assert response.status_code == 200
    assert len(cells(response.content.decode(), "usage-recent")) == count


def test_the_changelist_shows_each_records_model_person_and_tokens(admin_client, spending):
    table = admin_client.get(USAGE).content.decode().split('id="result_list"')[1].split("</table>")[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1:]
    cells = [
        [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
        for row in rows
    ]
    expected = [("bob", "big", "6000"), ("alice", "small", "120"), ("alice", "big", "1200")]
    assert [(row[1], row[3], row[6]) for row in cells] == expected

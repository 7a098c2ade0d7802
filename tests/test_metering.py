"""Usage and limits: records written on the send path, costs, budgets per person and team, the request rate."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import metering, services
from conversations.context import estimate_tokens
from conversations.exceptions import LimitExceeded
from conversations.llm import Usage
from conversations.models import Conversation, Limit, Message, Team, TeamMembership, UsageRecord
from tests.factories import make_team, make_usage_record
from tests.fake_openai import error, reply
from tests.helpers import done, open_socket, receive_until

NOW = datetime(2025, 3, 10, 20, 48, 0, tzinfo=UTC)  # a Monday evening, mid-month


def spend(user, tokens: int, *, at: datetime | None = None, team=None, **extra) -> UsageRecord:
    """A finished reply's record: `tokens` prompt tokens used at `at`."""
    return make_usage_record(user=user, team=team, prompt_tokens=tokens, created=at, **extra)


def refusal(user, now: datetime = NOW) -> str:
    with pytest.raises(LimitExceeded) as refused:
        metering.limits_check(user, now=now)
    assert refused.value.code == "limit_exceeded"
    return refused.value.message


@pytest.fixture
def team(user) -> Team:
    return make_team(name="Research", members=[user])


# --- the record of a reply -----------------------------------------------------------------


@pytest.mark.django_db
class TestRecording:
    def test_a_send_records_its_request_with_an_estimated_prompt(self, user, conversation, model_config):
        model_config.system_prompt = "Be brief."
        model_config.save()
        Message.objects.create(conversation=conversation, role="user", content="Earlier question", author=user)
        Message.objects.create(conversation=conversation, role="assistant", content="An answer.")
        plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="Hello there")

        record = UsageRecord.objects.get()
        assert (record.message_id, record.user, record.team, record.model_config) == (
            plan.reply_id, user, None, model_config
        )
        expected = sum(estimate_tokens(text) for text in ("Be brief.", "Earlier question", "An answer.", "Hello there"))
        assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (expected, 0, True)
        assert (record.model_name, record.cost) == ("fake-model", Decimal(0))

    def test_the_apis_usage_replaces_the_estimate_and_prices_the_reply(self, user, conversation, model_config):
        model_config.input_price, model_config.output_price = Decimal("2.50"), Decimal("10")
        model_config.save()
        plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
        services.replies.reply_finish(
            reply_id=plan.reply_id, content="Hi!", status="complete", usage=Usage(1000, 500), model_name="fake-0613"
        )
        record = UsageRecord.objects.get()
        assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (1000, 500, False)
        assert record.model_name == "fake-0613"
        assert record.cost == Decimal("0.0075")  # 1000 x 2.50 / 1M + 500 x 10 / 1M

    def test_without_the_apis_usage_the_reply_is_estimated_from_its_text(self, user, conversation, model_config):
        model_config.input_price, model_config.output_price = Decimal("1"), Decimal("2")
        model_config.save()
        plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="x" * 400)
        services.replies.reply_finish(reply_id=plan.reply_id, content="y" * 800, status="complete")
        record = UsageRecord.objects.get()
        prompt, completion = estimate_tokens("x" * 400), estimate_tokens("y" * 800)
        assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (prompt, completion, True)
        assert record.model_name == "fake-model"  # the configured model: the API named none
        assert record.cost == (Decimal(prompt) * 1 + Decimal(completion) * 2) / 1_000_000

    def test_a_model_without_prices_costs_nothing(self, user, conversation, model_config):
        plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
        services.replies.reply_finish(reply_id=plan.reply_id, content="Hi!", status="complete", usage=Usage(10, 20))
        assert UsageRecord.objects.get().cost == Decimal(0)

    def test_a_reply_that_fails_before_any_token_keeps_its_record(self, user, conversation, model_config):
        plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hello")
        services.replies.reply_finish(reply_id=plan.reply_id, content="", status="error", error="The server is down.")
        record = UsageRecord.objects.get()
        assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (estimate_tokens("hello"), 0, True)

    def test_the_reply_counts_for_the_team_the_person_joined_first(self, user, conversation, make_user):
        later, first = Team.objects.create(name="A later team"), Team.objects.create(name="Z first team")
        TeamMembership.objects.create(team=first, user=user)
        TeamMembership.objects.create(team=later, user=user)
        services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
        assert UsageRecord.objects.get().team == first

    def test_the_demo_model_is_recorded_without_a_config(self, user, conversation):
        services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
        record = UsageRecord.objects.get()
        assert record.model_config is None and record.model_name == "demo"

    def test_regenerating_records_each_version_of_the_reply(self, user, conversation, model_config):
        first = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
        services.replies.reply_finish(reply_id=first.reply_id, content="One", status="complete", usage=Usage(5, 7))
        second = services.replies.reply_regenerate_begin(user=user, conversation_id=conversation.id)
        records = list(UsageRecord.objects.order_by("id").values_list("message_id", "completion_tokens"))
        assert records == [(first.reply_id, 7), (second.reply_id, 0)]  # the first version is kept, and what it used

    def test_the_send_path_adds_one_insert_and_one_update(self, user, conversation, model_config):
        metering.limits_check(user)  # the limit cache is warm, as on every send but the first
        with CaptureQueriesContext(connection) as begin:
            plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
        with CaptureQueriesContext(connection) as finish:
            services.replies.reply_finish(reply_id=plan.reply_id, content="Hi", status="complete", usage=Usage(1, 2))

        def metering_statements(queries):
            return [q["sql"].split()[0] for q in queries if "usagerecord" in q["sql"] or "conversations_limit" in q["sql"]]

        assert metering_statements(begin.captured_queries) == ["INSERT"]
        assert metering_statements(finish.captured_queries) == ["UPDATE"]


# --- budgets and the request rate -------------------------------------------------------------


@pytest.mark.django_db
class TestLimits:
    def test_at_the_daily_budget_a_send_is_refused_one_below_it_is_allowed(self, user):
        Limit.objects.create(user=user, daily_tokens=10_000)
        spend(user, 9_999, at=NOW - timedelta(hours=1))
        metering.limits_check(user, now=NOW)
        spend(user, 1, at=NOW - timedelta(minutes=5))
        message = refusal(user)
        assert message == (
            "You have used your daily budget of 10,000 tokens (10,000 used). "
            "It resets tomorrow at 00:00 UTC, in 3 h 12 min."
        )

    def test_the_day_starts_at_midnight_utc(self, user):
        Limit.objects.create(user=user, daily_tokens=100)
        midnight = NOW.replace(hour=0, minute=0)
        spend(user, 500, at=midnight - timedelta(seconds=1))  # yesterday
        spend(user, 99, at=midnight)
        metering.limits_check(user, now=NOW)
        spend(user, 1, at=midnight + timedelta(hours=1))
        assert "(100 used)" in refusal(user)

    def test_prompt_and_completion_tokens_both_count(self, user):
        Limit.objects.create(user=user, daily_tokens=100)
        spend(user, 60, at=NOW, completion_tokens=40)
        assert "(100 used)" in refusal(user)

    def test_at_the_monthly_budget_a_send_is_refused_until_the_first(self, user):
        Limit.objects.create(user=user, monthly_tokens=1_000_000)
        spend(user, 999_999, at=NOW.replace(day=1, hour=0, minute=0))
        spend(user, 5_000_000, at=NOW.replace(day=1, hour=0, minute=0) - timedelta(seconds=1))  # February
        metering.limits_check(user, now=NOW)
        spend(user, 1, at=NOW)
        assert refusal(user) == (
            "You have used your monthly budget of 1,000,000 tokens (1,000,000 used). "
            "It resets on 1 April at 00:00 UTC, in 21 d 3 h."
        )

    def test_the_monthly_budget_of_december_resets_on_the_first_of_january(self, user):
        Limit.objects.create(user=user, monthly_tokens=10)
        new_years_eve = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
        spend(user, 10, at=new_years_eve)
        assert "It resets on 1 January at 00:00 UTC, in 1 h." in refusal(user, new_years_eve)

    def test_requests_per_minute(self, user):
        Limit.objects.create(user=user, requests_per_minute=3)
        spend(user, 0, at=NOW - timedelta(seconds=61))  # out of the window
        spend(user, 0, at=NOW - timedelta(seconds=48))
        spend(user, 0, at=NOW - timedelta(seconds=20))
        metering.limits_check(user, now=NOW)
        spend(user, 0, at=NOW - timedelta(seconds=1))
        assert refusal(user) == "You have reached your limit of 3 requests per minute. Try again in 12 seconds."

    def test_over_the_rate_the_wait_is_until_enough_requests_age_out(self, user):
        Limit.objects.create(user=user, requests_per_minute=2)
        for seconds in (50, 40, 30, 5):  # four in the window (the limit was lowered): two must age out
            spend(user, 0, at=NOW - timedelta(seconds=seconds))
        assert refusal(user).endswith("Try again in 30 seconds.")

    def test_a_teams_budget_counts_every_members_usage_for_the_team(self, user, team, make_user):
        bob = make_user("bob")
        TeamMembership.objects.create(team=team, user=bob)
        Limit.objects.create(team=team, daily_tokens=1_000)
        spend(bob, 600, at=NOW, team=team)
        spend(user, 399, at=NOW, team=team)
        spend(user, 5_000, at=NOW, team=None)  # made before alice joined: not the team's
        metering.limits_check(user, now=NOW)
        spend(bob, 1, at=NOW, team=team)
        assert refusal(user) == (
            "Your team Research has used its daily budget of 1,000 tokens (1,000 used). "
            "It resets tomorrow at 00:00 UTC, in 3 h 12 min."
        )

    def test_a_teams_monthly_budget_and_request_rate(self, user, team):
        Limit.objects.create(team=team, monthly_tokens=50, requests_per_minute=2)
        spend(user, 10, at=NOW - timedelta(seconds=30), team=team)
        metering.limits_check(user, now=NOW)
        spend(user, 10, at=NOW - timedelta(seconds=10), team=team)
        assert refusal(user) == "Your team Research has reached its limit of 2 requests per minute. Try again in 30 seconds."
        spend(user, 30, at=NOW - timedelta(minutes=5), team=team)
        assert refusal(user).startswith("Your team Research has used its monthly budget of 50 tokens (50 used).")

    def test_a_team_the_person_is_not_in_does_not_limit_them(self, user, make_user):
        others = Team.objects.create(name="Others")
        Limit.objects.create(team=others, daily_tokens=1)
        spend(make_user("bob"), 10, at=NOW, team=others)
        metering.limits_check(user, now=NOW)

    def test_with_several_limits_reached_the_message_names_the_one_that_frees_last(self, user):
        Limit.objects.create(user=user, daily_tokens=10, monthly_tokens=10, requests_per_minute=1)
        spend(user, 10, at=NOW)
        assert "monthly budget" in refusal(user)

    def test_limits_apply_at_once_when_an_admin_saves_them(self, user):
        spend(user, 100)
        metering.limits_check(user)  # caches "no limits"
        limit = Limit.objects.create(user=user, daily_tokens=100)
        with pytest.raises(LimitExceeded):
            metering.limits_check(user)
        limit.daily_tokens = 1_000
        limit.save()
        metering.limits_check(user)
        limit.delete()
        Limit.objects.create(user=user, daily_tokens=50)
        with pytest.raises(LimitExceeded):
            metering.limits_check(user)

    def test_without_limits_the_check_costs_no_query(self, user, make_user, django_assert_num_queries):
        bob = make_user("bob")
        metering.limits_check(user)
        with django_assert_num_queries(0):
            metering.limits_check(user)
            metering.limits_check(bob)

    def test_with_limits_the_check_costs_one_query_per_kind_of_lookup(self, user, team, django_assert_num_queries):
        Limit.objects.create(user=user, daily_tokens=100)
        Limit.objects.create(team=team, monthly_tokens=100, requests_per_minute=10)
        metering.limits_check(user)
        with django_assert_num_queries(2):  # the person's limited teams, then all their usage at once
            metering.limits_check(user)

    def test_a_refused_send_saves_nothing(self, user, conversation, model_config):
        Limit.objects.create(user=user, daily_tokens=10)
        spend(user, 10)
        with pytest.raises(LimitExceeded):
            services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
        assert not conversation.messages.exists()
        assert UsageRecord.objects.count() == 1

    def test_a_new_conversation_with_a_first_message_is_refused_before_it_is_saved(self, user):
        Limit.objects.create(user=user, daily_tokens=10)
        spend(user, 10)
        with pytest.raises(LimitExceeded):
            services.conversations.conversation_create(owner=user, content="hi")
        assert not Conversation.objects.exists()
        services.conversations.conversation_create(owner=user)  # an empty one sends nothing

    def test_a_refused_regenerate_keeps_the_reply(self, user, conversation, model_config):
        question = Message.objects.create(conversation=conversation, role="user", content="Q", author=user)
        answer = Message.objects.create(conversation=conversation, role="assistant", content="A")
        Limit.objects.create(user=user, requests_per_minute=1)
        spend(user, 0)
        with pytest.raises(LimitExceeded):
            services.replies.reply_regenerate_begin(user=user, conversation_id=conversation.id)
        assert list(conversation.messages.order_by("id").values_list("id", flat=True)) == [question.id, answer.id]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "1 second"), (12, "12 seconds"), (60, "1 min"), (61, "2 min"), (3600, "1 h"), (11_520, "3 h 12 min"),
     (86_400, "1 d"), (1_825_200, "21 d 3 h")],
)
def test_waits_read_as_a_person_would_say_them(seconds, text):
    assert metering.duration(timedelta(seconds=seconds)) == text


# --- over the socket, against the fake upstream -----------------------------------------------

socket_test = pytest.mark.django_db(transaction=True)


@sync_to_async
def records():
    return list(UsageRecord.objects.order_by("id"))


@socket_test
async def test_usage_comes_from_the_apis_usage_chunk(user, conversation, model_config, upstream):
    model_config.input_price, model_config.output_price = Decimal("3"), Decimal("15")
    await sync_to_async(model_config.save)()
    upstream.push(reply("Hello there", usage=(1200, 80), model="fake-model-0613"))
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "send", "content": "Hi"})
    await receive_until(communicator, done)
    [record] = await records()
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (1200, 80, False)
    assert (record.model_name, record.cost) == ("fake-model-0613", Decimal("0.0048"))  # 1200 x 3 + 80 x 15, per million
    await communicator.disconnect()


@socket_test
async def test_without_a_usage_chunk_the_tokens_are_estimated_and_flagged(user, conversation, model_config, upstream):
    upstream.push(reply("Hello there, friend", usage=None))
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "send", "content": "Hi"})
    frames = await receive_until(communicator, done)
    assert frames[-1]["usage"] is None
    [record] = await records()
    assert (record.prompt_tokens, record.completion_tokens) == (estimate_tokens("Hi"), estimate_tokens("Hello there, friend"))
    assert record.estimated
    await communicator.disconnect()


@socket_test
async def test_an_upstream_error_still_counts_the_request(user, conversation, model_config, upstream):
    upstream.push(error(500, "Boom"))
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "send", "content": "Hi"})
    await receive_until(communicator, done)
    [record] = await records()
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (estimate_tokens("Hi"), 0, True)
    await communicator.disconnect()


@socket_test
async def test_a_send_over_budget_gets_an_error_frame_and_nothing_goes_upstream(user, conversation, model_config, upstream):
    await sync_to_async(Limit.objects.create)(user=user, daily_tokens=10_000)
    await sync_to_async(spend)(user, 10_412)
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "send", "content": "One more?"})
    frame = json.loads(await communicator.receive_from())
    assert frame["type"] == "error" and frame["code"] == "limit_exceeded"
    assert frame["message"].startswith("You have used your daily budget of 10,000 tokens (10,412 used).")
    assert "It resets tomorrow at 00:00 UTC, in " in frame["message"]
    assert upstream.requests == []
    assert not await sync_to_async(conversation.messages.exists)()
    assert len(await records()) == 1
    await communicator.disconnect()


@socket_test
async def test_regenerate_over_budget_is_refused_too(user, team, conversation, model_config, upstream):
    await sync_to_async(Message.objects.create)(conversation=conversation, role="user", content="Q", author=user)
    await sync_to_async(Message.objects.create)(conversation=conversation, role="assistant", content="A")
    await sync_to_async(Limit.objects.create)(team=team, monthly_tokens=100)
    await sync_to_async(spend)(user, 100, team=team)
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "regenerate"})
    frame = json.loads(await communicator.receive_from())
    assert frame["code"] == "limit_exceeded"
    assert frame["message"].startswith("Your team Research has used its monthly budget of 100 tokens (100 used).")
    assert " at 00:00 UTC, in " in frame["message"]
    assert upstream.requests == []
    assert await sync_to_async(conversation.messages.count)() == 2
    await communicator.disconnect()


@socket_test
async def test_the_request_rate_refuses_the_send_after_the_last_allowed(user, conversation, model_config, upstream):
    await sync_to_async(Limit.objects.create)(user=user, requests_per_minute=1)
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "send", "content": "First"})
    await receive_until(communicator, done)
    await communicator.send_json_to({"type": "send", "content": "Second"})
    frame = json.loads(await communicator.receive_from())
    assert frame["code"] == "limit_exceeded"
    assert frame["message"].startswith("You have reached your limit of 1 request per minute. Try again in ")
    assert len(upstream.requests) == 1
    assert await sync_to_async(conversation.messages.count)() == 2
    await communicator.disconnect()

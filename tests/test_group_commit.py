"""Group commit: sends that wait for the database thread are begun together in one transaction, and each is still
refused, saved or undone on its own (services.replies.replies_together, streaming/together.py)."""

import asyncio
from functools import partial

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from conversations import selectors, services
from conversations.exceptions import ConversationNotFound, Forbidden, ReplyInProgress
from conversations.models import Message
from conversations.services.replies import ReplyPlan, replies_together, reply_begin, reply_finish
from conversations.streaming import together

pytestmark = pytest.mark.django_db(transaction=True)


def person_messages(conversation) -> list[str]:
    return list(Message.objects.filter(conversation=conversation, role=Message.Role.USER).values_list("content", flat=True))


def test_sends_begun_together_share_one_transaction(user, make_conversation, model_config):
    conversations = [make_conversation(model_config=model_config) for _ in range(3)]
    sends = [partial(reply_begin, user=user, conversation_id=c.id, content=f"Question {i}") for i, c in enumerate(conversations)]

    with CaptureQueriesContext(connection) as queries:
        plans = replies_together(sends, conversation_ids=[c.id for c in conversations])

    assert all(isinstance(plan, ReplyPlan) for plan in plans)
    assert [plan.conversation_id for plan in plans] == [c.id for c in conversations]
    assert [person_messages(c) for c in conversations] == [["Question 0"], ["Question 1"], ["Question 2"]]
    statements = [query["sql"] for query in queries.captured_queries]
    assert not any(sql.startswith("SAVEPOINT") for sql in statements)  # no savepoint per send either
    locks = [sql for sql in statements if sql.startswith("SELECT id, title")]
    inserts = [sql for sql in statements if sql.startswith("INSERT INTO conversations_message ")]
    assert len(inserts) == 6
    if connection.vendor == "postgresql":
        # The group's conversations locked and read in one statement, the new messages' ids taken at once:
        # nothing is read back per send, so the whole group travels in one pipeline.
        assert len(locks) == 1 and "ANY" in locks[0] and locks[0].endswith("FOR UPDATE")
        assert not any("RETURNING" in sql for sql in inserts)
    else:  # SQLite: each send reads its own conversation (no round trips to save there)
        assert len(locks) == 3
        assert all(sql.endswith("RETURNING id") for sql in inserts)


def test_a_refused_send_is_refused_alone(user, bob, make_conversation, model_config):
    mine, theirs, also_mine = (
        make_conversation(model_config=model_config),
        make_conversation(owner=bob, model_config=model_config),
        make_conversation(model_config=model_config),
    )
    sends = [partial(reply_begin, user=user, conversation_id=c.id, content="Hello") for c in (mine, theirs, also_mine)]

    first, refused, last = replies_together(sends, conversation_ids=[mine.id, theirs.id, also_mine.id])

    assert isinstance(first, ReplyPlan) and isinstance(last, ReplyPlan)
    assert isinstance(refused, ConversationNotFound | Forbidden)
    assert (person_messages(mine), person_messages(theirs), person_messages(also_mine)) == (["Hello"], [], ["Hello"])


def test_two_sends_to_one_conversation_in_one_group_the_second_is_busy(user, conversation, model_config):
    sends = [partial(reply_begin, user=user, conversation_id=conversation.id, content=text) for text in ("One", "Two")]

    first, second = replies_together(sends, conversation_ids=[conversation.id, conversation.id])

    assert isinstance(first, ReplyPlan)
    assert isinstance(second, ReplyInProgress)
    assert person_messages(conversation) == ["One"]


def test_a_database_error_undoes_the_group_and_each_send_is_begun_alone(user, make_conversation, model_config):
    before, after = make_conversation(model_config=model_config), make_conversation(model_config=model_config)
    failing = make_conversation(model_config=model_config)
    attempts = []

    def writes_then_fails() -> ReplyPlan:
        attempts.append(connection.in_atomic_block)
        with transaction.atomic():
            Message.objects.create(conversation=failing, role=Message.Role.USER, content="half written")
            raise OperationalError("the database went away")

    sends = [
        partial(reply_begin, user=user, conversation_id=before.id, content="Before"),
        writes_then_fails,
        partial(reply_begin, user=user, conversation_id=after.id, content="After"),
    ]
    first, failed, last = replies_together(sends, conversation_ids=[before.id, failing.id, after.id])

    assert isinstance(first, ReplyPlan) and isinstance(last, ReplyPlan)
    assert isinstance(failed, OperationalError)
    assert len(attempts) == 2  # in the group, then alone
    # The group was undone and begun again: each message saved once, the failed send's nowhere.
    assert (person_messages(before), person_messages(after), person_messages(failing)) == (["Before"], ["After"], [])
    assert Message.objects.filter(conversation=before).count() == 2  # the message and its reply's placeholder


async def test_sends_that_wait_for_the_database_go_in_one_call(user, make_conversation, model_config, monkeypatch):
    conversations = await sync_to_async(lambda: [make_conversation(model_config=model_config) for _ in range(8)])()
    groups: list[int] = []
    original = services.replies.replies_together

    def counting(sends, **kwargs):
        groups.append(len(sends))
        return original(sends, **kwargs)

    monkeypatch.setattr(services.replies, "replies_together", counting)
    sends = [
        together.begins.run(partial(reply_begin, user=user, conversation_id=c.id, content=f"Send {i}"), order=c.id)
        for i, c in enumerate(conversations)
    ]
    first = asyncio.ensure_future(sends[0])
    await asyncio.sleep(0.01)  # it found the database idle and went at once, alone
    plans = [await first, *await asyncio.gather(*sends[1:])]

    assert [plan.conversation_id for plan in plans] == [c.id for c in conversations]
    assert groups == [1, 7]  # the seven that came while it was in the database went together
    assert await sync_to_async(lambda: [person_messages(c) for c in conversations])() == [[f"Send {i}"] for i in range(8)]


async def test_what_refused_a_waiting_send_is_raised_to_it(user, bob, make_conversation, model_config):
    mine = await sync_to_async(make_conversation)(model_config=model_config)
    theirs = await sync_to_async(make_conversation)(owner=bob, model_config=model_config)

    results = await asyncio.gather(
        together.begins.run(partial(reply_begin, user=user, conversation_id=mine.id, content="Mine")),
        together.begins.run(partial(reply_begin, user=user, conversation_id=theirs.id, content="Theirs")),
        return_exceptions=True,
    )

    assert isinstance(results[0], ReplyPlan)
    assert isinstance(results[1], ConversationNotFound | Forbidden)


def test_final_saves_made_together_are_each_saved(user, make_conversation, model_config):
    conversations = [make_conversation(model_config=model_config) for _ in range(3)]
    plans = replies_together([partial(reply_begin, user=user, conversation_id=c.id, content="Hi") for c in conversations])
    words = ["walrus", "narwhal", "puffin"]
    finishes = [
        partial(reply_finish, reply_id=plan.reply_id, content=f"Answer **{words[i]}**", status=Message.Status.COMPLETE)
        for i, plan in enumerate(plans)
    ]

    saved = replies_together(finishes)

    assert [fields["html"] for fields in saved] == [f"<p>Answer <strong>{word}</strong></p>\n" for word in words]
    replies = Message.objects.filter(pk__in=[plan.reply_id for plan in plans]).order_by("pk")
    assert [(reply.status, reply.content) for reply in replies] == [("complete", f"Answer **{word}**") for word in words]
    # Each is findable, its conversation found by the index statement itself (nothing read back in the group).
    for conversation, word in zip(conversations, words, strict=True):
        assert [hit.conversation_id for hit in selectors.search.search(user, word).results] == [conversation.id]


async def test_one_person_sending_during_a_burst_goes_before_the_rest_of_it(
    user, make_conversation, model_config, monkeypatch, settings
):
    settings.CHAT_SENDS_PER_MINUTE = 0  # one account stands in for 32 people here
    monkeypatch.setattr(together, "MAX_GROUP", 25)  # groups smaller than the burst, with fewer conversations
    conversations = await sync_to_async(lambda: [make_conversation(model_config=model_config) for _ in range(32)])()
    groups: list[list[int]] = []
    original = services.replies.replies_together

    def recording(sends, **kwargs):
        groups.append([conversations.index(next(c for c in conversations if c.id == send.keywords["conversation_id"]))
                       for send in sends])
        return original(sends, **kwargs)

    monkeypatch.setattr(services.replies, "replies_together", recording)

    def send(i: int):
        return together.begins.run(
            partial(reply_begin, user=user, conversation_id=conversations[i].id, content=f"Send {i}"),
            order=conversations[i].id,
        )

    first = asyncio.ensure_future(send(0))
    await asyncio.sleep(0.01)  # in the database, alone
    burst = [asyncio.ensure_future(send(i)) for i in range(1, 31)]  # more than a group
    late = asyncio.ensure_future(send(31))
    await asyncio.gather(first, *burst, late)

    assert [len(group) for group in groups] == [1, together.MAX_GROUP, 31 - together.MAX_GROUP]
    assert 31 in groups[1]  # the latest send went in the next group, not after the whole burst
    assert sorted(groups[1] + groups[2]) == list(range(1, 32))


def test_which_sends_go_next_newest_first_recent_ones_alone_and_the_aged_before_them():
    queue = together.Together("test")

    def waiting_since(times: list[float]) -> list[float]:
        queue.waiting = [together._Waiting(at, i, None, None, None) for i, at in enumerate(times)]
        group, rest = queue._next_group(now)
        assert len(group) + len(rest) == len(times) and group
        return [entry.at for entry in group]

    burst = [0.0] * 120
    now = 0.1  # a young burst: all of it recent, so whole groups, the newest first
    assert waiting_since(burst) == [0.0] * together.MAX_GROUP
    now = 1.2  # one person sent at 1.0 while the burst waits: they go next, in a group of their own
    assert waiting_since([*burst, 1.0]) == [1.0]
    now = 2.0  # nobody recent: the newest of the burst
    assert len(waiting_since(burst)) == together.MAX_GROUP
    now = together.AGED_SECONDS + 0.1  # the oldest waited long enough: they go first again
    assert waiting_since([0.0, *[3.0] * 60, 5.0]) == [0.0, *[3.0] * (together.MAX_GROUP - 1)]

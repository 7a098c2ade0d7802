"""Titles written by a model after a conversation's first reply: the request, the `title` frame, what never
overwrites a person's own name for it, failures, the switch, and usage."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from conversations import services
from conversations.models import Conversation, Limit, SiteSettings, UsageRecord
from conversations.services.titles import TITLE_INSTRUCTION, title_clean
from conversations.streaming import titles, together
from tests.fake_openai import Script, chunk, error, reply
from tests.helpers import done, open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def titles_on(settings):
    settings.CHAT_TITLES_BY_MODEL = True
    settings.CHAT_TITLE_TIMEOUT = 2.0


@pytest.fixture
def untitled(make_conversation, model_config):
    """A new conversation on the fake server's model, titled by nobody yet (as a first send leaves it)."""
    return make_conversation(title="", model_config=model_config)


def is_title(frame: dict) -> bool:
    return frame["type"] == "title"


async def first_exchange(user, conversation, upstream, title_script, question="How do otters sleep?"):
    """Send the first message; the fake server answers it, then the title request with `title_script`."""
    upstream.push(reply("They hold hands."), title_script)
    communicator = await open_socket(user, conversation)
    await send(communicator, question)
    await receive_until(communicator, done)
    return communicator


@sync_to_async
def reloaded(conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


@sync_to_async
def title_records() -> list[UsageRecord]:
    return list(UsageRecord.objects.filter(kind=UsageRecord.Kind.TITLE))


async def test_the_title_request_sends_the_first_exchange_with_an_instruction(user, untitled, upstream):
    communicator = await first_exchange(user, untitled, upstream, reply("Otters asleep"))
    await titles.titles_settle(timeout=5)
    body = upstream.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": TITLE_INSTRUCTION}
    assert "short title" in TITLE_INSTRUCTION and "language the conversation is written in" in TITLE_INSTRUCTION
    assert body["messages"][1]["role"] == "user"
    assert "How do otters sleep?" in body["messages"][1]["content"]
    assert "They hold hands." in body["messages"][1]["content"]
    assert len(upstream.requests) == 2
    await communicator.disconnect()


async def test_the_title_arrives_as_a_frame_and_is_saved(user, untitled, upstream):
    communicator = await first_exchange(user, untitled, upstream, reply(['"**Sleeping', ' otters**".\nmore']))
    frames = await receive_until(communicator, is_title)
    assert frames[-1] == {"type": "title", "title": "Sleeping otters"}
    saved = await reloaded(untitled)
    assert (saved.title, saved.title_source) == ("Sleeping otters", Conversation.TitleSource.MODEL)
    await communicator.disconnect()


async def test_only_the_first_reply_asks_for_a_title(user, untitled, upstream):
    communicator = await first_exchange(user, untitled, upstream, reply("Otters"))
    await receive_until(communicator, is_title)
    upstream.push(reply("Second answer"))
    await send(communicator, "And seals?")
    await receive_until(communicator, done)
    await titles.titles_settle(timeout=5)
    assert len(upstream.requests) == 3  # two replies and one title
    await communicator.disconnect()


async def test_a_persons_rename_is_never_overwritten(user, untitled, upstream):
    await sync_to_async(services.conversations.conversation_rename)(conversation=untitled, title="Mine")
    communicator = await first_exchange(user, untitled, upstream, reply("Model title"))
    await titles.titles_settle(timeout=5)
    assert len(upstream.requests) == 1  # not even asked
    assert (await reloaded(untitled)).title == "Mine"
    await communicator.disconnect()


async def test_a_rename_while_the_title_request_is_in_flight_wins(user, untitled, upstream):
    renamed = asyncio.Event()

    def rename_first(body):
        # The rename commits while the model is still writing its title.
        conversation = Conversation.objects.get(pk=untitled.pk)
        services.conversations.conversation_rename(conversation=conversation, title="Renamed meanwhile")
        renamed.set()
        return chunk("Model title")

    import threading

    def in_thread(body):
        result = []
        worker = threading.Thread(target=lambda: result.append(rename_first(body)))
        worker.start()
        worker.join()
        return result[0]

    communicator = await first_exchange(user, untitled, upstream, Script([in_thread, chunk(None, finish_reason="stop")]))
    await titles.titles_settle(timeout=5)
    assert renamed.is_set()
    saved = await reloaded(untitled)
    assert (saved.title, saved.title_source) == ("Renamed meanwhile", Conversation.TitleSource.PERSON)
    assert len(await title_records()) == 1  # the request still counts
    await communicator.disconnect()


@pytest.mark.parametrize(
    "script",
    [error(500, "Server on fire"), Script([3.0, chunk("Too late")]), reply("")],
    ids=["error", "timeout", "empty"],
)
async def test_a_failed_title_request_keeps_the_first_line(user, untitled, upstream, script):
    communicator = await first_exchange(user, untitled, upstream, script)
    await titles.titles_settle(timeout=5)
    saved = await reloaded(untitled)
    assert (saved.title, saved.title_source) == ("How do otters sleep?", Conversation.TitleSource.FIRST_LINE)
    assert len(await title_records()) == 1
    await communicator.disconnect()


async def test_title_requests_wait_their_turn(user, make_conversation, model_config, upstream, settings):
    settings.CHAT_TITLE_CONCURRENCY = 1
    first, second = await sync_to_async(lambda: [make_conversation(title="", model_config=model_config) for _ in "12"])()
    upstream.push(reply(["Slow ", "title"], delay=0.3), reply("Second title"))

    for conversation in (first, second):
        titles.title_later(conversation_id=conversation.id, user_id=user.pk, question="Hello?", answer="Hi.")
    await asyncio.sleep(0.2)
    assert len(upstream.requests) == 1  # the second waits for the first
    await titles.titles_settle(timeout=5)

    assert len(upstream.requests) == 2
    assert [(await reloaded(c)).title for c in (first, second)] == ["Slow title", "Second title"]


async def test_turned_off_in_site_settings_nothing_is_asked(user, untitled, upstream):
    await sync_to_async(SiteSettings(titles_by_model=False).save)()
    communicator = await first_exchange(user, untitled, upstream, reply("Model title"))
    await titles.titles_settle(timeout=5)
    assert len(upstream.requests) == 1
    assert (await reloaded(untitled)).title == "How do otters sleep?"
    await communicator.disconnect()


async def test_the_title_is_recorded_in_usage_as_a_title(user, untitled, upstream):
    communicator = await first_exchange(user, untitled, upstream, reply("Otters", usage=(40, 2)))
    await receive_until(communicator, is_title)
    await titles.titles_settle(timeout=5)
    records = await title_records()
    assert len(records) == 1
    record = records[0]
    assert (record.user_id, record.message_id, record.prompt_tokens, record.completion_tokens) == (user.pk, None, 40, 2)
    assert record.estimated is False
    assert await sync_to_async(UsageRecord.objects.filter(kind=UsageRecord.Kind.REPLY).count)() == 1
    await communicator.disconnect()


async def test_over_budget_no_title_is_asked(user, untitled, upstream):
    from conversations import metering

    communicator = await open_socket(user, untitled)
    upstream.push(reply("They hold hands.", usage=(10, 10)))
    # The budget is reached by the reply itself: the title, asked after it, is skipped.
    await sync_to_async(Limit.objects.create)(user=user, daily_tokens=15)
    metering.forget_limits()
    await send(communicator, "How do otters sleep?")
    await receive_until(communicator, done)
    await titles.titles_settle(timeout=5)
    assert len(upstream.requests) == 1
    assert await title_records() == []
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ('"Otters at rest"', "Otters at rest"),
        ("# Otters at rest.\nSecond line", "Otters at rest"),
        ("Title: **Otters** at `rest`", "Otters at rest"),
        ("「カワウソの睡眠」", "カワウソの睡眠"),
        ("x" * 500, "x" * 200),
        ("  \n ", ""),
    ],
)
def test_title_clean_makes_plain_text(answer, title):
    assert title_clean(answer) == title


async def test_titles_wait_while_sends_wait_for_the_database(user, untitled, upstream, monkeypatch):
    monkeypatch.setattr(titles, "YIELD_POLL_SECONDS", 0.02)
    upstream.push(reply("Otters"))
    waiting_send = together._Waiting(0.0, untitled.id, lambda: None, asyncio.get_running_loop().create_future(), user.pk)
    together.begins.waiting.append(waiting_send)  # a burst's send, still waiting for the database
    try:
        task = titles.title_later(conversation_id=untitled.id, user_id=user.pk, question="Otters?", answer="Yes.")
        await asyncio.sleep(0.2)
        assert not task.done() and len(upstream.requests) == 0  # nothing asked while the send waits
    finally:
        together.begins.waiting.remove(waiting_send)
    assert await asyncio.wait_for(task, 5) == "Otters"
    assert len(upstream.requests) == 1


async def test_a_title_waits_for_sends_only_so_long(user, untitled, upstream, monkeypatch):
    monkeypatch.setattr(titles, "YIELD_SECONDS", 0.1)
    monkeypatch.setattr(titles, "YIELD_POLL_SECONDS", 0.02)
    upstream.push(reply("Otters"))
    waiting_send = together._Waiting(0.0, untitled.id, lambda: None, asyncio.get_running_loop().create_future(), user.pk)
    together.begins.waiting.append(waiting_send)  # sends that never stop coming
    try:
        title = await asyncio.wait_for(
            titles.title_later(conversation_id=untitled.id, user_id=user.pk, question="Otters?", answer="Yes."), 5
        )
    finally:
        together.begins.waiting.remove(waiting_send)
    assert title == "Otters"

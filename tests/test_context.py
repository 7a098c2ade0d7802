"""The context window: which turns are sent, where the page marks the cut, and a prompt the model finds too long."""

import re
from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async

from conversations.context import estimate_tokens, fit, reply_reserve
from conversations.llm import ModelSpec, UpstreamError, stream_reply
from conversations.models import Message
from conversations.selectors.providers import forget_models
from tests.factories import TEST_OPTIONS, spec_for
from tests.fake_openai import error
from tests.helpers import done, exchange, is_error, login, message_list_html, open_socket, page, receive_until

# --- estimate_tokens and fit ----------------------------------------------------------------------


def spec(window: int | None = None, **fields) -> ModelSpec:
    return spec_for(context_window=window, **fields)


def turns(*contents: str, roles: tuple[str, ...] = ("user", "assistant")) -> list[dict]:
    """Turns with these contents, their roles taken from `roles` in turn: by default a question, then its reply."""
    return [
        {"id": 10 + index, "role": roles[index % len(roles)], "content": content} for index, content in enumerate(contents)
    ]


QUESTIONS = ("user",)  # for the window's arithmetic alone: where the cut falls, no reply is left without its question


FORTY = "x" * 40  # 10 tokens, 14 with the message overhead


def test_estimate_is_a_quarter_of_the_characters_rounded_up_plus_the_overhead():
    assert [estimate_tokens(text) for text in ("", "abcd", "abcde", FORTY)] == [4, 5, 6, 14]


def test_without_a_window_nothing_is_left_out():
    history = turns(*[FORTY * 100] * 30)
    assert fit(spec(None), history) == (history, None)


def test_a_conversation_that_fits_is_sent_whole():
    history = turns(FORTY, FORTY, FORTY, FORTY)
    # 4 turns of 14 tokens = 56; 100 kept for the reply.
    assert fit(spec(156, parameters={"max_tokens": 100}), history) == (history, None)


def test_the_oldest_turns_are_left_out_first():
    history = turns(*[FORTY] * 6)
    kept, first_kept = fit(spec(156, parameters={"max_tokens": 100}), history)
    assert kept == history[2:]
    assert first_kept == history[2]["id"]


def test_one_token_short_leaves_one_more_out():
    history = turns(*[FORTY] * 6, roles=QUESTIONS)
    kept, first_kept = fit(spec(155, parameters={"max_tokens": 100}), history)
    assert kept == history[3:] and first_kept == history[3]["id"]


def test_the_system_prompt_takes_its_share_of_the_window():
    history = turns(*[FORTY] * 6, roles=QUESTIONS)
    kept, first_kept = fit(spec(156, parameters={"max_tokens": 100}, system_prompt=FORTY), history)
    assert kept == history[3:] and first_kept == history[3]["id"]


def test_the_last_turn_is_kept_alone_even_when_too_big():
    history = turns(FORTY, FORTY, "y" * 4000)
    kept, first_kept = fit(spec(300, parameters={"max_tokens": 100}), history)
    assert kept == history[-1:] and first_kept == history[-1]["id"]


def test_a_single_turn_too_big_is_still_sent_and_nothing_is_marked():
    history = turns("y" * 4000)
    assert fit(spec(300), history) == (history, None)


def test_newer_turns_are_never_skipped_to_fit_an_older_small_one():
    history = turns("a", "y" * 400, FORTY)
    kept, _ = fit(spec(156, parameters={"max_tokens": 100}), history)
    assert kept == history[2:]  # the 104-token turn does not fit, so the tiny one before it is not sent either


def test_a_reply_whose_question_was_left_out_is_left_out_too():
    history = turns(*[FORTY] * 7)  # ends with the person's newest message
    # 56 tokens for turns: the last 4 fit, and the first of them is a reply.
    kept, first_kept = fit(spec(156, parameters={"max_tokens": 100}), history)
    assert kept == history[4:] and kept[0]["role"] == "user"
    assert first_kept == history[4]["id"]


def test_every_turn_before_the_first_question_kept_is_left_out():
    history = turns(*[FORTY] * 6, roles=("user", "assistant", "assistant"))
    # 70 tokens for turns: the last 5 fit, and the first two of them are replies.
    kept, first_kept = fit(spec(170, parameters={"max_tokens": 100}), history)
    assert [turn["role"] for turn in kept] == ["user", "assistant", "assistant"]
    assert first_kept == history[3]["id"]


def test_when_the_newest_fits_only_with_the_reply_before_it_the_newest_goes_alone():
    history = turns(FORTY, FORTY, FORTY)
    kept, first_kept = fit(spec(128, parameters={"max_tokens": 100}), history)  # room for two turns
    assert kept == history[2:] and first_kept == history[2]["id"]


def test_a_conversation_that_fits_is_sent_whole_even_when_it_opens_with_a_reply():
    # A copy of a public link can open with a reply; with nothing left out, nothing is dropped.
    history = turns(FORTY, FORTY, FORTY, roles=("assistant", "user"))
    assert fit(spec(156, parameters={"max_tokens": 100}), history) == (history, None)


@pytest.mark.parametrize(
    ("parameters", "omit", "window", "reserve"),
    [
        ({"max_tokens": 300}, frozenset(), 8000, 300),
        ({"max_completion_tokens": 700}, frozenset(), 8000, 700),
        ({}, frozenset(), 8000, 2000),  # a quarter of the window
        ({}, frozenset(), 128000, 4096),  # at most 4096
        ({"max_tokens": 300}, frozenset({"max_tokens"}), 8000, 2000),  # not sent, so not what the reply gets
    ],
)
def test_room_kept_for_the_reply(parameters, omit, window, reserve):
    assert reply_reserve(spec(window, parameters=parameters, omit=omit), window) == reserve


def test_reserve_from_max_completion_tokens_leaves_turns_out():
    history = turns(*[FORTY] * 6)
    kept, _ = fit(spec(156, parameters={"max_completion_tokens": 100}), history)
    assert kept == history[2:]


def test_default_reserve_is_a_quarter_of_a_small_window():
    history = turns(*[FORTY] * 30, roles=QUESTIONS)
    kept, _ = fit(spec(400), history)  # 100 kept for the reply, 300 for turns: 21 of 14 tokens
    assert len(kept) == 21


# --- end to end over the socket -------------------------------------------------------------------

OLD = "o" * 396  # with its "007 " prefix, 400 characters: 104 tokens with the overhead
# With 20 old turns and a new message: 1000 - 200 for the reply - 8 for the new message leaves 792,
# room for the last 7 old turns (728). The first of those, old[13], is a reply whose question is
# left out, so it goes too: old[14], a question, is the first message sent.
FIRST_SENT = 14


@sync_to_async
def long_conversation(conversation, model_config, *, count: int = 20, window: int | None = 1000) -> list[Message]:
    """`count` alternating old turns of 104 tokens; the model keeps 200 for the reply."""
    model_config.context_window = window
    model_config.max_tokens = 200
    model_config.save()
    roles = (Message.Role.USER, Message.Role.ASSISTANT)
    return [
        Message.objects.create(
            conversation=conversation,
            role=roles[index % 2],
            content=f"{index:03d} {OLD}",
            author=conversation.owner if index % 2 == 0 else None,
        )
        for index in range(count)
    ]


async def send_and_finish(user, conversation, content: str = "Newest question?") -> list[dict]:
    return await exchange(user, conversation, content, until=done)


@sync_to_async
def page_of(user, conversation) -> str:
    response = login(user).get(f"/c/{conversation.id}/")
    assert response.status_code == 200
    return page(response)


MARKER = re.compile(r'<li class="context-marker"[^>]*>([^<]*)</li>\s*<li class="message[^"]*" data-id="(\d+)"')


@pytest.mark.django_db(transaction=True)
async def test_a_long_conversation_sends_only_the_newest_turns(user, conversation, model_config, upstream):
    old = await long_conversation(conversation, model_config)
    frames = await send_and_finish(user, conversation)

    sent = upstream.requests[-1].body["messages"]
    assert [message["content"] for message in sent] == [message.content for message in old[FIRST_SENT:]] + ["Newest question?"]
    assert frames[-1]["status"] == "complete"


@pytest.mark.django_db(transaction=True)
async def test_the_history_sent_after_a_cut_starts_with_a_question(user, conversation, model_config, upstream):
    old = await long_conversation(conversation, model_config)
    model_config.system_prompt = "Be brief."
    await model_config.asave()
    await send_and_finish(user, conversation)

    sent = upstream.requests[-1].body["messages"]
    assert [message["role"] for message in sent[:3]] == ["system", "user", "assistant"]
    assert sent[1]["content"] == old[FIRST_SENT].content
    assert old[FIRST_SENT - 1].content not in [message["content"] for message in sent]


@pytest.mark.django_db(transaction=True)
async def test_the_reply_remembers_and_announces_where_the_sent_history_starts(user, conversation, model_config, upstream):
    old = await long_conversation(conversation, model_config)
    frames = await send_and_finish(user, conversation)

    start = next(frame for frame in frames if frame["type"] == "start")
    assert start["context_start"] == old[FIRST_SENT].id
    reply = await Message.objects.aget(pk=start["message_id"])
    assert reply.context_start == old[FIRST_SENT].id


@pytest.mark.django_db(transaction=True)
async def test_a_reconnecting_page_learns_where_the_sent_history_starts(user, conversation, model_config, upstream):
    old = await long_conversation(conversation, model_config)
    frames = await send_and_finish(user, conversation)
    reply_id = next(frame for frame in frames if frame["type"] == "start")["message_id"]

    again = await open_socket(user, conversation, query=f"since={old[-1].id}")
    caught_up = await receive_until(again, lambda frame: frame["type"] == "message" and frame["message"]["id"] == reply_id)
    assert caught_up[-1]["message"]["context_start"] == old[FIRST_SENT].id


@pytest.mark.django_db(transaction=True)
async def test_the_page_marks_where_older_messages_were_left_out(user, conversation, model_config, upstream):
    old = await long_conversation(conversation, model_config)
    await send_and_finish(user, conversation)

    html = await page_of(user, conversation)
    markers = MARKER.findall(html)
    assert len(markers) == 1
    text, before_id = markers[0]
    assert "not sent to the model" in text and "context window" in text
    assert int(before_id) == old[FIRST_SENT].id


@pytest.mark.django_db(transaction=True)
async def test_nothing_is_marked_when_everything_fits(user, conversation, model_config, upstream):
    await long_conversation(conversation, model_config, count=4)
    frames = await send_and_finish(user, conversation)

    assert "context_start" not in next(frame for frame in frames if frame["type"] == "start")
    assert len(upstream.requests[-1].body["messages"]) == 5
    assert "context-marker" not in message_list_html(await page_of(user, conversation))


@pytest.mark.django_db(transaction=True)
async def test_the_marker_follows_the_latest_reply(user, conversation, model_config, upstream):
    await long_conversation(conversation, model_config)
    await send_and_finish(user, conversation)
    model_config.context_window = None
    await model_config.asave()
    forget_models()  # this process's copy of the model's settings

    await send_and_finish(user, conversation, "And now everything?")

    assert len(upstream.requests[-1].body["messages"]) == 23
    assert "context-marker" not in message_list_html(await page_of(user, conversation))


@pytest.mark.django_db(transaction=True)
async def test_regenerate_fits_the_history_too(user, conversation, model_config, upstream):
    old = await long_conversation(conversation, model_config, count=21)  # ends with the person's turn
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "regenerate"})
    frames = await receive_until(communicator, done)
    await communicator.disconnect()

    start = next(frame for frame in frames if frame["type"] == "start")
    # 1000 - 200 leaves 800: the last 7 turns (728); an eighth would need 832.
    assert start["context_start"] == old[14].id
    assert len(upstream.requests[-1].body["messages"]) == 7


# --- the model says the prompt is too long ---------------------------------------------------------

OPENAI_TOO_LONG = (
    "This model's maximum context length is 8192 tokens. However, your messages resulted in 9120 tokens. "
    "Please reduce the length of the messages."
)


@pytest.mark.django_db(transaction=True)
async def test_context_length_exceeded_is_shown_as_such(user, conversation, model_config, upstream):
    upstream.push(error(400, OPENAI_TOO_LONG, code="context_length_exceeded"))
    frames = await send_and_finish_with_error(user, conversation)

    done_frame = next(frame for frame in frames if frame["type"] == "done")
    error_frame = frames[-1]
    assert done_frame["status"] == "error"
    assert "too long for this model's context window" in done_frame["error"]
    assert "maximum context length is 8192 tokens" in done_frame["error"]
    assert "set the model's context window in the admin" in done_frame["error"]
    assert (error_frame["code"], error_frame["message_id"]) == ("context_length_exceeded", done_frame["message_id"])
    reply = await Message.objects.aget(pk=done_frame["message_id"])
    assert reply.status == "error" and "too long for this model's context window" in reply.error


async def send_and_finish_with_error(user, conversation) -> list[dict]:
    return await exchange(user, conversation, "A very long question", until=is_error)


async def too_long_error(upstream, script, options=TEST_OPTIONS, **spec_fields) -> UpstreamError:
    upstream.push(script)
    model = spec_for(upstream, api_key="", **spec_fields)
    with pytest.raises(UpstreamError) as raised:
        async for _ in stream_reply(model, [{"role": "user", "content": "Hi"}], options=options):
            pass
    return raised.value


@pytest.mark.parametrize(
    "script",
    [
        error(400, OPENAI_TOO_LONG, code="context_length_exceeded"),
        error(400, OPENAI_TOO_LONG),  # vLLM and others: the words, no code
        error(400, "Input is too long.", code="context_length_exceeded"),  # the code, other words
        error(400, "the request exceeds the available context size, try increasing it", type="exceed_context_size_error"),
    ],
)
async def test_the_servers_ways_of_saying_too_long_are_recognised(upstream, script):
    raised = await too_long_error(upstream, script)
    assert (raised.code, raised.status) == ("context_length_exceeded", 400)
    assert raised.message.startswith("The conversation is too long for this model's context window (400)")
    assert "or start a new chat" in raised.message


async def test_too_long_with_a_window_set_points_at_the_last_message(upstream):
    raised = await too_long_error(upstream, error(400, OPENAI_TOO_LONG, code="context_length_exceeded"), context_window=8192)
    assert raised.code == "context_length_exceeded"
    assert "8192-token window" in raised.message and "last message may be too long" in raised.message


async def test_another_bad_request_is_not_mistaken_for_too_long(upstream):
    raised = await too_long_error(upstream, error(400, "'messages' must contain at least one message."))
    assert raised.code == "bad_request"


async def test_too_long_is_not_retried(upstream):
    retrying = replace(TEST_OPTIONS, retries=2)
    await too_long_error(upstream, error(400, OPENAI_TOO_LONG, code="context_length_exceeded"), retrying)
    assert len(upstream.requests) == 1

"""The websocket consumer, driven over WebsocketCommunicator against the real ASGI app and a real HTTP upstream."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from conversations import streaming
from conversations.models import Conversation, Message
from tests.fake_openai import DONE, DROP, Script, answer, chunk, error, reply, sse
from tests.helpers import (
    closed_with,
    connect,
    done,
    is_error,
    login,
    open_socket,
    opened,
    receive_until,
    refused_at_handshake,
    send,
    text_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def messages_of(conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation).order_by("id"))


@sync_to_async
def reply_of(message_id) -> Message:
    return Message.objects.get(pk=message_id)


# --- who may connect -----------------------------------------------------------


async def test_anonymous_socket_is_refused(conversation):
    assert await closed_with(await connect(None, conversation.id)) == 4401


async def test_another_users_conversation_is_refused(conversation, make_user):
    mallory = await sync_to_async(make_user)("mallory")
    assert await closed_with(await connect(mallory, conversation.id)) == 4404


async def test_unknown_conversation_is_refused(user):
    import uuid

    assert await closed_with(await connect(user, uuid.uuid4())) == 4404


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://testserver",  # the site's host over another scheme
        "http://testserver:8080",  # or another port
        "null",
        "",
    ],
)
async def test_a_socket_from_another_origin_is_refused_at_the_handshake(user, conversation, origin):
    assert await refused_at_handshake(await connect(user, conversation.id, origin=origin))


async def test_a_page_on_another_host_pointing_at_this_server_is_refused(user, conversation):
    # DNS rebinding: the attacker's name resolves to this server; Origin and Host agree, but the host is not ours.
    socket = await connect(user, conversation.id, origin="http://evil.example", host="evil.example")
    assert await refused_at_handshake(socket)


async def test_a_trusted_origin_is_accepted(user, conversation, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com"]
    assert not await refused_at_handshake(await connect(user, conversation.id, origin="https://chat.example.com"))


async def test_logging_out_closes_that_sessions_sockets(user, conversation):
    from django.test import Client

    client = Client()
    await sync_to_async(client.force_login)(user)
    session = client.cookies["sessionid"].value
    socket = await opened(await connect(user, conversation.id, session=session))
    other_session = await open_socket(user, conversation)  # another login of the same person stays
    await sync_to_async(client.post)("/accounts/logout/")
    assert (await socket.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4401}
    assert await other_session.receive_nothing(timeout=0.3)


# --- a reply, end to end ---------------------------------------------------------


async def test_send_streams_reply_and_saves_it(user, conversation, model_config, upstream):
    upstream.push(reply(["Hel", "lo", " **there**"], usage=(11, 3), model="fake-model-0613"))
    communicator = await open_socket(user, conversation)
    await send(communicator, "Hi model")
    frames = await receive_until(communicator, done)

    kinds = [frame["type"] for frame in frames]
    assert kinds[0] == "message" and kinds[1] == "start" and kinds[-1] == "done"
    user_frame = frames[0]["message"]
    assert user_frame["role"] == "user" and user_frame["content"] == "Hi model" and user_frame["status"] == "complete"
    reply_id = frames[1]["message_id"]
    assert text_of(frames, reply_id) == "Hello **there**"
    final = frames[-1]
    assert final["status"] == "complete"
    assert final["finish_reason"] == "stop"
    assert final["usage"] == {"prompt_tokens": 11, "completion_tokens": 3}
    assert "<strong>there</strong>" in final["html"]

    saved = await messages_of(conversation)
    assert [(m.role, m.status) for m in saved] == [("user", "complete"), ("assistant", "complete")]
    assert saved[1].content == "Hello **there**"
    assert (saved[1].prompt_tokens, saved[1].completion_tokens) == (11, 3)
    assert saved[1].model_name == "fake-model-0613"
    assert "<strong>there</strong>" in saved[1].html
    await communicator.disconnect()


async def test_user_message_is_saved_before_the_request_goes_upstream(user, conversation, model_config, upstream):
    seen_at_request = []

    def record(body):
        # The fake server's loop thread may not use the ORM itself; look from a plain thread.
        look = threading.Thread(
            target=lambda: seen_at_request.extend(
                Message.objects.filter(conversation=conversation).values_list("role", "status")
            )
        )
        look.start()
        look.join()
        return chunk("ok")

    upstream.push(Script([record, chunk(None, finish_reason="stop")]))
    communicator = await open_socket(user, conversation)
    await send(communicator, "Saved first?")
    await receive_until(communicator, done)
    assert ("user", "complete") in seen_at_request
    assert ("assistant", "streaming") in seen_at_request
    await communicator.disconnect()


async def test_request_carries_history_system_prompt_parameters_and_pseudonym(user, conversation, model_config, upstream):
    model_config.temperature = 0.3
    model_config.max_tokens = 77
    model_config.system_prompt = "Be brief."
    await sync_to_async(model_config.save)()
    await sync_to_async(Message.objects.create)(conversation=conversation, role="user", content="First", author=user)
    await sync_to_async(Message.objects.create)(conversation=conversation, role="assistant", content="One")
    communicator = await open_socket(user, conversation)
    await send(communicator, "Second")
    await receive_until(communicator, done)

    request = upstream.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-0123456789abcdefWXYZ"
    body = request.body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "First"},
        {"role": "assistant", "content": "One"},
        {"role": "user", "content": "Second"},
    ]
    assert body["temperature"] == 0.3 and body["max_tokens"] == 77
    assert "top_p" not in body and "stop" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["user"].startswith("u-") and "alice" not in body["user"]
    await communicator.disconnect()


async def test_send_with_model_switches_the_conversations_model(user, conversation, model_config, upstream):
    other = await sync_to_async(type(model_config).objects.create)(
        display_name="Other", provider=model_config.provider, model="other-model", temperature=1.5
    )
    communicator = await open_socket(user, conversation)
    await send(communicator, "Use the other one", model=other.id)
    await receive_until(communicator, done)
    assert upstream.requests[-1].body["model"] == "other-model"
    assert upstream.requests[-1].body["temperature"] == 1.5
    refreshed = await sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert refreshed.model_config_id == other.id
    await communicator.disconnect()


async def test_demo_model_answers_when_no_model_is_configured(user, conversation):
    communicator = await open_socket(user, conversation)
    await send(communicator, "Anyone there?")
    frames = await receive_until(communicator, done)
    reply_id = frames[1]["message_id"]
    text = text_of(frames, reply_id)
    assert text.startswith("**Demo model** (offline)")
    assert "Anyone there?" in text
    assert frames[-1]["status"] == "complete"
    assert (await reply_of(reply_id)).content == text
    await communicator.disconnect()


# --- frames the server refuses ---------------------------------------------------


@pytest.mark.parametrize(
    "raw, code",
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": 5}', "invalid_frame"),
        ('{"content": "no type"}', "invalid_frame"),
        ('{"type": "send"}', "invalid_frame"),
        ('{"type": "send", "content": 42}', "invalid_frame"),
        ('{"type": "send", "content": "   \\n "}', "empty_content"),
        ('{"type": "send", "content": "a\\u0000b"}', "invalid_content"),
        ('{"type": "send", "content": "a\\ud800b"}', "invalid_content"),
        ('{"type": "send", "content": "hi", "model": "gpt"}', "invalid_frame"),
        ('{"type": "send", "content": "hi", "model": true}', "invalid_frame"),
        ('{"type": "send", "content": "12345678901"}', "content_too_long"),
        ('{"type": "stop"}' + " " * 1_200, "content_too_long"),  # longer than any frame with 10 characters
        ('{"type": "stop", "x": ' + "[" * 8 + "]" * 8 + "}", "invalid_frame"),  # nested 9 deep
    ],
)
async def test_bad_frame_gets_error_and_socket_stays_open(user, conversation, settings, raw, code):
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    communicator = await open_socket(user, conversation)
    await communicator.send_to(text_data=raw)
    frame = await communicator.receive_json_from()
    assert frame["type"] == "error" and frame["code"] == code and frame["message"]
    assert await messages_of(conversation) == []
    # Still open and working.
    await send(communicator, "ok")
    frames = await receive_until(communicator, done)
    assert frames[-1]["status"] == "complete"
    await communicator.disconnect()


async def test_a_frame_nested_100000_deep_gets_an_error_and_the_socket_keeps_serving(user, conversation):
    communicator = await open_socket(user, conversation)
    await communicator.send_to(text_data="[" * 100_000)
    frame = await communicator.receive_json_from()
    assert frame == {"type": "error", "code": "invalid_frame", "message": "The frame is nested too deeply."}
    await send(communicator, "Still there?")
    frames = await receive_until(communicator, done)
    assert "Still there?" in text_of(frames) and frames[-1]["status"] == "complete"
    await communicator.disconnect()


async def test_binary_frame_gets_error(user, conversation):
    communicator = await open_socket(user, conversation)
    await communicator.send_to(bytes_data=b"\x00\x01")
    frame = await communicator.receive_json_from()
    assert frame == {"type": "error", "code": "invalid_frame", "message": "Send frames as JSON text, not binary."}
    await communicator.disconnect()


async def test_unknown_model_gets_error_and_saves_nothing(user, conversation, model_config):
    communicator = await open_socket(user, conversation)
    await send(communicator, "hi", model=99999)
    frame = await communicator.receive_json_from()
    assert frame["type"] == "error" and frame["code"] == "model_unavailable"
    assert await messages_of(conversation) == []
    await communicator.disconnect()


async def test_send_while_streaming_is_refused_and_changes_nothing(user, conversation, model_config, upstream):
    upstream.push(reply(["slow "] * 10, delay=0.05))
    communicator = await open_socket(user, conversation)
    await send(communicator, "first")
    await receive_until(communicator, lambda f: f["type"] == "delta")
    before = len(await messages_of(conversation))
    await send(communicator, "second")
    frames = await receive_until(communicator, lambda f: f["type"] == "error")
    assert frames[-1]["code"] == "busy"
    assert len(await messages_of(conversation)) == before
    frames = await receive_until(communicator, done)
    assert frames[-1]["status"] == "complete"
    assert [m.content for m in await messages_of(conversation) if m.role == "user"] == ["first"]
    await communicator.disconnect()


# --- stop, errors, drops ---------------------------------------------------------


async def test_stop_before_first_token_closes_upstream_at_once(user, conversation, model_config, upstream):
    upstream.push(Script([5.0, chunk("never")]))
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, lambda f: f["type"] == "start")
    reply_id = frames[-1]["message_id"]
    await asyncio.sleep(0.1)  # the request is open upstream
    await communicator.send_json_to({"type": "stop"})
    frames = await receive_until(communicator, done, timeout=2)
    assert frames[-1]["status"] == "stopped"
    saved = await reply_of(reply_id)
    assert saved.status == "stopped" and saved.content == ""
    await communicator.disconnect()


async def test_stop_mid_reply_keeps_what_arrived(user, conversation, model_config, upstream):
    upstream.push(Script([chunk("Kept "), chunk("text"), 5.0, chunk(" never")]))
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, lambda f: f["type"] == "delta" and "text" in f["content"])
    reply_id = frames[-1]["message_id"]
    await communicator.send_json_to({"type": "stop"})
    frames += await receive_until(communicator, done, timeout=2)
    assert frames[-1]["status"] == "stopped"
    assert text_of(frames, reply_id) == "Kept text"
    saved = await reply_of(reply_id)
    assert (saved.status, saved.content) == ("stopped", "Kept text")
    await communicator.disconnect()


async def test_stop_with_nothing_streaming_is_harmless(user, conversation):
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "stop"})
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


@pytest.mark.parametrize(
    "script, code, readable",
    [
        (error(429, "Rate limit reached for requests", headers={"retry-after": "20"}), "rate_limited", "try again in 20 s"),
        (error(401, "Incorrect API key provided: sk-test-0123***WXYZ"), "unauthorized", "did not accept the API key"),
        (error(400, "max_tokens is too large"), "bad_request", "max_tokens is too large"),
        (error(500, "The server had an error"), "server_error", "The server had an error"),
        (error(503, "The engine is currently overloaded"), "unavailable", "overloaded"),
    ],
)
async def test_upstream_refusal_ends_with_readable_error(user, conversation, model_config, upstream, script, code, readable):
    upstream.push(script)
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, lambda f: f["type"] == "error")
    done_frame = next(f for f in frames if f["type"] == "done")
    assert done_frame["status"] == "error"
    error_frame = frames[-1]
    assert error_frame["code"] == code and readable in error_frame["message"]
    assert error_frame["message_id"] == done_frame["message_id"]
    assert "0123" not in error_frame["message"]  # no piece of a key reaches the browser
    saved = await reply_of(done_frame["message_id"])
    assert saved.status == "error" and readable in saved.error
    await communicator.disconnect()


@pytest.mark.parametrize(
    "tail, code",
    [
        ([DROP], "connection_lost"),
        ([sse({"error": {"message": "The model crashed", "type": "server_error"}})], "upstream_error"),
        ([b"data: {not json\n\n"], "bad_response"),
    ],
)
async def test_failure_mid_stream_keeps_partial_text(user, conversation, model_config, upstream, tail, code):
    upstream.push(Script([chunk("Partial "), chunk("answer"), *tail]))
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, lambda f: f["type"] == "error")
    reply_id = frames[-1]["message_id"]
    assert frames[-1]["code"] == code
    assert text_of(frames, reply_id) == "Partial answer"
    saved = await reply_of(reply_id)
    assert (saved.status, saved.content) == ("error", "Partial answer")
    await communicator.disconnect()


async def test_stall_past_read_timeout_ends_with_timeout(user, conversation, model_config, upstream):
    provider = model_config.provider
    provider.timeout = 1
    await sync_to_async(provider.save)()
    upstream.push(Script([chunk("Before stall"), 3.0, chunk("late")]))
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, lambda f: f["type"] == "error", timeout=5)
    assert frames[-1]["code"] == "timeout"
    saved = await reply_of(frames[-1]["message_id"])
    assert (saved.status, saved.content) == ("error", "Before stall")
    await communicator.disconnect()


async def test_stream_without_done_marker_completes(user, conversation, model_config, upstream):
    upstream.push(reply(["No ", "done ", "marker"], done=False, usage=None))
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, done)
    assert frames[-1]["status"] == "complete" and frames[-1]["content"] == "No done marker"
    await communicator.disconnect()


async def test_length_finish_reason_is_reported(user, conversation, model_config, upstream):
    upstream.push(reply(["Cut ", "off"], finish_reason="length"))
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, done)
    assert frames[-1]["finish_reason"] == "length"
    saved = await reply_of(frames[-1]["message_id"])
    assert saved.finish_reason == "length"
    await communicator.disconnect()


# --- named events and error lines in the stream ------------------------------------------


async def test_ping_events_between_chunks_are_not_part_of_the_reply(user, conversation, model_config, upstream):
    ping = b"event: ping\ndata: 2025-01-06T10:00:00Z\n\n"
    upstream.push(Script([ping, chunk("Pinged "), ping, chunk("through", finish_reason="stop"), ping, DONE]))
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, done)
    final = frames[-1]
    assert (final["status"], final["content"], final["finish_reason"], final["note"]) == (
        "complete", "Pinged through", "stop", ""
    )
    await communicator.disconnect()


async def test_llama_cpp_error_line_ends_the_reply_with_its_message_and_keeps_the_text(
    user, conversation, model_config, upstream
):
    error_line = b'error: {"code":500,"message":"Context size has been exceeded.","type":"server_error"}\n\n'
    upstream.push(Script([chunk("", role="assistant"), chunk("Once "), chunk("upon"), error_line, DONE]))
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, is_error)
    reason = "The model server reported an error mid-reply: Context size has been exceeded."
    reply_id = frames[-1]["message_id"]
    assert (frames[-1]["code"], frames[-1]["message"]) == ("upstream_error", reason)
    assert text_of(frames, reply_id) == "Once upon"
    saved = await reply_of(reply_id)
    assert (saved.status, saved.content, saved.error) == ("error", "Once upon", reason)
    await communicator.disconnect()


# --- a 200 that is no stream, a stream that does not say it finished ------------------


@pytest.mark.parametrize(
    "script, reason",
    [
        (
            answer(b"<!doctype html>\n<title>502 Bad Gateway</title>\n", content_type="text/html"),
            "The model server answered with an HTML page instead of a stream (text/html); the page is not shown.",
        ),
        (
            answer(b"", content_type="text/event-stream"),
            "The model server answered with an empty body instead of a stream (text/event-stream).",
        ),
    ],
    ids=["html-page", "empty-body"],
)
async def test_200_that_is_no_stream_ends_the_reply_as_an_error_with_the_reason(
    user, conversation, model_config, upstream, script, reason
):
    upstream.push(script)
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, is_error)
    done_frame = next(f for f in frames if f["type"] == "done")
    assert (done_frame["status"], done_frame["error"], done_frame["note"]) == ("error", reason, reason)
    assert done_frame["note_class"] == "message-error"
    assert (frames[-1]["code"], frames[-1]["message"]) == ("bad_response", reason)
    saved = await messages_of(conversation)
    assert [(m.role, m.status) for m in saved] == [("user", "complete"), ("assistant", "error")]
    assert (saved[1].content, saved[1].error) == ("", reason)
    await communicator.disconnect()


async def test_stream_ending_without_saying_it_finished_is_kept_with_a_note_that_it_may_be_cut_off(
    user, conversation, model_config, upstream
):
    upstream.push(Script([chunk("", role="assistant"), chunk("Cut "), chunk("short")]))
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, done)
    note = "This reply may be cut off: the model server ended the stream without saying it had finished."
    final = frames[-1]
    assert (final["status"], final["content"], final["finish_reason"]) == ("complete", "Cut short", "incomplete")
    assert (final["note"], final["note_class"], final["error"]) == (note, "message-note", "")
    assert not any(f["type"] == "error" for f in frames)
    saved = await reply_of(final["message_id"])
    assert (saved.status, saved.content, saved.finish_reason, saved.error) == ("complete", "Cut short", "incomplete", "")
    await communicator.disconnect()
    again = await open_socket(user, conversation, query=f"since={final['message_id']}")
    caught_up = await again.receive_json_from()
    assert (caught_up["message"]["note"], caught_up["message"]["note_class"]) == (note, "message-note")
    await again.disconnect()


# --- the reply belongs to the conversation, not the socket ------------------------------


async def test_closing_the_tab_does_not_lose_the_reply(user, conversation, model_config, upstream):
    upstream.push(reply(["word "] * 20, delay=0.02))
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, lambda f: f["type"] == "delta")
    reply_id = frames[-1]["message_id"]
    await communicator.disconnect()
    await streaming.wait_for_replies()
    saved = await reply_of(reply_id)
    assert saved.status == "complete"
    assert saved.content == "word " * 20


async def test_every_open_tab_sees_the_stream(user, conversation, model_config, upstream):
    upstream.push(reply(["a", "b", "c", "d"], delay=0.02))
    first = await open_socket(user, conversation)
    second = await open_socket(user, conversation)
    await send(first)
    frames_first = await receive_until(first, done)
    frames_second = await receive_until(second, done)
    reply_id = frames_first[-1]["message_id"]
    assert text_of(frames_first, reply_id) == text_of(frames_second, reply_id) == "abcd"
    assert frames_second[0]["type"] == "message"  # the other tab sees the user's message too
    await first.disconnect()
    await second.disconnect()


async def test_socket_joining_mid_reply_gets_text_so_far_then_live_without_gap_or_repeat(
    user, conversation, model_config, upstream
):
    pieces = [f"w{i} " for i in range(40)]
    upstream.push(reply(pieces, delay=0.01))
    first = await open_socket(user, conversation)
    await send(first)
    frames = await receive_until(first, lambda f: f["type"] == "delta" and f["offset"] > 20)
    reply_id = frames[-1]["message_id"]
    late = await open_socket(user, conversation)
    late_frames = await receive_until(late, done)
    assert late_frames[0] == {"type": "start", "message_id": reply_id}
    assert late_frames[1]["type"] == "delta" and late_frames[1]["offset"] == 0 and len(late_frames[1]["content"]) > 20
    assert text_of(late_frames, reply_id) == "".join(pieces)
    assert late_frames[-1]["content"] == "".join(pieces)
    await first.disconnect()
    await late.disconnect()


async def test_reconnect_with_since_catches_up_on_missed_messages(user, conversation, model_config, upstream):
    upstream.push(reply(["while ", "you ", "were ", "away"]))
    first = await open_socket(user, conversation)
    await send(first)
    frames = await receive_until(first, done)
    user_id = frames[0]["message"]["id"]
    await first.disconnect()
    again = await open_socket(user, conversation, query=f"since={user_id}")
    caught_up = [await again.receive_json_from() for _ in range(2)]
    assert [f["message"]["role"] for f in caught_up] == ["user", "assistant"]
    assert caught_up[1]["message"]["status"] == "complete"
    assert caught_up[1]["message"]["content"] == "while you were away"
    assert "while you were away" in caught_up[1]["message"]["html"]
    await again.disconnect()


async def test_regenerate_adds_a_version_of_the_last_reply_and_keeps_the_old_one(user, conversation, model_config, upstream):
    upstream.push(reply(["first answer"]), reply(["second answer"]))
    communicator = await open_socket(user, conversation)
    await send(communicator, "Question")
    first = await receive_until(communicator, done)
    question_id, old_id = first[0]["message"]["id"], first[-1]["message_id"]
    await communicator.send_json_to({"type": "regenerate"})
    frames = await receive_until(communicator, done)
    new_id = frames[-1]["message_id"]
    assert frames[0] == {"type": "start", "message_id": new_id, "parent_id": question_id, "versions": [old_id, new_id]}
    assert frames[-1]["content"] == "second answer"
    saved = await messages_of(conversation)
    assert [(m.role, m.content, m.parent_id) for m in saved] == [
        ("user", "Question", None), ("assistant", "first answer", question_id), ("assistant", "second answer", question_id)
    ]
    assert upstream.requests[-1].body["messages"] == [{"role": "user", "content": "Question"}]
    await communicator.disconnect()


async def test_regenerate_in_an_empty_conversation_is_refused(user, conversation):
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "regenerate"})
    frame = await communicator.receive_json_from()
    assert frame["code"] == "nothing_to_regenerate"
    await communicator.disconnect()


async def test_reply_is_checkpointed_a_few_times_not_per_token(user, conversation, model_config, upstream, settings, checkpoints):
    settings.CHAT_CHECKPOINT_INTERVAL = 0.25
    pieces = [f"t{i} " for i in range(60)]
    upstream.push(reply(pieces, delay=0.02))  # about 1.2 s, 60 tokens
    communicator = await open_socket(user, conversation)
    await send(communicator)
    frames = await receive_until(communicator, lambda f: f["type"] == "delta" and f["offset"] > 100, timeout=5)
    reply_id = frames[-1]["message_id"]
    await asyncio.sleep(0.4)
    midway = await reply_of(reply_id)
    assert midway.status == "streaming" and 0 < len(midway.content) < len("".join(pieces))
    await receive_until(communicator, done)
    assert 2 <= len(checkpoints) <= 8, checkpoints
    await communicator.disconnect()


async def test_deleting_a_shared_conversation_tells_every_open_socket_it_was_deleted(user, conversation, make_user):
    from conversations.models import Share

    bob = await sync_to_async(make_user)("bob")
    await sync_to_async(Share.objects.create)(conversation=conversation, user=bob, role=Share.Role.VIEWER)
    owner = await open_socket(user, conversation)
    viewer = await open_socket(bob, conversation)

    def delete_through_the_page():
        return login(user).post(f"/c/{conversation.id}/delete/")

    response = await sync_to_async(delete_through_the_page)()
    assert response.status_code == 302
    for communicator in (owner, viewer):
        frames = await receive_until(communicator, lambda f: f["type"] == "error")
        # Not "access revoked": the shares went with the conversation.
        assert frames[-1]["code"] == "deleted"
        assert (await communicator.receive_output(timeout=2))["code"] == 4410

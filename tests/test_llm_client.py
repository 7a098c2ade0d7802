"""stream_reply against a real local HTTP server speaking the OpenAI streaming format."""

import asyncio
import json
import time
from dataclasses import replace

import pytest

from conversations.llm import INCOMPLETE, Chunk, ModelSpec, UpstreamError, Usage, stream_reply
from conversations.llm.client import shared_client
from conversations.llm.demo import reply_text
from conversations.llm.errors import scrub
from tests.factories import TEST_KEY, TEST_OPTIONS, spec_for
from tests.fake_openai import DONE, DROP, Script, answer, chunk, error, reply, sse, usage_chunk
from tests.helpers import free_port
from tests.test_sse import RECORDED, RECORDED_FAILURES

HISTORY = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Tell me about otters"},
]


async def collect(spec: ModelSpec, history: list[dict] = HISTORY, **kwargs) -> list[Chunk]:
    return [piece async for piece in stream_reply(spec, history, options=TEST_OPTIONS, **kwargs)]


async def collect_until_error(spec: ModelSpec, history: list[dict] = HISTORY) -> tuple[list[Chunk], UpstreamError]:
    """The chunks yielded before the stream failed, and the error it failed with."""
    pieces = []
    with pytest.raises(UpstreamError) as raised:
        async for piece in stream_reply(spec, history, options=TEST_OPTIONS):
            pieces.append(piece)
    return pieces, raised.value


def text_of(pieces: list[Chunk]) -> str:
    return "".join(piece.text for piece in pieces)


def finish_reasons(pieces: list[Chunk]) -> list[str]:
    return [piece.finish_reason for piece in pieces if piece.finish_reason]


def usages(pieces: list[Chunk]) -> list[Usage]:
    return [piece.usage for piece in pieces if piece.usage]


# --- a well-behaved stream -----------------------------------------------------------------------


async def test_text_is_assembled_from_the_streamed_chunks(upstream):
    upstream.push(reply(["Otters ", "hold ", "hands ", "while ", "they ", "sleep."]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters hold hands while they sleep."


async def test_each_content_chunk_is_yielded_as_it_arrives(upstream):
    upstream.push(reply(["Otters ", "hold ", "hands."], delay=0.1))

    pieces = await collect(spec_for(upstream))

    assert [piece.text for piece in pieces if piece.text] == ["Otters ", "hold ", "hands."]


async def test_events_that_arrive_together_come_out_as_one_chunk(upstream):
    together = chunk("Otters ") + chunk("hold ") + chunk("hands.", finish_reason="stop") + usage_chunk(3, 4)
    upstream.push(Script([together]))

    pieces = await collect(spec_for(upstream))

    assert len(pieces) == 1
    assert (pieces[0].text, pieces[0].finish_reason, pieces[0].usage) == ("Otters hold hands.", "stop", Usage(3, 4))


async def test_nul_characters_and_lone_surrogates_in_model_output_are_made_storable(upstream):
    upstream.push(Script([b'data: {"choices": [{"index": 0, "delta": {"content": "a\\u0000b \\ud800 c \\ud83d\\ude00"}}]}\n\n']))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "ab \ufffd c \U0001f600"


@pytest.mark.parametrize("reason", ["stop", "length", "content_filter"])
async def test_finish_reason_is_reported(upstream, reason):
    upstream.push(reply("Otters are", finish_reason=reason))

    pieces = await collect(spec_for(upstream))

    assert finish_reasons(pieces) == [reason]


async def test_usage_comes_from_the_usage_only_chunk(upstream):
    upstream.push(reply("Otters", usage=(11, 3)))

    pieces = await collect(spec_for(upstream))

    assert usages(pieces) == [Usage(prompt_tokens=11, completion_tokens=3)]
    assert pieces[-1].usage == Usage(11, 3)


async def test_model_name_is_reported(upstream):
    upstream.push(reply("Otters", model="gpt-4o-mini-2024-07-18"))

    pieces = await collect(spec_for(upstream))

    assert {piece.model for piece in pieces} == {"gpt-4o-mini-2024-07-18"}


async def test_stream_ending_without_done_still_completes(upstream):
    upstream.push(reply("Otters are mustelids", done=False))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters are mustelids"
    assert usages(pieces) == [Usage(5, 7)]
    assert finish_reasons(pieces) == ["stop"]


async def test_stream_ending_with_done_but_no_finish_reason_is_a_normal_end(upstream):
    upstream.push(Script([chunk("", role="assistant"), chunk("Otters"), usage_chunk(5, 1), DONE]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters"
    assert finish_reasons(pieces) == []


async def test_stream_ending_with_neither_done_nor_finish_reason_keeps_its_text_and_says_incomplete(upstream):
    upstream.push(Script([chunk("", role="assistant"), chunk("Otters hold "), chunk("hands"), usage_chunk(5, 3)]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters hold hands"
    assert pieces[-1] == Chunk(finish_reason=INCOMPLETE)
    assert finish_reasons(pieces) == [INCOMPLETE]
    assert usages(pieces) == [Usage(5, 3)]


async def test_stream_of_only_keep_alives_is_a_bad_response(upstream):
    upstream.push(Script([b": keep-alive\n\n", b": keep-alive\n\n"]))

    pieces, raised = await collect_until_error(spec_for(upstream))

    assert pieces == []
    assert raised.code == "bad_response"
    assert raised.message == "The model server ended the stream without sending any part of a reply."


async def test_nul_characters_in_the_read_that_ends_the_stream_are_made_storable_too(upstream):
    upstream.push(Script([b'data: {"choices": [{"index": 0, "delta": {"content": "a\\u0000b"}}]}\n\n' + DONE]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "ab"


async def test_last_event_missing_its_blank_line_is_still_read(upstream):
    upstream.push(Script([chunk("", role="assistant"), chunk("Otters"), chunk(None, finish_reason="stop")[:-1]]))

    pieces = await collect(spec_for(upstream))

    assert finish_reasons(pieces) == ["stop"]


async def test_events_after_done_are_not_read(upstream):
    upstream.push(Script([chunk("Otters"), DONE, chunk(" and beavers")]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters"


async def test_keep_alive_comments_between_chunks_are_ignored(upstream):
    keep_alive = b": keep-alive\n\n"
    upstream.push(Script([keep_alive, chunk("", role="assistant"), keep_alive, chunk("Ot"), keep_alive, keep_alive,
                          chunk("ters"), keep_alive, chunk(None, finish_reason="stop"), keep_alive, DONE]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters"
    assert finish_reasons(pieces) == ["stop"]


async def test_keep_alive_comments_keep_a_slow_reply_from_timing_out(upstream):
    keep_alive = b": keep-alive\n\n"
    steps = [chunk("", role="assistant")] + [0.1, keep_alive] * 5  # 0.5 s in all, no gap near 0.3 s
    upstream.push(Script([*steps, chunk("Otters"), chunk(None, finish_reason="stop"), DONE]))

    pieces = await collect(spec_for(upstream, timeout=0.3))

    assert text_of(pieces) == "Otters"


async def test_ping_events_between_chunks_are_skipped(upstream):
    ping = b"event: ping\ndata: 2025-01-06T10:00:00Z\n\n"
    upstream.push(Script([ping, chunk("Ot"), ping, chunk("ters", finish_reason="stop"), ping, DONE]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters"
    assert finish_reasons(pieces) == ["stop"]


async def test_id_and_retry_lines_are_ignored(upstream):
    upstream.push(Script([b"retry: 3000\n\n", b"id: 1\n" + chunk("Otters"), b"id: 2\nretry: 10\n" + DONE]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters"
    assert finish_reasons(pieces) == []


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_provider_stream_gives_its_reply(upstream, name):
    stream, text, finish_reason, usage, _ = RECORDED[name]
    upstream.push(Script([stream[i : i + 61] for i in range(0, len(stream), 61)]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == text
    assert finish_reasons(pieces) == [finish_reason]
    assert usages(pieces) == [Usage(*usage)]


# --- the request ---------------------------------------------------------------------------------


async def test_request_posts_to_chat_completions_under_the_base_url(upstream):
    await collect(spec_for(upstream))

    [request] = upstream.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")


async def test_base_url_with_trailing_slash_gives_the_same_path(upstream):
    await collect(spec_for(upstream, base_url=upstream.base_url + "/"))

    assert upstream.requests[0].path == "/v1/chat/completions"


async def test_request_carries_the_key_as_bearer_token(upstream):
    await collect(spec_for(upstream))

    assert upstream.requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"


async def test_request_is_json_and_accepts_an_event_stream(upstream):
    await collect(spec_for(upstream))

    headers = upstream.requests[0].headers
    assert headers["content-type"] == "application/json"
    assert "text/event-stream" in headers["accept"]


async def test_request_body_is_model_messages_stream_options_parameters_and_user(upstream):
    spec = spec_for(upstream, system_prompt="You are terse.", parameters={"temperature": 0.2, "max_tokens": 50})

    await collect(spec, user="user-42")

    assert upstream.requests[0].body == {
        "model": "fake-model",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me about otters"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "max_tokens": 50,
        "user": "user-42",
    }


async def test_request_without_system_prompt_starts_with_the_history(upstream):
    await collect(spec_for(upstream))

    assert upstream.requests[0].body["messages"][0] == {"role": "user", "content": "Hi"}


async def test_request_without_parameters_or_user_sends_no_extra_fields(upstream):
    await collect(spec_for(upstream))

    assert set(upstream.requests[0].body) == {"model", "messages", "stream", "stream_options"}


async def test_no_authorization_header_without_an_api_key(upstream):
    await collect(spec_for(upstream, api_key=""))

    assert "authorization" not in upstream.requests[0].headers


# --- the legacy completions endpoint -------------------------------------------------------------


async def test_completions_endpoint_posts_a_prompt_to_v1_completions(upstream):
    upstream.push(reply("Otters", completion=True))

    await collect(spec_for(upstream, endpoint="completions", system_prompt="Be brief."))

    [request] = upstream.requests
    assert request.path == "/v1/completions"
    assert "messages" not in request.body
    assert request.body["prompt"] == (
        "Be brief.\n\nUser: Hi\n\nAssistant: Hello! How can I help?\n\nUser: Tell me about otters\n\nAssistant:"
    )
    assert request.body["stop"] == ["\nUser:"]


async def test_completions_endpoint_reads_text_from_choices(upstream):
    upstream.push(reply(["Otters ", "float."], completion=True, finish_reason="length", usage=(20, 2)))

    pieces = await collect(spec_for(upstream, endpoint="completions"))

    assert text_of(pieces) == "Otters float."
    assert finish_reasons(pieces) == ["length"]
    assert usages(pieces) == [Usage(20, 2)]


async def test_completions_endpoint_keeps_a_stop_set_in_parameters(upstream):
    upstream.push(reply("Otters", completion=True))

    await collect(spec_for(upstream, endpoint="completions", parameters={"stop": ["###"]}))

    assert upstream.requests[0].body["stop"] == ["###"]


# --- HTTP errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "api_message"),
    [
        (400, "bad_request", "'messages' must contain at least one message."),
        (401, "unauthorized", "Incorrect API key provided."),
        (404, "not_found", "The model `gpt-9` does not exist or you do not have access to it."),
        (500, "server_error", "The server had an error while processing your request. Sorry about that!"),
        (503, "unavailable", "The engine is currently overloaded, please try again later."),
    ],
)
async def test_error_status_maps_to_a_code_and_a_message_with_the_apis_words(upstream, status, code, api_message):
    upstream.push(error(status, api_message))

    pieces, raised = await collect_until_error(spec_for(upstream))

    assert pieces == []
    assert (raised.code, raised.status) == (code, status)
    assert api_message in raised.message
    assert str(status) in raised.message


async def test_rate_limit_reports_retry_after_from_the_header(upstream):
    upstream.push(error(429, "Rate limit reached for requests.", type="requests", headers={"retry-after": "7"}))

    _, raised = await collect_until_error(spec_for(upstream))

    assert (raised.code, raised.status, raised.retry_after) == ("rate_limited", 429, 7.0)
    assert "7 s" in raised.message
    assert "Rate limit reached for requests." in raised.message


async def test_error_without_retry_after_has_none(upstream):
    upstream.push(error(429, "Slow down"))

    _, raised = await collect_until_error(spec_for(upstream))

    assert raised.retry_after is None


async def test_non_json_error_body_is_shown_as_text(upstream):
    upstream.push(Script([b"404 page not found"], status=404, headers={"content-type": "text/plain"}))

    _, raised = await collect_until_error(spec_for(upstream))

    assert (raised.code, raised.status) == ("not_found", 404)
    assert raised.message == "The model server does not know this model or address (404): 404 page not found"


@pytest.mark.parametrize(
    "content_type", ["text/html; charset=utf-8", "application/xhtml+xml", "text/plain", None], ids=str
)
async def test_error_page_is_described_not_shown(upstream, content_type):
    page = b"<!doctype html><title>Admin console</title><h1>Internal users</h1><p>alice, bob</p>"
    upstream.push(Script([page], status=502, headers={"content-type": content_type} if content_type else {}))

    _, raised = await collect_until_error(spec_for(upstream))

    assert (raised.code, raised.status) == ("unavailable", 502)
    shown_type = content_type.split(";")[0] if content_type else "no Content-Type"
    assert raised.message == f"The model server is unavailable (502): an HTML page ({shown_type}), not shown"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_not_followed_and_says_where_it_pointed(upstream, status):
    inside = f"http://127.0.0.1:{upstream.port}/internal/secret"
    upstream.push(Script([b""], status=status, headers={"location": inside + "?token=abc"}))

    _, raised = await collect_until_error(spec_for(upstream))

    assert (raised.code, raised.status) == ("redirected", status)
    assert raised.message == (
        f"The model server redirected the request ({status}) to {inside}; redirects are not followed. "
        "If that is where the server is, make it the base URL."
    )
    assert [request.path for request in upstream.requests] == ["/v1/chat/completions"]


async def test_error_json_with_detail_instead_of_message_is_shown(upstream):
    body = json.dumps({"detail": "Model not loaded: fake-model"}).encode()
    upstream.push(Script([body], status=404, headers={"content-type": "application/json"}))

    _, raised = await collect_until_error(spec_for(upstream))

    assert raised.code == "not_found"
    assert "Model not loaded: fake-model" in raised.message


# --- failures mid-stream -------------------------------------------------------------------------


async def test_error_object_mid_stream_raises_after_the_text_before_it(upstream):
    upstream.push(Script([chunk("", role="assistant"), chunk("Otters "), chunk("are"),
                          sse({"error": {"message": "The server had an error while processing your request.",
                                         "type": "server_error"}})]))

    pieces, raised = await collect_until_error(spec_for(upstream))

    assert text_of(pieces) == "Otters are"
    assert raised.code == "upstream_error"
    assert "The server had an error while processing your request." in raised.message


async def test_error_event_mid_stream_raises_with_its_message(upstream):
    upstream.push(Script([chunk("Otters"), b'event: error\ndata: {"message": "Overloaded"}\n\n']))

    pieces, raised = await collect_until_error(spec_for(upstream))

    assert text_of(pieces) == "Otters"
    assert raised.code == "upstream_error"
    assert "Overloaded" in raised.message


@pytest.mark.parametrize("name", RECORDED_FAILURES)
async def test_recorded_failure_mid_stream_raises_its_message_after_the_text_before_it(upstream, name):
    stream, text, message = RECORDED_FAILURES[name]
    upstream.push(Script([stream[i : i + 61] for i in range(0, len(stream), 61)]))

    pieces, raised = await collect_until_error(spec_for(upstream))

    assert text_of(pieces) == text
    assert raised.code == "upstream_error"
    assert raised.message == f"The model server reported an error mid-reply: {message}"


async def test_error_line_with_a_key_in_its_message_is_scrubbed(upstream):
    line = b'error: {"code":401,"message":"Invalid key %s","type":"authentication_error"}\n\n' % TEST_KEY.encode()
    upstream.push(Script([chunk("Otters"), line]))

    _, raised = await collect_until_error(spec_for(upstream))

    assert raised.code == "upstream_error"
    assert TEST_KEY not in raised.message and "Invalid key [key]" in raised.message


async def test_error_line_that_is_not_json_is_ignored_as_an_unknown_field(upstream):
    upstream.push(Script([chunk("Otters"), b"error: nothing to see\n\n", chunk(None, finish_reason="stop"), DONE]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters"
    assert finish_reasons(pieces) == ["stop"]


async def test_malformed_json_chunk_is_a_bad_response(upstream):
    upstream.push(Script([chunk("", role="assistant"), chunk("Otters"), b'data: {"choices": [{"delta": \n\n']))

    pieces, raised = await collect_until_error(spec_for(upstream))

    assert text_of(pieces) == "Otters"
    assert raised.code == "bad_response"


async def test_chunk_that_is_json_but_not_an_object_is_a_bad_response(upstream):
    upstream.push(Script([chunk("Otters"), b"data: [1, 2]\n\n"]))

    _, raised = await collect_until_error(spec_for(upstream))

    assert raised.code == "bad_response"


async def test_connection_dropped_mid_stream_is_connection_lost_after_the_chunks_before(upstream):
    upstream.push(Script([chunk("", role="assistant"), chunk("Hel"), chunk("lo"), 0.05, DROP]))

    pieces, raised = await collect_until_error(spec_for(upstream))

    assert text_of(pieces) == "Hello"
    assert raised.code == "connection_lost"


async def test_stall_longer_than_the_read_timeout_is_a_timeout(upstream):
    upstream.push(Script([chunk("", role="assistant"), chunk("Otters"), 2.0, DROP]))
    started = time.monotonic()

    pieces, raised = await collect_until_error(spec_for(upstream, timeout=0.3))

    assert time.monotonic() - started < 1.0
    assert text_of(pieces) == "Otters"
    assert raised.code == "timeout"
    assert "0.3 s" in raised.message


async def test_closed_port_is_unreachable():
    spec = spec_for(base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=2)

    _, raised = await collect_until_error(spec)

    assert raised.code == "unreachable"
    assert "127.0.0.1" in raised.message


# --- a server that does not stream ---------------------------------------------------------------


def completion_json(content: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }).encode()


async def test_server_ignoring_stream_answers_with_one_json_completion(upstream):
    upstream.push(Script([completion_json("Otters float.")], headers={"content-type": "application/json"}))

    pieces = await collect(spec_for(upstream))

    assert pieces == [Chunk(text="Otters float.", finish_reason="stop", usage=Usage(9, 2), model="fake-model")]


async def test_long_json_completion_comes_through_whole(upstream):
    content = "Otters float. " * 10_000  # 140 kB, past the cap on error bodies
    body = completion_json(content)
    upstream.push(Script([body[i : i + 16_384] for i in range(0, len(body), 16_384)],
                         headers={"content-type": "application/json"}))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == content


async def test_json_completion_under_another_content_type_comes_through(upstream):
    upstream.push(answer(completion_json("Otters float."), content_type="text/plain; charset=utf-8"))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters float."


# --- a 200 that is no reply ----------------------------------------------------------------------

BAD_GATEWAY_PAGE = b"<!doctype html>\n<title>502 Bad Gateway</title>\n<h1>Bad Gateway</h1>\n<p>The upstream did not answer.</p>\n"


async def test_html_page_instead_of_a_stream_is_a_bad_response_that_does_not_show_it(upstream):
    upstream.push(answer(BAD_GATEWAY_PAGE, content_type="text/html; charset=utf-8"))

    pieces, raised = await collect_until_error(spec_for(upstream))

    assert pieces == []
    assert raised.code == "bad_response"
    assert raised.message == "The model server answered with an HTML page instead of a stream (text/html); the page is not shown."


async def test_html_page_sent_as_an_event_stream_is_still_an_html_page(upstream):
    upstream.push(answer(BAD_GATEWAY_PAGE, content_type="text/event-stream"))

    _, raised = await collect_until_error(spec_for(upstream))

    assert raised.message == (
        "The model server answered with an HTML page instead of a stream (text/event-stream); the page is not shown."
    )


async def test_long_text_is_shown_cut_to_about_200_characters_with_whitespace_collapsed(upstream):
    text = b"Service\n  unavailable:\n\n\t" + b"the gateway is restarting; " * 100
    upstream.push(answer(text, content_type="text/plain"))

    _, raised = await collect_until_error(spec_for(upstream))

    shown = raised.message.split("(text/plain): ", 1)[1]
    assert shown.startswith("Service unavailable: the gateway is restarting; the gateway")
    assert shown.endswith("…") and 190 <= len(shown) <= 201
    assert "\n" not in shown and "  " not in shown


@pytest.mark.parametrize("content_type", ["text/event-stream", "application/json", None])
async def test_empty_body_is_a_bad_response(upstream, content_type):
    upstream.push(answer(b"", content_type=content_type))

    pieces, raised = await collect_until_error(spec_for(upstream))

    assert pieces == []
    assert raised.code == "bad_response"
    shown_type = content_type or "no Content-Type"
    assert raised.message == f"The model server answered with an empty body instead of a stream ({shown_type})."


async def test_text_that_is_no_stream_is_a_bad_response_showing_it(upstream):
    upstream.push(answer(b"upstream connect error or disconnect/reset before headers. reset reason: overflow"))

    _, raised = await collect_until_error(spec_for(upstream))

    assert raised.code == "bad_response"
    assert raised.message == (
        "The model server answered with something other than a stream (text/plain): "
        "upstream connect error or disconnect/reset before headers. reset reason: overflow"
    )


@pytest.mark.parametrize("content_type", ["application/json", "text/event-stream"])
async def test_json_error_object_with_a_200_is_an_upstream_error_with_its_message(upstream, content_type):
    body = json.dumps({"error": {"message": "Model is loading", "type": "server_error", "code": 503}}).encode()
    upstream.push(answer(body, content_type=content_type))

    _, raised = await collect_until_error(spec_for(upstream))

    assert raised.code == "upstream_error"
    assert raised.message == "The model server reported an error: Model is loading"


async def test_json_that_is_not_a_completion_is_a_bad_response_showing_it(upstream):
    upstream.push(answer(b'{"status": "queued", "position": 3}', content_type="application/json"))

    _, raised = await collect_until_error(spec_for(upstream))

    assert raised.code == "bad_response"
    assert raised.message == (
        'The model server answered with JSON that is not a completion (application/json): {"status": "queued", "position": 3}'
    )


async def test_api_key_in_text_instead_of_a_stream_is_scrubbed(upstream):
    upstream.push(answer(b"Request with key %s was blocked" % TEST_KEY.encode(), content_type="text/plain"))

    _, raised = await collect_until_error(spec_for(upstream))

    assert TEST_KEY not in raised.message
    assert "Request with key [key] was blocked" in raised.message


@pytest.mark.parametrize(
    "first_bytes",
    [b"", b"\xef\xbb\xbf", b"\n\n", b"\r\n", b": ok\n\n", b"event: message\n", b"id: 7\n", b"retry: 1000\n"],
    ids=["data", "bom", "blank-lines", "crlf", "comment", "event", "id", "retry"],
)
@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "text/html", None])
async def test_event_stream_under_a_wrong_or_missing_content_type_still_streams(upstream, first_bytes, content_type):
    steps = [first_bytes + chunk("Ot"), chunk("ters", finish_reason="stop"), DONE]
    upstream.push(Script(steps, headers={"content-type": content_type} if content_type else {}))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters"
    assert finish_reasons(pieces) == ["stop"]


async def test_event_stream_whose_first_read_is_one_byte_still_streams(upstream):
    upstream.push(Script([b"d", 0.02, b"ata", 0.02, chunk("Otters")[4:], chunk(None, finish_reason="stop"), DONE]))

    pieces = await collect(spec_for(upstream))

    assert text_of(pieces) == "Otters"


async def test_llama_cpp_error_line_as_the_first_line_is_its_error(upstream):
    upstream.push(Script([b'error: {"code":500,"message":"Context size has been exceeded.","type":"server_error"}\n\n', DONE]))

    _, raised = await collect_until_error(spec_for(upstream))

    assert raised.message == "The model server reported an error mid-reply: Context size has been exceeded."


# --- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        error(401, f"Incorrect API key provided: {TEST_KEY}. You can find your API key at https://example.com."),
        Script([f"Unauthorized: bad key {TEST_KEY}".encode()], status=401, headers={"content-type": "text/plain"}),
        Script([chunk("Otters"), sse({"error": {"message": f"key {TEST_KEY} was revoked"}})]),
    ],
    ids=["json-error", "text-error", "mid-stream-error"],
)
async def test_api_key_echoed_in_an_error_is_scrubbed(upstream, script):
    upstream.push(script)

    _, raised = await collect_until_error(spec_for(upstream))

    assert TEST_KEY not in raised.message
    assert TEST_KEY not in str(raised) and TEST_KEY not in repr(raised)
    assert "[key]" in raised.message


async def test_other_key_shaped_strings_in_an_error_are_scrubbed(upstream):
    upstream.push(error(401, "Key sk-proj-AbCdEf0123456789 is not valid for this organisation."))

    _, raised = await collect_until_error(spec_for(upstream))

    assert "sk-proj-AbCdEf0123456789" not in raised.message
    assert "is not valid for this organisation." in raised.message


PARTIAL_KEY = "Zq8rT2mK9vX4pL7nB3wY6hJ1cF5dG0sE"  # 32 characters, like an Azure key: no sk- to spot it by


async def test_part_of_the_key_echoed_in_an_error_is_scrubbed(upstream):
    upstream.push(error(401, f"Access denied: the key starting {PARTIAL_KEY[:24]} is not valid."))

    _, raised = await collect_until_error(spec_for(upstream, api_key=PARTIAL_KEY))

    assert raised.message.endswith("(401): Access denied: the key starting [key] is not valid.")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"key {PARTIAL_KEY[4:28]}.", "key [key]."),
        (f"ends {PARTIAL_KEY[-8:]}, starts {PARTIAL_KEY[:8]}", "ends [key], starts [key]"),
        (f"glued{PARTIAL_KEY[3:13]}{PARTIAL_KEY[20:30]}x", "glued[key]x"),  # two runs touching: one stretch
        (f"seven {PARTIAL_KEY[5:12]} stay", f"seven {PARTIAL_KEY[5:12]} stay"),  # too few to tell anything
        ("nothing of it here", "nothing of it here"),
        (f"and sk-other-AbCdEf012345 {PARTIAL_KEY}", "and sk-… [key]"),
    ],
    ids=["24-of-32", "both-ends", "touching-runs", "seven", "none", "key-shaped"],
)
def test_scrub_takes_out_every_run_of_eight_characters_of_the_key(text, shown):
    assert scrub(text, spec_for(api_key=PARTIAL_KEY)) == shown


# --- closing early -------------------------------------------------------------------------------


async def test_closing_the_stream_early_closes_the_connection(upstream):
    steps = [chunk("", role="assistant"), chunk("Otters")]
    for _ in range(40):  # two seconds more of reply, if nobody hung up
        steps += [0.05, chunk(" and otters")]
    upstream.push(Script([*steps, DONE]))
    closed_before = upstream.closed_early
    replies = stream_reply(spec_for(upstream), HISTORY, options=TEST_OPTIONS)
    text = ""
    while "Otters" not in text:  # the role chunk and the first words may come in one read or two
        text += (await anext(replies)).text
    assert text == "Otters"

    await replies.aclose()

    deadline = time.monotonic() + 1.0
    while upstream.closed_early == closed_before and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert upstream.closed_early == closed_before + 1


# --- the pooled client --------------------------------------------------------------------------


async def test_options_of_the_same_shape_share_one_pooled_client():
    client = shared_client(TEST_OPTIONS)

    assert shared_client(replace(TEST_OPTIONS, retries=5, retry_max_wait=1.0)) is client


async def test_options_that_shape_the_pool_get_a_client_built_for_them():
    client = shared_client(TEST_OPTIONS)

    assert shared_client(replace(TEST_OPTIONS, demo_delay=0.01)) is not client
    assert shared_client(replace(TEST_OPTIONS, max_connections=10)) is not client
    assert shared_client(TEST_OPTIONS) is client


# --- the demo model ------------------------------------------------------------------------------

DEMO = ModelSpec(base_url="http://demo.invalid/v1", model="demo")


async def test_demo_reply_quotes_the_last_user_message():
    pieces = await collect(DEMO)

    assert "> Tell me about otters\n" in text_of(pieces)
    assert "> Hi\n" not in text_of(pieces)


async def test_demo_reply_is_deterministic():
    first, second = await collect(DEMO), await collect(DEMO)

    assert text_of(first) == text_of(second) == reply_text({"messages": HISTORY})


async def test_demo_reply_streams_in_many_pieces_and_ends_with_stop_and_usage():
    pieces = await collect(DEMO)

    words = [piece for piece in pieces if piece.text]
    assert len(words) > 20
    assert finish_reasons(pieces) == ["stop"]
    assert pieces[-1].usage == Usage(prompt_tokens=10, completion_tokens=len(words))
    assert {piece.model for piece in pieces} == {"demo"}


async def test_demo_never_reaches_the_network(upstream):
    await collect(DEMO)

    assert upstream.requests == []

"""The incremental SSE decoder, fed recorded streams from real servers in pieces of every size."""

import json

import pytest

from conversations.llm import sse
from conversations.llm.sse import ServerSentEvent, SSEDecoder, SSEError

# --- recorded streams ----------------------------------------------------------------------------
# Byte for byte what each server sends for a short streamed chat reply (ids and timings shortened).

OPENAI_STREAM = (
    'data: {"id":"chatcmpl-AZq1","object":"chat.completion.chunk","created":1733000000,'
    '"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,'
    '"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],'
    '"usage":null}\n\n'
    'data: {"id":"chatcmpl-AZq1","object":"chat.completion.chunk","created":1733000000,'
    '"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,'
    '"delta":{"content":"Caf\u00e9"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-AZq1","object":"chat.completion.chunk","created":1733000000,'
    '"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,'
    '"delta":{"content":" \u4e2d\u6587"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-AZq1","object":"chat.completion.chunk","created":1733000000,'
    '"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,'
    '"delta":{"content":" \U0001f44b"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-AZq1","object":"chat.completion.chunk","created":1733000000,'
    '"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,'
    '"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-AZq1","object":"chat.completion.chunk","created":1733000000,'
    '"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[],'
    '"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13,'
    '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}}\n\n'
    "data: [DONE]\n\n"
).encode()

# Azure OpenAI opens with a chunk that has no choices, only the prompt's content-filter results.
AZURE_STREAM = (
    b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":'
    b'[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},'
    b'"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},'
    b'"violence":{"filtered":false,"severity":"safe"}}}]}\n\n'
    b'data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},'
    b'"finish_reason":null,"index":0,"logprobs":null}],"created":1733000000,"id":"chatcmpl-Az7",'
    b'"model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_04751d0b65"}\n\n'
    b'data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},'
    b'"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},'
    b'"violence":{"filtered":false,"severity":"safe"}},"delta":{"content":"Hello"},"finish_reason":null,'
    b'"index":0,"logprobs":null}],"created":1733000000,"id":"chatcmpl-Az7","model":"gpt-4o-2024-08-06",'
    b'"object":"chat.completion.chunk","system_fingerprint":"fp_04751d0b65"}\n\n'
    b'data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},'
    b'"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},'
    b'"violence":{"filtered":false,"severity":"safe"}},"delta":{"content":" from Azure"},"finish_reason":null,'
    b'"index":0,"logprobs":null}],"created":1733000000,"id":"chatcmpl-Az7","model":"gpt-4o-2024-08-06",'
    b'"object":"chat.completion.chunk","system_fingerprint":"fp_04751d0b65"}\n\n'
    b'data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,'
    b'"logprobs":null}],"created":1733000000,"id":"chatcmpl-Az7","model":"gpt-4o-2024-08-06",'
    b'"object":"chat.completion.chunk","system_fingerprint":"fp_04751d0b65"}\n\n'
    b'data: {"choices":[],"created":1733000000,"id":"chatcmpl-Az7","model":"gpt-4o-2024-08-06",'
    b'"object":"chat.completion.chunk","system_fingerprint":"fp_04751d0b65",'
    b'"usage":{"completion_tokens":3,"prompt_tokens":12,"total_tokens":15}}\n\n'
    b"data: [DONE]\n\n"
)

# Ollama's OpenAI-compatible /v1: the role repeated in every delta, usage after an empty choices list.
OLLAMA_STREAM = (
    b'data: {"id":"chatcmpl-412","object":"chat.completion.chunk","created":1733000000,"model":"llama3.2",'
    b'"system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},'
    b'"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-412","object":"chat.completion.chunk","created":1733000000,"model":"llama3.2",'
    b'"system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":" there!"},'
    b'"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-412","object":"chat.completion.chunk","created":1733000000,"model":"llama3.2",'
    b'"system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    b'"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"chatcmpl-412","object":"chat.completion.chunk","created":1733000000,"model":"llama3.2",'
    b'"system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":26,"completion_tokens":3,'
    b'"total_tokens":29}}\n\n'
    b"data: [DONE]\n\n"
)

# vLLM: "usage":null on every chunk when include_usage is on, a stop_reason beside finish_reason.
VLLM_STREAM = (
    'data: {"id":"chatcmpl-9f2c","object":"chat.completion.chunk","created":1733000000,'
    '"model":"Qwen/Qwen2.5-7B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    '"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-9f2c","object":"chat.completion.chunk","created":1733000000,'
    '"model":"Qwen/Qwen2.5-7B-Instruct","choices":[{"index":0,"delta":{"content":"Bonjour"},'
    '"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-9f2c","object":"chat.completion.chunk","created":1733000000,'
    '"model":"Qwen/Qwen2.5-7B-Instruct","choices":[{"index":0,"delta":{"content":" \u00e0 tous"},'
    '"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-9f2c","object":"chat.completion.chunk","created":1733000000,'
    '"model":"Qwen/Qwen2.5-7B-Instruct","choices":[{"index":0,"delta":{"content":""},"logprobs":null,'
    '"finish_reason":"length","stop_reason":null}],"usage":null}\n\n'
    'data: {"id":"chatcmpl-9f2c","object":"chat.completion.chunk","created":1733000000,'
    '"model":"Qwen/Qwen2.5-7B-Instruct","choices":[],"usage":{"prompt_tokens":20,"total_tokens":25,'
    '"completion_tokens":5}}\n\n'
    "data: [DONE]\n\n"
).encode()

# llama.cpp's llama-server: content null in the role chunk, usage and timings on the finish chunk.
LLAMA_CPP_STREAM = (
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],'
    b'"created":1733000000,"id":"chatcmpl-xK3","model":"gpt-3.5-turbo","system_fingerprint":"b4600-5d0c8c5b",'
    b'"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hello"}}],"created":1733000000,'
    b'"id":"chatcmpl-xK3","model":"gpt-3.5-turbo","system_fingerprint":"b4600-5d0c8c5b",'
    b'"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":" world"}}],"created":1733000000,'
    b'"id":"chatcmpl-xK3","model":"gpt-3.5-turbo","system_fingerprint":"b4600-5d0c8c5b",'
    b'"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1733000000,"id":"chatcmpl-xK3",'
    b'"model":"gpt-3.5-turbo","system_fingerprint":"b4600-5d0c8c5b","object":"chat.completion.chunk",'
    b'"usage":{"completion_tokens":2,"prompt_tokens":10,"total_tokens":12},"timings":{"prompt_n":10,'
    b'"prompt_ms":12.31,"predicted_n":2,"predicted_ms":30.12}}\n\n'
    b"data: [DONE]\n\n"
)

# OpenRouter keeps the connection warm with comment lines while the provider starts.
OPENROUTER_STREAM = (
    b": OPENROUTER PROCESSING\n\n"
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"id":"gen-1733000000-Xb1","provider":"OpenAI","model":"openai/gpt-4o-mini",'
    b'"object":"chat.completion.chunk","created":1733000000,"choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":"Hi"},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n'
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"id":"gen-1733000000-Xb1","provider":"OpenAI","model":"openai/gpt-4o-mini",'
    b'"object":"chat.completion.chunk","created":1733000000,"choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":" friend"},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n'
    b'data: {"id":"gen-1733000000-Xb1","provider":"OpenAI","model":"openai/gpt-4o-mini",'
    b'"object":"chat.completion.chunk","created":1733000000,"choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":""},"finish_reason":"stop","native_finish_reason":"stop","logprobs":null}]}\n\n'
    b'data: {"id":"gen-1733000000-Xb1","provider":"OpenAI","model":"openai/gpt-4o-mini",'
    b'"object":"chat.completion.chunk","created":1733000000,"choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":""},"finish_reason":null,"native_finish_reason":null,"logprobs":null}],'
    b'"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}\n\n'
    b"data: [DONE]\n\n"
)

# A gateway's named keep-alive events between the chunks: `event: ping`, whose data is a time, not a chunk.
PING_STREAM = (
    b"event: ping\ndata: 2025-01-06T10:00:00Z\n\n"
    b'data: {"id":"chatcmpl-Pg1","object":"chat.completion.chunk","created":1736157600,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Still"},"finish_reason":null}]}\n\n'
    b"event: ping\ndata: 2025-01-06T10:00:15Z\n\n"
    b'data: {"id":"chatcmpl-Pg1","object":"chat.completion.chunk","created":1736157600,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"content":" here"},"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-Pg1","object":"chat.completion.chunk","created":1736157600,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":8,"completion_tokens":2,"total_tokens":10}}\n\n'
    b"event: ping\ndata: 2025-01-06T10:00:30Z\n\n"
    b"data: [DONE]\n\n"
)

# A server on an SSE framework: CRLF line endings, a `retry:` delay first, every event numbered with `id:`.
ID_RETRY_STREAM = (
    b"retry: 3000\r\n\r\n"
    b'id: 1\r\ndata: {"id":"chatcmpl-Nb7","object":"chat.completion.chunk","created":1736157600,"model":"qwen2.5",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\r\n\r\n'
    b'id: 2\r\ndata: {"id":"chatcmpl-Nb7","object":"chat.completion.chunk","created":1736157600,"model":"qwen2.5",'
    b'"choices":[{"index":0,"delta":{"content":"Numbered"},"finish_reason":null}]}\r\n\r\n'
    b'id: 3\r\nretry: 5000\r\ndata: {"id":"chatcmpl-Nb7","object":"chat.completion.chunk","created":1736157600,'
    b'"model":"qwen2.5","choices":[{"index":0,"delta":{"content":" events"},"finish_reason":null}]}\r\n\r\n'
    b'id: 4\r\ndata: {"id":"chatcmpl-Nb7","object":"chat.completion.chunk","created":1736157600,"model":"qwen2.5",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":14,"completion_tokens":2,"total_tokens":16}}\r\n\r\n'
    b"id: 5\r\ndata: [DONE]\r\n\r\n"
)

# name -> (stream, the reply text, the finish reason, (prompt_tokens, completion_tokens), events)
RECORDED = {
    "openai": (OPENAI_STREAM, "Caf\u00e9 \u4e2d\u6587 \U0001f44b", "stop", (9, 4), 7),
    "azure": (AZURE_STREAM, "Hello from Azure", "stop", (12, 3), 7),
    "ollama": (OLLAMA_STREAM, "Hi there!", "stop", (26, 3), 5),
    "vllm": (VLLM_STREAM, "Bonjour \u00e0 tous", "length", (20, 5), 6),
    "llama.cpp": (LLAMA_CPP_STREAM, "Hello world", "stop", (10, 2), 5),
    "openrouter": (OPENROUTER_STREAM, "Hi friend", "stop", (10, 2), 5),
    "ping-events": (PING_STREAM, "Still here", "stop", (8, 2), 7),
    "id-and-retry": (ID_RETRY_STREAM, "Numbered events", "stop", (14, 2), 5),
}

# llama.cpp's llama-server when generation fails mid-reply: the failure comes on a line whose FIELD NAME is
# "error" (its server_sent_event(sink, "error", …)), which the format would drop, then [DONE] as usual.
LLAMA_CPP_ERROR_STREAM = (
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],'
    b'"created":1733000000,"id":"chatcmpl-xK9","model":"gpt-3.5-turbo","system_fingerprint":"b4600-5d0c8c5b",'
    b'"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Once upon"}}],"created":1733000000,'
    b'"id":"chatcmpl-xK9","model":"gpt-3.5-turbo","system_fingerprint":"b4600-5d0c8c5b",'
    b'"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":" a time"}}],"created":1733000000,'
    b'"id":"chatcmpl-xK9","model":"gpt-3.5-turbo","system_fingerprint":"b4600-5d0c8c5b",'
    b'"object":"chat.completion.chunk"}\n\n'
    b'error: {"code":500,"message":"Context size has been exceeded.","type":"server_error"}\n\n'
    b"data: [DONE]\n\n"
)
LLAMA_CPP_ERROR = '{"code":500,"message":"Context size has been exceeded.","type":"server_error"}'

# name -> (stream, the text before the failure, the server's message)
RECORDED_FAILURES = {
    "llama.cpp": (LLAMA_CPP_ERROR_STREAM, "Once upon a time", "Context size has been exceeded."),
}

# Every recorded stream by name, those that fail included: what the decoder is fed in pieces.
STREAMS = {name: entry[0] for name, entry in RECORDED.items()} | {
    f"{name}-failure": entry[0] for name, entry in RECORDED_FAILURES.items()
}


# --- helpers -------------------------------------------------------------------------------------


def decode(*pieces: bytes) -> list[ServerSentEvent]:
    """Every event the pieces make, the stream's end included."""
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.close())
    return events


def data_of(*pieces: bytes) -> list[str]:
    return [event.data for event in decode(*pieces)]


def reply_of(events: list[ServerSentEvent]) -> tuple[str, str | None, tuple | None]:
    """Text, finish reason and usage, read the way a client reads chat.completion.chunk events."""
    text, finish_reason, usage = "", None, None
    for event in events:
        if event.event != "message":
            continue  # pings and the like
        if event.data == "[DONE]":
            break
        payload = json.loads(event.data)
        for choice in payload["choices"]:
            text += choice["delta"].get("content") or ""
            finish_reason = choice.get("finish_reason") or finish_reason
        if payload.get("usage"):
            usage = (payload["usage"]["prompt_tokens"], payload["usage"]["completion_tokens"])
    return text, finish_reason, usage


# --- a real OpenAI stream ------------------------------------------------------------------------


def test_openai_stream_gives_one_event_per_data_line_ending_with_done():
    events = decode(OPENAI_STREAM)

    assert len(events) == 7
    assert all(event.event == "message" and event.id is None for event in events)
    assert events[-1].data == "[DONE]"


def test_openai_stream_opens_with_the_role_chunk():
    first = json.loads(decode(OPENAI_STREAM)[0].data)

    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}


def test_openai_stream_ends_with_a_usage_chunk_with_no_choices():
    usage_event = json.loads(decode(OPENAI_STREAM)[-2].data)

    assert usage_event["choices"] == []
    assert usage_event["usage"]["total_tokens"] == 13


def test_openai_stream_carries_text_finish_reason_and_usage():
    assert reply_of(decode(OPENAI_STREAM)) == ("Caf\u00e9 \u4e2d\u6587 \U0001f44b", "stop", (9, 4))


def test_stream_fed_byte_by_byte_gives_the_same_events():
    whole = decode(OPENAI_STREAM)

    pieces = [OPENAI_STREAM[i : i + 1] for i in range(len(OPENAI_STREAM))]

    assert decode(*pieces) == whole


def test_stream_split_at_every_point_gives_the_same_events():
    whole = decode(OPENAI_STREAM)

    for cut in range(len(OPENAI_STREAM) + 1):
        assert decode(OPENAI_STREAM[:cut], OPENAI_STREAM[cut:]) == whole, f"split at byte {cut}"


def test_feed_returns_each_event_as_soon_as_its_blank_line_arrives():
    decoder = SSEDecoder()
    first_event_end = OPENAI_STREAM.index(b"\n\n") + 2

    assert decoder.feed(OPENAI_STREAM[: first_event_end - 1]) == []
    assert len(decoder.feed(OPENAI_STREAM[first_event_end - 1 : first_event_end])) == 1


def test_empty_feeds_change_nothing():
    assert decode(b"", OPENAI_STREAM[:50], b"", OPENAI_STREAM[50:], b"") == decode(OPENAI_STREAM)


# --- recorded streams from other servers ---------------------------------------------------------


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_stream_decodes_to_its_reply(name):
    stream, text, finish_reason, usage, count = RECORDED[name]

    events = decode(stream)

    assert len(events) == count
    assert events[-1].data == "[DONE]"
    assert reply_of(events) == (text, finish_reason, usage)


@pytest.mark.parametrize("name", STREAMS)
def test_recorded_stream_split_at_every_point_decodes_the_same(name):
    stream = STREAMS[name]
    whole = decode(stream)

    for cut in range(len(stream) + 1):
        assert decode(stream[:cut], stream[cut:]) == whole, f"{name} split at byte {cut}"


@pytest.mark.parametrize("name", STREAMS)
def test_recorded_stream_fed_in_three_byte_pieces_decodes_the_same(name):
    stream = STREAMS[name]

    pieces = [stream[i : i + 3] for i in range(0, len(stream), 3)]

    assert decode(*pieces) == decode(stream)


def test_llama_cpp_error_line_comes_out_in_its_place_between_the_text_and_done():
    events = decode(LLAMA_CPP_ERROR_STREAM)

    assert [(event.event, event.field) for event in events] == [("message", "data")] * 3 + [
        ("error", "error"),
        ("message", "data"),
    ]
    assert events[3].data == LLAMA_CPP_ERROR
    assert events[4].data == "[DONE]"


def test_llama_cpp_error_stream_fed_byte_by_byte_decodes_the_same():
    stream = LLAMA_CPP_ERROR_STREAM

    assert decode(*[stream[i : i + 1] for i in range(len(stream))]) == decode(stream)


def test_ping_events_keep_their_name_and_data_for_the_reader_to_skip():
    pings = [event for event in decode(PING_STREAM) if event.event == "ping"]

    assert [event.data for event in pings] == ["2025-01-06T10:00:00Z", "2025-01-06T10:00:15Z", "2025-01-06T10:00:30Z"]


def test_id_and_retry_lines_leave_the_data_as_it_is():
    events = decode(ID_RETRY_STREAM)

    assert [event.id for event in events] == ["1", "2", "3", "4", "5"]
    assert all(event.event == "message" and event.field == "data" for event in events)
    assert reply_of(events)[0] == "Numbered events"


def test_azure_first_event_has_no_choices_only_prompt_filter_results():
    first = json.loads(decode(AZURE_STREAM)[0].data)

    assert first["choices"] == []
    assert first["prompt_filter_results"][0]["prompt_index"] == 0


# --- line endings --------------------------------------------------------------------------------


def test_crlf_line_endings_give_the_same_events_as_lf():
    assert decode(OPENAI_STREAM.replace(b"\n", b"\r\n")) == decode(OPENAI_STREAM)


def test_lone_cr_line_endings_give_the_same_events_as_lf():
    assert decode(OPENAI_STREAM.replace(b"\n", b"\r")) == decode(OPENAI_STREAM)


def test_crlf_stream_split_at_every_point_gives_the_same_events():
    stream = OPENAI_STREAM.replace(b"\n", b"\r\n")
    whole = decode(OPENAI_STREAM)

    for cut in range(len(stream) + 1):
        assert decode(stream[:cut], stream[cut:]) == whole, f"split at byte {cut}"


def test_crlf_stream_fed_byte_by_byte_gives_the_same_events():
    stream = OPENAI_STREAM.replace(b"\n", b"\r\n")

    assert decode(*[stream[i : i + 1] for i in range(len(stream))]) == decode(OPENAI_STREAM)


def test_crlf_split_between_feeds_is_one_line_ending_not_two():
    # Read as CR then LF, the split would make a blank line and end the event after "a".
    assert data_of(b"data: a\r", b"\ndata: b\r\n\r\n") == ["a\nb"]


def test_cr_at_the_end_of_a_feed_then_other_bytes_is_a_lone_line_ending():
    assert data_of(b"data: a\r", b"data: b\r\r") == ["a\nb"]


def test_mixed_line_endings_in_one_stream():
    assert data_of(b"data: a\r\ndata: b\rdata: c\n\r\n") == ["a\nb\nc"]


def test_event_ended_by_a_lone_cr_is_delivered_once_the_next_byte_shows_it_is_not_crlf():
    decoder = SSEDecoder()

    assert decoder.feed(b"data: x\r\r") == []  # the last CR may still be half of a CRLF
    assert decoder.feed(b"d") == [ServerSentEvent(data="x")]


# --- comments, fields ----------------------------------------------------------------------------


def test_comment_lines_are_skipped():
    assert data_of(b": ping\n\ndata: a\n: ping\ndata: b\n\n: OPENROUTER PROCESSING\n\n") == ["a\nb"]


def test_stream_of_only_keep_alive_comments_gives_no_events():
    assert decode(b": ping\n\n" * 5 + b": OPENROUTER PROCESSING\n\n") == []


def test_comment_with_no_text_is_skipped():
    assert data_of(b":\ndata: a\n\n") == ["a"]


def test_event_field_names_the_event():
    assert decode(b"event: error\ndata: {}\n\n") == [ServerSentEvent(data="{}", event="error")]


def test_event_name_applies_to_its_own_event_only():
    events = decode(b"event: ping\ndata: 1\n\ndata: 2\n\n")

    assert [event.event for event in events] == ["ping", "message"]


def test_event_name_without_data_dispatches_nothing():
    assert decode(b"event: ping\n\n") == []


def test_id_field_is_reported_and_kept_for_later_events():
    events = decode(b"id: 41\ndata: a\n\ndata: b\n\nid: 42\ndata: c\n\n")

    assert [event.id for event in events] == ["41", "41", "42"]


def test_id_containing_nul_is_ignored():
    assert decode(b"id: 7\ndata: a\n\nid: 8\x00\ndata: b\n\n")[1].id == "7"


def test_multiple_data_lines_join_with_newline():
    assert data_of(b"data: first\ndata: second\ndata: third\n\n") == ["first\nsecond\nthird"]


def test_data_without_space_after_colon():
    assert data_of(b'data:{"a":1}\n\n') == ['{"a":1}']


def test_only_one_space_after_the_colon_is_dropped():
    assert data_of(b"data:  indented\n\n") == [" indented"]


def test_colon_inside_the_value_is_kept():
    assert data_of(b'data: {"url":"http://x"}\n\n') == ['{"url":"http://x"}']


def test_field_line_with_no_colon_is_the_field_with_an_empty_value():
    assert data_of(b"data\ndata: x\n\n") == ["\nx"]


def test_lone_data_line_with_no_colon_is_an_empty_event():
    assert decode(b"data\n\n") == [ServerSentEvent(data="")]


def test_field_names_are_case_sensitive():
    assert decode(b"Data: x\n\n") == []


def test_error_line_is_an_event_of_its_own():
    assert decode(b'error: {"message":"boom"}\n\n') == [
        ServerSentEvent(data='{"message":"boom"}', event="error", field="error")
    ]


def test_error_line_without_a_blank_line_at_the_end_of_the_stream_is_delivered():
    events = decode(b"data: a\n\nerror: {}")

    assert events == [ServerSentEvent(data="a"), ServerSentEvent(data="{}", event="error", field="error")]


def test_error_line_inside_an_event_ends_that_event_first():
    events = decode(b"data: a\nerror: {}\ndata: b\n\n")

    assert [(event.data, event.field) for event in events] == [("a", "data"), ("{}", "error"), ("b", "data")]


def test_unknown_fields_are_ignored():
    assert data_of(b"foo: bar\ndata: x\nbaz\n\n") == ["x"]


def test_retry_field_is_ignored():
    assert decode(b"retry: 3000\ndata: x\n\n") == [ServerSentEvent(data="x")]


def test_retry_alone_dispatches_nothing():
    assert decode(b"retry: 10000\n\n") == []


def test_extra_blank_lines_dispatch_nothing():
    assert data_of(b"\n\n\ndata: a\n\n\n\n\ndata: b\n\n\n") == ["a", "b"]


# --- UTF-8 and the byte order mark ---------------------------------------------------------------


@pytest.mark.parametrize("character", ["\u00e9", "\u4e2d", "\U0001f600"], ids=["e-acute", "cjk", "emoji"])
def test_multibyte_character_split_across_feeds_is_decoded_whole(character):
    stream = f"data: a{character}b\n\n".encode()
    start = stream.index(character.encode())

    for cut in range(start + 1, start + len(character.encode())):
        assert data_of(stream[:cut], stream[cut:]) == [f"a{character}b"], f"split at byte {cut}"


def test_multibyte_characters_fed_byte_by_byte_are_decoded_whole():
    stream = "data: \u00e9\u4e2d\U0001f600\n\n".encode()

    assert data_of(*[stream[i : i + 1] for i in range(len(stream))]) == ["\u00e9\u4e2d\U0001f600"]


def test_invalid_utf8_is_replaced_not_raised():
    assert data_of(b"data: a\xffb\n\n") == ["a\ufffdb"]


def test_leading_bom_is_dropped():
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [ServerSentEvent(data="x")]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_leading_bom_split_across_feeds_is_dropped(cut):
    stream = b"\xef\xbb\xbfdata: x\n\n"

    assert decode(stream[:cut], stream[cut:]) == [ServerSentEvent(data="x")]


def test_leading_bom_fed_byte_by_byte_is_dropped():
    stream = b"\xef\xbb\xbfdata: x\n\n"

    assert decode(*[stream[i : i + 1] for i in range(len(stream))]) == [ServerSentEvent(data="x")]


def test_bom_later_in_the_stream_is_kept_as_data():
    assert data_of(b"data: a\n\ndata: \xef\xbb\xbfb\n\n") == ["a", "\ufeffb"]


def test_short_first_feeds_without_a_bom_are_kept():
    assert data_of(b"d", b"a", b"ta: x\n\n") == ["x"]


# --- the end of the stream -----------------------------------------------------------------------


def test_close_delivers_an_event_missing_its_blank_line():
    decoder = SSEDecoder()

    assert decoder.feed(b'data: {"last":true}\n') == []
    assert decoder.close() == [ServerSentEvent(data='{"last":true}')]


def test_close_delivers_a_last_line_missing_its_newline():
    assert data_of(b"data: a\n\ndata: tail") == ["a", "tail"]


def test_close_delivers_a_last_line_ending_in_cr():
    assert data_of(b"data: tail\r") == ["tail"]


def test_close_with_nothing_pending_gives_nothing():
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n")

    assert decoder.close() == []


def test_close_after_a_comment_gives_nothing():
    decoder = SSEDecoder()

    assert decoder.feed(b"data: a\n\n: keep-alive") == [ServerSentEvent(data="a")]
    assert decoder.close() == []


# --- limits --------------------------------------------------------------------------------------


def test_overlong_line_raises(monkeypatch):
    monkeypatch.setattr(sse, "MAX_LINE_BYTES", 64)
    decoder = SSEDecoder()

    with pytest.raises(SSEError):
        decoder.feed(b"data: " + b"x" * 100)


def test_overlong_line_arriving_in_small_pieces_raises(monkeypatch):
    monkeypatch.setattr(sse, "MAX_LINE_BYTES", 64)
    decoder = SSEDecoder()
    decoder.feed(b"data: ")

    with pytest.raises(SSEError):
        for _ in range(20):
            decoder.feed(b"x" * 8)


def test_line_within_the_limit_is_accepted(monkeypatch):
    monkeypatch.setattr(sse, "MAX_LINE_BYTES", 64)

    assert data_of(b"data: " + b"x" * 58, b"\n\n") == ["x" * 58]


def test_many_short_lines_in_one_feed_do_not_count_as_one_long_line(monkeypatch):
    monkeypatch.setattr(sse, "MAX_LINE_BYTES", 64)

    assert len(decode(b"data: 0123456789\n\n" * 50)) == 50

"""The websocket wire format: the client-frame parser and the server-frame builders."""

import json

import pytest

from conversations import events
from conversations.events import MAX_FRAME_DEPTH, FrameError, Regenerate, Send, Stop, max_frame_chars, parse_client_frame

LIMIT = 20


def parse(frame) -> events.ClientFrame:
    text = frame if isinstance(frame, str) or frame is None else json.dumps(frame)
    return parse_client_frame(text, max_chars=LIMIT)


def error_code(frame) -> str:
    with pytest.raises(FrameError) as caught:
        parse(frame)
    assert caught.value.message, "every frame error carries a readable message"
    return caught.value.code


# --- valid frames ------------------------------------------------------------------


def test_send_without_model_uses_the_default():
    assert parse({"type": "send", "content": "Hello"}) == Send(content="Hello", model=None)


def test_send_carries_the_chosen_model():
    assert parse({"type": "send", "content": "Hello", "model": 7}) == Send(content="Hello", model=7)


@pytest.mark.parametrize("model", [None, ""])
def test_send_with_null_or_blank_model_means_the_default(model):
    assert parse({"type": "send", "content": "Hi", "model": model}) == Send(content="Hi", model=None)


def test_send_keeps_content_exactly_as_written():
    content = "  two\n  lines  "
    assert parse({"type": "send", "content": content}).content == content


def test_stop_parses():
    assert parse({"type": "stop"}) == Stop()


def test_stop_ignores_extra_keys():
    assert parse({"type": "stop", "content": 5, "model": "x"}) == Stop()


def test_regenerate_without_model():
    assert parse({"type": "regenerate"}) == Regenerate(model=None)


def test_regenerate_with_model():
    assert parse({"type": "regenerate", "model": 3}) == Regenerate(model=3)


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "{", "not json", "{'type': 'send'}", '{"type": "send",}'])
def test_text_that_is_not_json_is_invalid_json(text):
    assert error_code(text) == "invalid_json"


@pytest.mark.parametrize("text", ["[]", '["send"]', "1", '"send"', "null", "true"])
def test_json_that_is_not_an_object_is_an_invalid_frame(text):
    assert error_code(text) == "invalid_frame"


@pytest.mark.parametrize("kind", [None, 1, ["send"], {"send": 1}, True])
def test_type_that_is_not_a_string_is_an_invalid_frame(kind):
    assert error_code({"type": kind, "content": "x"}) == "invalid_frame"


def test_frame_without_type_is_an_invalid_frame():
    assert error_code({"content": "x"}) == "invalid_frame"


@pytest.mark.parametrize("kind", ["Send", "delete", "", "send "])
def test_unknown_type_is_reported_as_such(kind):
    assert error_code({"type": kind, "content": "x"}) == "unknown_type"


def test_unknown_type_message_does_not_echo_a_huge_type():
    with pytest.raises(FrameError) as caught:
        parse({"type": "x" * 1_000})  # a longer frame is refused for its length first
    assert caught.value.code == "unknown_type"
    assert len(caught.value.message) < 200


def test_send_without_content_is_an_invalid_frame():
    assert error_code({"type": "send"}) == "invalid_frame"


@pytest.mark.parametrize("content", [None, 5, ["hi"], {"text": "hi"}, True])
def test_send_with_non_string_content_is_an_invalid_frame(content):
    assert error_code({"type": "send", "content": content}) == "invalid_frame"


@pytest.mark.parametrize("model", ["1", "abc", True, False, 0, -1, 1.5, 2.0, [1], {"id": 1}])
def test_send_with_a_model_that_is_not_a_positive_integer_is_an_invalid_frame(model):
    assert error_code({"type": "send", "content": "hi", "model": model}) == "invalid_frame"


@pytest.mark.parametrize("model", ["1", True, 0, -3, 1.5])
def test_regenerate_with_a_bad_model_is_an_invalid_frame(model):
    assert error_code({"type": "regenerate", "model": model}) == "invalid_frame"


@pytest.mark.parametrize("content", ["", " ", "\n\t  \r\n", "\u3000"])
def test_blank_content_is_empty_content(content):
    assert error_code({"type": "send", "content": content}) == "empty_content"


def test_content_exactly_at_the_limit_is_accepted():
    content = "a" * LIMIT
    assert parse({"type": "send", "content": content}) == Send(content=content)


def test_content_one_over_the_limit_is_too_long():
    assert error_code({"type": "send", "content": "a" * (LIMIT + 1)}) == "content_too_long"


def test_the_limit_counts_characters_not_bytes():
    content = "é" * LIMIT  # 2 bytes each in UTF-8
    assert parse({"type": "send", "content": content}).content == content


@pytest.mark.parametrize("content", ["a\x00b", "\x00"])
def test_content_with_a_nul_is_invalid_content(content):
    # A lone NUL is not blank (str.strip keeps it), so it reaches the content check.
    assert error_code({"type": "send", "content": content}) == "invalid_content"


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\udc00b"])
def test_content_with_a_lone_surrogate_is_invalid_content(escape):
    # json.dumps would refuse to build this; browsers can send it.
    assert error_code('{"type": "send", "content": "' + escape + '"}') == "invalid_content"


def test_a_surrogate_pair_is_an_ordinary_character():
    assert parse('{"type": "send", "content": "\\ud83d\\ude00"}').content == "\U0001f600"


def test_binary_frame_is_refused():
    assert error_code(None) == "invalid_frame"


def test_frame_error_is_a_value_error_with_code_and_message():
    error = FrameError("invalid_frame", "Nope.")
    assert isinstance(error, ValueError)
    assert (error.code, error.message, str(error)) == ("invalid_frame", "Nope.", "Nope.")


# --- frames too long or too deep to parse --------------------------------------------

TOO_DEEP = "The frame is nested too deeply."
STOP = '{"type": "stop"}'


def stop_with(extra: str) -> str:
    """A stop frame with an extra key holding `extra` (JSON text): one level deeper than `extra`."""
    return '{"type": "stop", "extra": ' + extra + "}"


def arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def objects(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def refusal(text: str, max_chars: int = LIMIT) -> tuple[str, str]:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(text, max_chars=max_chars)
    return caught.value.code, caught.value.message


@pytest.mark.parametrize("nested", [arrays, objects])
def test_a_frame_nested_as_deep_as_the_bound_is_parsed(nested):
    assert parse(stop_with(nested(MAX_FRAME_DEPTH - 1))) == Stop()


@pytest.mark.parametrize("nested", [arrays, objects])
def test_a_frame_nested_one_level_deeper_is_refused(nested):
    assert refusal(stop_with(nested(MAX_FRAME_DEPTH))) == ("invalid_frame", TOO_DEEP)


@pytest.mark.parametrize("text", ["[" * 100_000, arrays(50_000), objects(20_000)], ids=["unclosed", "arrays", "objects"])
def test_thousands_of_levels_are_refused_not_raised(text):
    # json.loads would raise RecursionError here, and the socket would close with 1011.
    assert refusal(text, max_chars=100_000) == ("invalid_frame", TOO_DEEP)


@pytest.mark.parametrize(
    "text",
    [
        stop_with(json.dumps("[" * 50 + "{" * 50)),
        stop_with(json.dumps('say "[[[[[[[[[[" \\ [[[[[[[[[[')),  # an escaped quote and backslash inside
        stop_with(json.dumps(["[[["] * 100)),  # more strings than the one-call-each scan takes
    ],
    ids=["brackets", "escapes", "many-strings"],
)
def test_brackets_inside_strings_do_not_count(text):
    assert parse(text) == Stop()


def test_brackets_inside_the_content_do_not_count():
    assert parse({"type": "send", "content": "[{" * (LIMIT // 2)}) == Send(content="[{" * (LIMIT // 2))


@pytest.mark.parametrize(
    "text",
    [
        stop_with('["\\\\", ' + arrays(MAX_FRAME_DEPTH - 1) + "]"),  # one escaped backslash: the quote after is real
        stop_with("[" + '"]", ' * 100 + arrays(MAX_FRAME_DEPTH - 1) + "]"),  # past many strings
    ],
    ids=["after-an-escaped-backslash", "after-many-strings"],
)
def test_brackets_outside_strings_count_wherever_they_are(text):
    assert refusal(text) == ("invalid_frame", TOO_DEEP)


def test_a_frame_as_long_as_the_bound_is_parsed():
    assert parse(STOP + " " * (max_frame_chars(LIMIT) - len(STOP))) == Stop()


def test_a_frame_one_character_longer_than_the_bound_is_refused_unparsed():
    code, message = refusal(STOP + " " * (max_frame_chars(LIMIT) - len(STOP) + 1))
    assert code == "content_too_long"
    assert f"the limit is {LIMIT} characters" in message


def test_the_longest_valid_send_fits_the_bound():
    # json.dumps writes each emoji as two \uXXXX escapes: 12 characters for 1 of the limit.
    content = "\U0001f600" * 1_000
    text = json.dumps({"type": "send", "content": content, "model": 2**63 - 1}, indent=4)
    assert parse_client_frame(text, max_chars=1_000) == Send(content=content, model=2**63 - 1)


def test_a_huge_integer_is_an_invalid_frame():
    # Valid JSON, but longer than Python reads an int from a string (4,300 digits by default).
    code, message = refusal('{"type": "send", "content": "hi", "model": ' + "9" * 5_000 + "}", max_chars=1_000)
    assert (code, message) == ("invalid_frame", "A number in the frame is too long.")


def test_a_recursion_error_still_ends_as_a_frame_error(monkeypatch):
    monkeypatch.setattr(events, "MAX_FRAME_DEPTH", 10**6)  # as if the depth check let it through
    assert refusal("[" * 100_000, max_chars=100_000) == ("invalid_frame", TOO_DEEP)


# --- server frames -----------------------------------------------------------------


def test_start_frame_for_a_new_reply():
    assert events.start_frame(12) == {"type": "start", "message_id": 12}


def test_start_frame_says_what_the_reply_answers_and_its_versions():
    frame = events.start_frame(12, parent_id=9, versions=[10, 12])
    assert frame == {"type": "start", "message_id": 12, "parent_id": 9, "versions": [10, 12]}


def test_start_frame_of_a_reply_whose_place_is_not_known_leaves_it_out():
    assert events.start_frame(12) == {"type": "start", "message_id": 12}


def test_branch_frame():
    assert events.branch_frame(None, 7) == {"type": "branch", "parent_id": None, "leaf_id": 7}


def test_delta_frame():
    assert events.delta_frame(4, 10, "lo") == {"type": "delta", "message_id": 4, "offset": 10, "content": "lo"}


def test_done_frame_has_every_field():
    usage = {"prompt_tokens": 3, "completion_tokens": 5}
    frame = events.done_frame(
        4, status="complete", finish_reason="stop", usage=usage, html="<p>Hi</p>", content="Hi", error="",
        note="", note_class="message-note",
    )
    assert frame == {
        "type": "done",
        "message_id": 4,
        "status": "complete",
        "finish_reason": "stop",
        "usage": usage,
        "html": "<p>Hi</p>",
        "content": "Hi",
        "error": "",
        "note": "",
        "note_class": "message-note",
        "meta": None,
    }


@pytest.mark.parametrize("finish_reason", ["", None])
def test_done_frame_sends_a_missing_finish_reason_as_null(finish_reason):
    frame = events.done_frame(
        4, status="stopped", finish_reason=finish_reason, usage=None, html="", content="", error="", note="", note_class=""
    )
    assert frame["finish_reason"] is None
    assert frame["usage"] is None


def test_error_frame_without_message():
    assert events.error_frame("busy", "Wait.") == {"type": "error", "code": "busy", "message": "Wait."}


def test_error_frame_about_a_message():
    assert events.error_frame("upstream", "Down.", message_id=8) == {
        "type": "error",
        "code": "upstream",
        "message": "Down.",
        "message_id": 8,
    }


def test_message_frame_wraps_the_payload():
    payload = {"id": 1, "role": "user", "content": "x", "status": "complete", "html": "x"}
    assert events.message_frame(payload) == {"type": "message", "message": payload}


@pytest.mark.parametrize(
    "frame",
    [
        events.start_frame(1, parent_id=2, versions=[1, 3], context_start=2),
        events.branch_frame(2, 5),
        events.delta_frame(1, 0, "\u2603"),
        events.done_frame(
            1, status="error", finish_reason=None, usage=None, html="", content="", error="x",
            note="x", note_class="message-error",
        ),
        events.error_frame("x", "y", 3),
        events.message_frame({"id": 1}),
    ],
)
def test_server_frames_are_json_serialisable(frame):
    assert json.loads(json.dumps(frame)) == frame

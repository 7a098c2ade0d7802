"""The paths every relayed frame takes: the in-memory layer's queues, the consumer's dispatch loop and frame encoder,
the upstream event parser, and a reply's end on a socket (channel_layer.py, consumers/, llm/chunks.py)."""

import asyncio

import pytest
from channels.exceptions import StopConsumer

from conversations import events
from conversations.channel_layer import FastInMemoryChannelLayer
from conversations.consumers.conversation import _dumps, in_turn
from conversations.consumers.replies import ReplyRelay
from conversations.llm.chunks import load_json


async def test_a_channels_queue_outlives_its_messages_and_is_swept_once_empty_and_unwatched(monkeypatch):
    layer = FastInMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "a"})
    queue = layer.channels[channel]
    assert await layer.receive(channel) == {"type": "a"}
    await layer.send(channel, {"type": "b"})
    assert layer.channels[channel] is queue  # the same queue: none built per message
    assert await layer.receive(channel) == {"type": "b"}

    waiting = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0)
    layer._swept_at = 0.0
    layer._clean_expired()
    assert layer.channels[channel] is queue  # someone waits on it: kept
    await layer.send(channel, {"type": "c"})
    assert await waiting == {"type": "c"}

    layer._swept_at = 0.0
    layer._clean_expired()
    assert channel not in layer.channels  # empty, nobody waiting: gone, as receive used to drop it
    await layer.send(channel, {"type": "d"})
    assert await layer.receive(channel) == {"type": "d"}


async def test_in_turn_dispatches_one_message_at_a_time_and_stops_on_stop_consumer():
    first, second = asyncio.Queue(), asyncio.Queue()
    handled, running = [], []

    async def dispatch(message):
        running.append(message)
        assert len(running) == 1, "two handlers ran at once"
        await asyncio.sleep(0.001)
        handled.append(message)
        running.pop()
        if message == "stop":
            raise StopConsumer()

    for index in range(5):
        first.put_nowait(f"a{index}")
        second.put_nowait(f"b{index}")
    second.put_nowait("stop")
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(in_turn([first.get, second.get], dispatch), 5)
    assert [m for m in handled if m.startswith("a")] == [f"a{index}" for index in range(5)]
    assert [m for m in handled if m.startswith("b")] == [f"b{index}" for index in range(5)]
    assert handled[-1] == "stop"
    first.put_nowait("late")
    await asyncio.sleep(0.01)
    assert first.qsize() == 1  # the readers are gone: nothing more is taken


async def test_in_turn_raises_a_handlers_error_and_cancels_the_other_reader():
    quiet = asyncio.Queue()
    loud = asyncio.Queue()
    loud.put_nowait("boom")

    async def dispatch(message):
        raise ValueError(message)

    with pytest.raises(ValueError, match="boom"):
        await asyncio.wait_for(in_turn([quiet.get, loud.get], dispatch), 5)
    assert not quiet._getters or all(getter.cancelled() for getter in quiet._getters)


def test_frames_are_compact_json_and_text_with_a_lone_surrogate_still_encodes():
    frame = {"type": "delta", "content": "你好 \"x\"", "offset": 3}
    assert _dumps(frame) == '{"type":"delta","content":"你好 \\"x\\"","offset":3}'
    assert _dumps({1: "a"}) == '{"1":"a"}'
    assert _dumps({"content": "a\ud800b"}) == '{"content":"a\ud800b"}'  # as the standard library writes it


def test_events_parse_as_the_standard_library_parses_them():
    assert load_json('{"choices":[{"delta":{"content":"hi"}}],"created":1}') == {
        "choices": [{"delta": {"content": "hi"}}],
        "created": 1,
    }
    assert load_json('"a\\ud800b"') == "a\ud800b"  # refused by orjson, read by json
    assert load_json('{"x": NaN}')["x"] != 0
    with pytest.raises(ValueError):
        load_json("{not json")


class _Relay(ReplyRelay):
    """A socket's relay with its frames collected instead of sent."""

    def __init__(self):
        self.init_relay()
        self.frames = []

    async def _send(self, frame):
        self.frames.append(frame)


async def test_done_fills_what_a_socket_missed_with_one_delta_before_it():
    relay = _Relay()
    relay.replies[7] = 3  # it sent "Ott"; the deltas after were missed and the snapshot never came
    done = {"type": "done", "message_id": 7, "content": "Otters"}
    await relay.chat_frame({"frame": done})
    assert relay.frames == [events.delta_frame(7, 3, "ers"), done]
    assert 7 not in relay.replies

    relay.frames.clear()
    relay.replies[8] = 6
    whole = {"type": "done", "message_id": 8, "content": "Otters"}
    await relay.chat_frame({"frame": whole})
    assert relay.frames == [whole]  # nothing missed: no extra delta
    relay.frames.clear()
    await relay.chat_frame({"frame": {"type": "done", "message_id": 9, "content": "Otters"}})
    assert [frame["type"] for frame in relay.frames] == ["done"]  # a reply this socket never showed

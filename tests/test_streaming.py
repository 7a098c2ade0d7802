"""streaming.Generation driven by a scripted upstream (an async generator of Chunks) instead of a model server.

No HTTP and no websocket: the frames are read from the conversation's channel-layer group, the
saved reply from the database. Each test takes milliseconds.
"""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from conversations import realtime, selectors, services, streaming
from conversations.llm import Chunk, UpstreamError, Usage
from conversations.models import Message
from conversations.services.replies import ReplyPlan

pytestmark = pytest.mark.django_db(transaction=True)

FOREVER = object()  # a model that goes quiet until it is stopped


def scripted(*steps):
    """An upstream that yields these steps in order: a Chunk is sent, a number is a pause in seconds,
    FOREVER waits until the reply is stopped, an exception is raised."""

    async def upstream(plan: ReplyPlan):
        for step in steps:
            if isinstance(step, Chunk):
                yield step
            elif isinstance(step, int | float):
                await asyncio.sleep(step)
            elif step is FOREVER:
                await asyncio.get_running_loop().create_future()
            else:
                raise step

    return upstream


def text(*pieces: str, pause: float = 0.0) -> list:
    steps = []
    for piece in pieces:
        steps += [Chunk(piece), pause] if pause else [Chunk(piece)]
    return steps


@pytest.fixture
def plan(user, conversation) -> ReplyPlan:
    Message.objects.create(conversation=conversation, role=Message.Role.USER, content="Tell me.", author=user)
    reply = Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING)
    return ReplyPlan(
        conversation_id=conversation.id,
        reply_id=reply.id,
        spec=selectors.providers.DEMO_SPEC,
        history=[{"role": "user", "content": "Tell me."}],
        user="u-test",
    )


class Watcher:
    """A channel in the conversation's group, as a socket's would be: the frames the generation sends."""

    def __init__(self, conversation_id):
        self.conversation_id = conversation_id
        self.layer = get_channel_layer()
        self.frames: list[dict] = []

    async def join(self) -> "Watcher":
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(realtime.conversation_group(self.conversation_id), self.channel)
        return self

    async def until(self, kind: str, timeout: float = 5.0) -> dict:
        while True:
            message = await asyncio.wait_for(self.layer.receive(self.channel), timeout)
            if message["type"] == realtime.FRAME:
                self.frames.append(message["frame"])
                if message["frame"]["type"] == kind:
                    return message["frame"]

    def streamed_text(self) -> str:
        """The deltas joined, checking each starts where the last ended."""
        streamed = ""
        for frame in self.frames:
            if frame["type"] == "delta":
                assert frame["offset"] == len(streamed), "a gap or a repeat"
                streamed += frame["content"]
        return streamed


async def start(plan: ReplyPlan, *steps) -> tuple[streaming.Generation, Watcher]:
    watcher = await Watcher(plan.conversation_id).join()
    generation = streaming.Generation(plan, upstream=scripted(*steps))
    await streaming.control.listen()
    await streaming.control.attach(generation, streaming.control.expect(plan.conversation_id))
    generation.start()
    return generation, watcher


@sync_to_async
def saved(plan: ReplyPlan) -> Message:
    return Message.objects.get(pk=plan.reply_id)


async def test_the_reply_streams_in_order_and_is_saved_complete(plan):
    generation, watcher = await start(
        plan, *text("Otters ", "hold ", "hands ", "while ", "they ", "sleep.", pause=0.005),
        Chunk(finish_reason="stop", usage=Usage(12, 6), model="scripted-1"),
    )
    done = await watcher.until("done")
    await generation.task

    assert watcher.streamed_text() == "Otters hold hands while they sleep."
    assert (done["status"], done["content"], done["finish_reason"]) == ("complete", "Otters hold hands while they sleep.", "stop")
    assert done["usage"] == {"prompt_tokens": 12, "completion_tokens": 6}
    assert (done["note"], done["error"]) == ("", "")
    reply = await saved(plan)
    assert (reply.status, reply.content, reply.model_name, reply.completion_tokens) == (
        "complete", "Otters hold hands while they sleep.", "scripted-1", 6
    )
    assert reply.html == done["html"] == "<p>Otters hold hands while they sleep.</p>\n"


async def test_deltas_are_coalesced_not_one_per_chunk(plan, settings):
    settings.CHAT_FLUSH_INTERVAL = 0.05
    pieces = [f"{n} " for n in range(100)]
    generation, watcher = await start(plan, *text(*pieces, pause=0.002))
    await watcher.until("done")
    await generation.task

    deltas = [frame for frame in watcher.frames if frame["type"] == "delta"]
    assert watcher.streamed_text() == "".join(pieces)
    assert len(deltas) < len(pieces) / 3, f"{len(deltas)} deltas for {len(pieces)} chunks"


async def test_a_reply_a_crowd_watches_sends_fewer_larger_frames(plan, settings):
    settings.CHAT_FLUSH_INTERVAL, settings.CHAT_MAX_FRAMES_PER_SECOND = 0.01, 100
    realtime.set_watchers(plan.conversation_id, 30)  # as presence counts them: 30 frames per delta
    try:
        assert streaming.flush_interval(plan.conversation_id) == pytest.approx(0.3)
        pieces = [f"{n} " for n in range(40)]
        generation, watcher = await start(plan, *text(*pieces, pause=0.01))
        await watcher.until("done")
        await generation.task
    finally:
        realtime.set_watchers(plan.conversation_id, 0)

    deltas = [frame for frame in watcher.frames if frame["type"] == "delta"]
    assert watcher.streamed_text() == "".join(pieces)
    assert len(deltas) <= 4, f"{len(deltas)} deltas in about 0.4 s, one per 0.3 s expected"
    assert streaming.flush_interval(plan.conversation_id) == pytest.approx(0.01)  # nobody watching: the setting


async def test_the_end_of_a_reply_does_not_wait_out_the_frame_interval(plan, settings):
    settings.CHAT_FLUSH_INTERVAL = 2.0  # as if a crowd of replies streamed: a frame every 2 s
    generation, watcher = await start(plan, *text("Otters ", "sleep."), 0.2, *text(" Holding hands."))
    await watcher.until("delta")
    first_at = time.monotonic()
    done = await watcher.until("done")
    await generation.task

    assert done["content"] == watcher.streamed_text() == "Otters sleep. Holding hands."
    assert time.monotonic() - first_at < 1.0, "the last text and done waited for the next frame's time"


async def test_stop_keeps_the_partial_text(plan):
    generation, watcher = await start(plan, *text("Half an ", "answer"), FOREVER)
    while watcher.streamed_text() != "Half an answer":
        await watcher.until("delta")
    stopped_at = time.monotonic()
    await realtime.request_stop(plan.conversation_id)
    done = await watcher.until("done")
    await generation.task

    assert time.monotonic() - stopped_at < 0.5
    assert (done["status"], done["content"], done["error"]) == ("stopped", "Half an answer", "")
    reply = await saved(plan)
    assert (reply.status, reply.content) == ("stopped", "Half an answer")


async def test_checkpoints_save_many_chunks_a_few_times(plan, settings, checkpoints):
    settings.CHAT_CHECKPOINT_INTERVAL = 0.1
    pieces = [f"w{n} " for n in range(150)]
    started = time.monotonic()
    generation, watcher = await start(plan, *text(*pieces, pause=0.004))
    await watcher.until("done")
    await generation.task
    took = time.monotonic() - started

    final = "".join(pieces)
    assert 2 <= len(checkpoints) <= took / 0.1 + 1, f"{len(checkpoints)} checkpoints in {took:.2f} s"
    saved_texts = [batch[plan.reply_id] for batch in checkpoints]
    assert all(final.startswith(saved_text) for saved_text in saved_texts)
    assert saved_texts == sorted(saved_texts, key=len), "a checkpoint went backwards"
    assert (await saved(plan)).content == final


async def test_a_snapshot_is_the_text_sent_so_far(plan):
    generation, watcher = await start(plan, *text("First part. "), FOREVER)
    await watcher.until("delta")
    layer = get_channel_layer()
    joiner = await layer.new_channel()
    await realtime.request_snapshot(plan.conversation_id, joiner)
    snapshot = await asyncio.wait_for(layer.receive(joiner), 5)
    assert snapshot == {"type": realtime.SNAPSHOT, "message_id": plan.reply_id, "content": "First part. "}
    await realtime.request_stop(plan.conversation_id)
    await generation.task


async def test_an_upstream_error_keeps_the_text_and_says_why(plan):
    refusal = UpstreamError("rate_limited", "The model server is rate limiting requests (429).", status=429)
    generation, watcher = await start(plan, *text("Before the ", "error"), refusal)
    done = await watcher.until("done")
    error = await watcher.until("error")
    await generation.task

    assert (done["status"], done["content"]) == ("error", "Before the error")
    assert done["error"] == done["note"] == refusal.message
    assert done["note_class"] == "message-error"
    assert (error["code"], error["message_id"]) == ("rate_limited", plan.reply_id)
    reply = await saved(plan)
    assert (reply.status, reply.content, reply.error) == ("error", "Before the error", refusal.message)


async def test_a_bug_while_streaming_ends_the_reply_as_an_internal_error(plan):
    generation, watcher = await start(plan, Chunk("Some "), RuntimeError("a bug"))
    done = await watcher.until("done")
    error = await watcher.until("error")
    await generation.task

    assert (done["status"], done["content"]) == ("error", "Some ")
    assert error["code"] == "internal"
    assert (await saved(plan)).status == "error"


async def test_a_reply_cancelled_without_stop_is_saved_as_interrupted(plan):
    generation, watcher = await start(plan, Chunk("Cut "), FOREVER)
    await watcher.until("delta")
    generation.task.cancel()  # what a shutting-down process does to its tasks
    done = await watcher.until("done")
    await asyncio.gather(generation.task, return_exceptions=True)

    assert (done["status"], done["content"]) == ("error", "Cut ")
    assert done["error"] == services.replies.INTERRUPTED
    assert (await saved(plan)).status == "error"


@pytest.mark.parametrize(
    "finish_reason, note",
    [
        ("length", "Cut off: the reply reached its length limit."),
        ("content_filter", "Cut off by the provider's content filter."),
        ("stop", ""),
    ],
)
async def test_why_a_reply_was_cut_off_is_worded_by_the_server(plan, finish_reason, note):
    generation, watcher = await start(plan, Chunk("Short"), Chunk(finish_reason=finish_reason))
    done = await watcher.until("done")
    await generation.task

    assert (done["finish_reason"], done["note"], done["note_class"]) == (finish_reason, note, "message-note")
    reply = await saved(plan)
    payload = await sync_to_async(selectors.conversations.message_payload)(reply)
    assert (payload["note"], payload["note_class"]) == (note, "message-note")  # a reconnecting page's `message` frame

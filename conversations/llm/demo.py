"""The offline demo model: an OpenAI-compatible endpoint served by the app itself.

With no provider configured, replies come from here, through the very same
client, SSE parser, consumer and storage as a real model. The shared client
routes http://demo.invalid/v1 to `DemoTransport` in-process (the reserved
.invalid name never reaches the network); the site also serves the same
stream over HTTP at /demo/v1/ (see views.demo_chat_completions).
"""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable

import httpx

from .phrases import gettext_noop

BASE_URL = "http://demo.invalid"
MODEL = "demo"
SPLIT_WORDS = re.compile(r"\s*\S+|\s+")

# Translated by the app (ClientOptions.translate): the demo answers in the language of the person it answers.
REPLY = gettext_noop("""**Demo model** (offline): no API key is configured, so this reply is canned, \
but it streams through the same client, websocket and storage as a real model's.

You wrote:

> {quote}

To talk to a real model, either

1. set `OPENAI_API_KEY` (and, for another server, `OPENAI_BASE_URL` and `OPENAI_MODEL`) and run `make run` again, or
2. add a provider and a model in the [admin](/admin/).

Replies are rendered as Markdown, with code highlighted:

```python
def greet(name: str) -> str:
    return f"Hello, {{name}}!"
```

| Feature | Status |
| --- | --- |
| Streaming | works |
| Stop | works |
""")


def reply_text(body: dict, reply: str = REPLY) -> str:
    """The canned reply to a request body: deterministic, quoting the last thing the person said.

    `reply` is REPLY, or its translation: a format string with {quote}."""
    if "messages" in body:
        said = next((m.get("content", "") for m in reversed(body["messages"]) if m.get("role") == "user"), "")
    else:
        said = str(body.get("prompt", "")).rsplit("User:", 1)[-1].removesuffix("Assistant:").strip()
    said = " ".join(str(said).split())
    quote = (said[:280] + "…") if len(said) > 280 else said
    return reply.format(quote=quote or "…")


def reply_pieces(body: dict, reply: str = REPLY) -> list[str]:
    return SPLIT_WORDS.findall(reply_text(body, reply))


def _event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def event_stream(body: dict, delay: float, reply: str = REPLY) -> AsyncIterator[bytes]:
    """The reply as Server-Sent Events, one word every `delay` seconds, like the real API."""
    chat = "messages" in body
    created = int(time.time())
    base = {"id": "demo-1", "object": "chat.completion.chunk" if chat else "text_completion", "created": created}
    base["model"] = MODEL
    pieces = reply_pieces(body, reply)
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", [])) or len(
        str(body.get("prompt", "")).split()
    )
    if chat:
        yield _event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    for piece in pieces:
        await asyncio.sleep(delay)
        choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
        yield _event({**base, "choices": [{**choice, "finish_reason": None}]})
    final = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
    yield _event({**base, "choices": [{**final, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces), "total_tokens": prompt_tokens + len(pieces)}
    yield _event({**base, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def models_list() -> dict:
    return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "chatsite"}]}


class _Stream(httpx.AsyncByteStream):
    def __init__(self, source: AsyncIterator[bytes]):
        self._source = source

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for data in self._source:
            yield data

    async def aclose(self) -> None:
        await self._source.aclose()


class DemoTransport(httpx.AsyncBaseTransport):
    """Answers requests to the demo base URL in-process, with the same bytes the HTTP endpoint sends."""

    def __init__(self, delay: float = 0.03, translate: Callable[[str], str] = str):
        self.delay = delay
        self.translate = translate  # called at request time, in the context (language) of the caller

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path.endswith("/models"):
            return httpx.Response(200, json=models_list())
        if request.method != "POST" or not path.endswith(("/chat/completions", "/completions")):
            return httpx.Response(404, json={"error": {"message": f"No such endpoint: {path}"}})
        try:
            body = json.loads(await request.aread())
        except ValueError:
            return httpx.Response(400, json={"error": {"message": "The body is not JSON."}})
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_Stream(event_stream(body, self.delay, self.translate(REPLY))),
        )

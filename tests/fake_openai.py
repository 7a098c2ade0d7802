"""A real HTTP server on 127.0.0.1 that speaks the OpenAI streaming format and misbehaves on demand.

Tests push scripts; each request takes the next one (or the default reply):

    server.push(reply("Hello there", delay=0.01))
    server.push(error(429, "Slow down", headers={"retry-after": "2"}))
    server.push(Script([chunk("Hel"), chunk("lo"), DROP]))
    server.push(answer(b"<html>…</html>", content_type="text/html"))  # a 200 that is no stream

Steps of a Script: bytes (sent as one HTTP chunk), float (sleep that many
seconds), DROP (close the connection without ending the body), or a callable
taking the request body and returning bytes. Responses use chunked transfer
encoding, as the real API does, so a drop is visible to the client.

Also a standalone pacing server for the benchmark:
    python -m tests.fake_openai --port 8765 --chunks 200 --rate 50
"""

import argparse
import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field

DROP = object()


@dataclass
class Script:
    steps: list
    status: int = 200
    headers: dict = field(default_factory=lambda: {"content-type": "text/event-stream"})


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict
    body: dict | None
    at: float = 0.0  # time.monotonic() when the request had arrived whole


def sse(payload) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def chunk(text: str | None = None, *, finish_reason=None, model="fake-model", role=None, completion=False) -> bytes:
    """One chat.completion.chunk (or text_completion chunk) event."""
    if completion:
        choice = {"index": 0, "text": text or "", "finish_reason": finish_reason}
        return sse({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": model, "choices": [choice]})
    delta = {}
    if role:
        delta["role"] = role
    if text is not None:
        delta["content"] = text
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [choice]})


def usage_chunk(prompt_tokens: int, completion_tokens: int, model="fake-model") -> bytes:
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    usage["total_tokens"] = prompt_tokens + completion_tokens
    return sse(
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage}
    )


DONE = b"data: [DONE]\n\n"


def reply(
    pieces,
    *,
    delay: float = 0.0,
    finish_reason: str = "stop",
    usage: tuple[int, int] | None = (5, 7),
    done: bool = True,
    model: str = "fake-model",
    completion: bool = False,
) -> Script:
    """A well-behaved streamed reply. `pieces` is a string (split into words) or a list of strings."""
    if isinstance(pieces, str):
        pieces = [word + " " for word in pieces.split(" ")]
        pieces[-1] = pieces[-1].rstrip(" ")
    steps: list = [] if completion else [chunk("", role="assistant", model=model)]
    for piece in pieces:
        if delay:
            steps.append(delay)
        steps.append(chunk(piece, model=model, completion=completion))
    steps.append(chunk(None, finish_reason=finish_reason, model=model, completion=completion))
    if usage:
        steps.append(usage_chunk(*usage, model=model))
    if done:
        steps.append(DONE)
    return Script(steps)


def error(status: int, message: str, *, type: str = "invalid_request_error", code=None, headers=None) -> Script:
    body = json.dumps({"error": {"message": message, "type": type, "param": None, "code": code}}).encode()
    return Script([body], status=status, headers={"content-type": "application/json", **(headers or {})})


def answer(body: bytes, *, content_type: str | None = "text/plain", status: int = 200) -> Script:
    """A response whose body is `body` as it is (a gateway's HTML page, say), with no Content-Type when None."""
    return Script([body] if body else [], status=status, headers={"content-type": content_type} if content_type else {})


def _default_script(body: dict | None) -> Script:
    completion = bool(body) and "prompt" in body
    return reply("Hello from the fake model.", completion=completion)


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


DEFAULT_MODEL_IDS = ["fake-model"]


class FakeOpenAI:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, default=_default_script, log_requests: bool = False):
        self.host, self.port = host, port
        self.log_requests = log_requests
        self.default = default
        self.scripts: deque[Script] = deque()
        self.model_ids = list(DEFAULT_MODEL_IDS)  # what GET …/models lists
        self.models_scripts: deque[Script] = deque()  # scripted answers to GET …/models (an error, say)
        self.requests: list[RecordedRequest] = []
        self.open_streams = 0
        self.closed_early = 0  # responses whose client went away before the end
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def push(self, *scripts: Script) -> None:
        self.scripts.extend(scripts)

    def push_models(self, *scripts: Script) -> None:
        self.models_scripts.extend(scripts)

    def reset(self) -> None:
        self.scripts.clear()
        self.model_ids = list(DEFAULT_MODEL_IDS)
        self.models_scripts.clear()
        self.requests.clear()
        self.closed_early = 0

    # --- running in a background thread (tests) --------------------------------

    def start(self) -> "FakeOpenAI":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            # Handlers still sleeping mid-script would be destroyed pending; end them first.
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        await self._start()
        async with self._server:
            await self._server.serve_forever()

    # --- HTTP ------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one_request(self, reader, writer) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(method, path, headers, body, time.monotonic()))
        if self.log_requests:
            shown = {name: value for name, value in headers.items() if name not in ("authorization", "api-key")}
            shown["authorization"] = "Bearer …" if "authorization" in headers else None
            if "api-key" in headers:
                shown["api-key"] = "…"  # Azure's
            print(json.dumps({"method": method, "path": path, "headers": shown, "body": body}), flush=True)
        if method == "GET" and path.split("?")[0].endswith("/models"):  # Azure's carries ?api-version=
            script = self.models_scripts.popleft() if self.models_scripts else self._model_list()
        else:
            script = self.scripts.popleft() if self.scripts else self.default(body)
        return await self._respond(script, body, writer)

    def _model_list(self) -> Script:
        data = [{"id": model_id, "object": "model", "owned_by": "fake"} for model_id in self.model_ids]
        return Script([json.dumps({"object": "list", "data": data}).encode()], headers={"content-type": "application/json"})

    async def _respond(self, script: Script, body, writer: asyncio.StreamWriter) -> bool:
        head = [f"HTTP/1.1 {script.status} {REASONS.get(script.status, 'Status')}", "transfer-encoding: chunked"]
        head += [f"{name}: {value}" for name, value in script.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        self.open_streams += 1
        try:
            for step in script.steps:
                if step is DROP:
                    writer.transport.abort()
                    return False
                if isinstance(step, (int, float)):
                    await writer.drain()
                    await asyncio.sleep(step)
                    continue
                data = step(body) if callable(step) else step
                if data:
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except ConnectionError:
            self.closed_early += 1
            return False
        finally:
            self.open_streams -= 1


def paced_reply(chunks: int, rate: float, word: str = "word ") -> Script:
    """`chunks` pieces at `rate` per second: the benchmark's stand-in for a model."""
    steps: list = [chunk("", role="assistant")]
    interval = 1.0 / rate
    for _ in range(chunks):
        steps += [interval, chunk(word)]
    steps += [chunk(None, finish_reason="stop"), usage_chunk(10, chunks), DONE]
    return Script(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="chunks per second")
    parser.add_argument("--log-requests", action="store_true", help="print each request (key masked) as JSON")
    args = parser.parse_args()
    script = paced_reply(args.chunks, args.rate)
    server = FakeOpenAI(args.host, args.port, default=lambda body: script, log_requests=args.log_requests)
    started = time.time()
    print(f"fake OpenAI server on {server.base_url}: {args.chunks} chunks at {args.rate}/s", flush=True)
    try:
        asyncio.run(server.serve_forever())
    except KeyboardInterrupt:
        print(f"served {len(server.requests)} requests in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()

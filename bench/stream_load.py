"""Streaming load benchmark: many websockets against ONE daphne process, compared with the model server read directly.

What runs (everything on 127.0.0.1, in a fresh temporary directory):

* the fake upstream, `python -m tests.fake_openai --chunks N --rate R`: every
  request gets N chunks ("word ") at R chunks per second;
* a fresh database (SQLite file in the temp dir, or PostgreSQL database
  `chatsite_bench`, dropped and re-created), migrated with
  OPENAI_API_KEY/OPENAI_BASE_URL/OPENAI_MODEL pointing at the fake upstream so
  the default model is the fake one; then one user, one conversation and one
  session per reply (bulk-created in a helper process, no password hashing);
* ONE daphne process (`daphne chatsite.asgi:application`) with the in-memory
  channel layer, or Redis with `--redis` (a per-run CHANNELS_PREFIX).
  (`run_scenario(processes=2)`, used by bench/scale_load.py, starts two on the
  same database and Redis; `late_delay` adds one person who sends during the burst.)

Each scenario gets its own upstream, database and daphne, all stopped at the
end (also on Ctrl-C or SIGTERM). One warm-up reply goes through daphne
before anything is measured (`--no-warmup` skips it).

What is measured, per scenario:

1. Direct baseline ("the server's own time"): N concurrent streaming
   requests straight to the fake upstream, same process, same run, just
   before the websocket part; per request the time to the first content
   chunk and to the end of the body. By default they are read with bare
   asyncio streams: httpx.AsyncClient (`--direct-client httpx`) spends
   ~150-280 us of CPU per chunk in h11/anyio, enough to slow the reading
   down and inflate "the server's own time" (its CPU per chunk is printed).
2. Websockets: N sockets are opened (in batches, so daphne's accept backlog
   does not overflow) and left idle for a moment; then all N send
   `{"type": "send"}` at once. Per socket: the send time, the first `delta`,
   the `done` (its status), the number of delta frames, whether offsets are
   contiguous (no gap, no repeat), whether the concatenated deltas equal
   `done.content` and the text the upstream sent, and `error` frames.
3. CPU of the daphne process (utime+stime of all its threads, from
   /proc/<pid>/stat) from just before the first send to just after the last
   `done`; its peak RSS (VmHWM). Also, for context, the CPU of the fake
   upstream and of this client in the same window, and how busy the whole
   machine was (from /proc/stat): every process shares the same cores, so
   "other processes' CPU" (PostgreSQL, Redis, unrelated jobs) inflates the
   latencies; it is printed, with a note when it is large. CPU of
   PostgreSQL or Redis is not included in daphne's figure.

Derived figures (`--suite` runs the standard set and computes them):

  (a) 200 replies x 200 chunks at 50/s   latency and CPU per relayed chunk
  (b) 200 replies x 1 chunk              CPU per send  = CPU(b) / N
  (c) 1000 replies x 200 chunks at 50/s  completes with no error

  CPU per chunk = (CPU(a) - N x CPU per send) / (N x chunks)

Targets checked (from the issue, for a 2-core machine): p99 first delta
<= 1 s after the send; each reply done within 1.15 x the server's own time
(checked as max(send->done) <= 1.15 x median direct duration, and as
p99(send->done) <= 1.15 x p99 direct duration); CPU <= 30 us per relayed
chunk and <= 5 ms per send; the 1000 run: every reply `done` with status
`complete` and no error frame. A single (non-suite) run checks what it can:
latency and errors, and the naive CPU per chunk (run CPU / chunks, an upper
bound since it includes the per-send cost).

Run from the repository root:

    .venv/bin/python bench/stream_load.py --replies 20 --chunks 50 --rate 50
    .venv/bin/python bench/stream_load.py --suite [--database postgres] [--redis] --json out.json

The exit status is 0 when every checked target passes, 1 when one fails, 2 on
a set-up error. Application settings are not tuned: CHAT_* variables in the
environment are passed through to daphne unchanged (and printed), DEBUG is off.
"""

import argparse
import asyncio
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
# The server as `make run` starts it: daphne through chatsite.server (uvloop where available).
# BENCH_DAPHNE=<executable> runs another command with daphne's arguments (e.g. a profiler wrapper).
DAPHNE = [os.environ["BENCH_DAPHNE"]] if os.environ.get("BENCH_DAPHNE") else [PYTHON, "-m", "chatsite.server"]

SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ"
API_KEY = "sk-bench"
MODEL = "fake-model"
WORD = "word "  # what tests.fake_openai.paced_reply sends as each chunk
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/chatsite_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ACCESS_LOG = re.compile(r'^\S+:\d+ - - \[[^]]+\] "')

TARGET_FIRST_DELTA_S = 1.0
TARGET_DONE_RATIO = 1.15
TARGET_CPU_PER_CHUNK_US = 30.0
TARGET_CPU_PER_SEND_MS = 5.0

# Runs in a child process with the benchmark's environment: N users, a conversation and a session each.
USERS_HELPER = r"""
import json, sys
from datetime import timedelta
import django
django.setup()
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import get_random_string
from conversations.models import Conversation
from conversations.selectors.providers import default_model_config

count, out = int(sys.argv[1]), sys.argv[2]
User = get_user_model()
# The backend a password login records (the first in the list, axes', only checks lockouts and
# cannot get_user, so a session naming it fails at the handshake).
backend = "django.contrib.auth.backends.ModelBackend"
tag = get_random_string(6, "abcdefghijklmnopqrstuvwxyz")
store = SessionStore()
expire = timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE)
with transaction.atomic():
    # make_password(None): an unusable password, so nothing is hashed.
    users = User.objects.bulk_create(
        [User(username=f"bench-{tag}-{i}", password=make_password(None)) for i in range(count)]
    )
    # As conversation_create does: a conversation starts with the default model.
    model = default_model_config()
    conversations = Conversation.objects.bulk_create(
        [Conversation(owner=user, title="bench", model_config=model) for user in users]
    )
    sessions = [
        Session(
            session_key=get_random_string(32, VALID_KEY_CHARS),
            session_data=store.encode(
                {SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: backend, HASH_SESSION_KEY: user.get_session_auth_hash()}
            ),
            expire_date=expire,
        )
        for user in users
    ]
    Session.objects.bulk_create(sessions)
with open(out, "w") as handle:
    json.dump([{"conversation_id": str(c.id), "sessionid": s.session_key} for c, s in zip(conversations, sessions)], handle)
"""


class SetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Scenario:
    key: str
    replies: int
    chunks: int
    rate: float

    @property
    def label(self) -> str:
        return f"{self.key}: {self.replies}x{self.chunks}@{self.rate:g}"


# --- processes and /proc ---------------------------------------------------------


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _child_limits() -> None:
    """preexec_fn: the children get the same (raised) open-file limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def proc_cpu(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int) -> dict:
    values = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            values[name] = value.strip()
    return values


def proc_kib(pid: int, field: str) -> int:
    return int(proc_status(pid).get(field, "0 kB").split()[0])


INFRA_COMMANDS = ("postgres", "redis-server")


def infra_cpu() -> dict[int, float]:
    """CPU so far of every PostgreSQL and Redis server process on the machine, by pid."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as handle:
                if handle.read().strip() not in INFRA_COMMANDS:
                    continue
            found[int(entry.name)] = proc_cpu(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


class Processes:
    """Subprocesses of one scenario; always stopped (terminate, then kill) by `stop_all`."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, name: str, cmd: list[str], env: dict) -> subprocess.Popen:
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "wb")
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_limits,
                start_new_session=True,  # Ctrl-C reaches only us; we stop the children ourselves
            )
        finally:
            log.close()
        self.procs.append((name, proc, log_path))
        return proc

    def log_tail(self, name: str, lines: int = 30, skip_access_log: bool = False) -> str:
        for proc_name, _, path in self.procs:
            if proc_name == name:
                try:
                    text = path.read_text(errors="replace").splitlines()
                except OSError:
                    return ""
                if skip_access_log:  # daphne's one line per request / websocket event
                    text = [line for line in text if not ACCESS_LOG.match(line)]
                return "\n".join(text[-lines:])
        return ""

    def stop_all(self) -> None:
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for _, proc, _ in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()


def wait_until(check, what: str, proc: subprocess.Popen, procs: Processes, name: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if proc.poll() is not None:
            raise SetupError(f"{what} exited with status {proc.returncode}:\n{procs.log_tail(name)}")
        if time.monotonic() > deadline:
            raise SetupError(f"{what} did not come up within {seconds:g} s:\n{procs.log_tail(name)}")
        time.sleep(0.1)


def run_checked(cmd: list[str], env: dict, what: str, timeout: float = 300) -> None:
    result = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, preexec_fn=_child_limits
    )
    if result.returncode != 0:
        raise SetupError(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def base_env(database_url: str, upstream_url: str, redis_url: str | None, channels_prefix: str) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "DATABASE_URL", "REDIS_URL", "CHANNELS_PREFIX", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_LOG_LEVEL="WARNING",
        DJANGO_DEBUG="0",
        DATABASE_URL=database_url,
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=upstream_url,
        OPENAI_MODEL=MODEL,
        PYTHONUNBUFFERED="1",
        # Every simulated person connects from 127.0.0.1: limits per address are off, and a person's
        # sends are one per reply.
        CHAT_SOCKETS_PER_ADDRESS="0",
        CHAT_CONNECTS_PER_MINUTE="0",
        CHAT_SENDS_PER_MINUTE="0",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
        env["CHANNELS_PREFIX"] = channels_prefix
    return env


def fresh_postgres(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SetupError(f"Refusing the database name {name!r}.")
    command = ["psql", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    command += ["-U", parts.username or "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = parts.password
    for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        result = subprocess.run([*command, "-c", sql], env=env, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise SetupError(f"psql {sql!r} failed: {result.stderr.strip()}")


# --- statistics ------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None, "min": None}
    return {"n": len(values), "min": min(values), "p50": pct(values, 50), "p99": pct(values, 99), "max": max(values)}


# --- the direct baseline -----------------------------------------------------------


class FirstContent:
    """Finds the first SSE event whose delta has non-empty content, in bytes as they arrive."""

    __slots__ = ("buffer", "at")

    def __init__(self):
        self.buffer = b""
        self.at = None

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while self.at is None:
            end = self.buffer.find(b"\n\n")
            if end < 0:
                return
            event, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            start = event.find(b"data: ")  # raw mode: a chunk-size line may come first
            if start < 0 or event[start + 6 :] == b"[DONE]":
                continue
            for choice in json.loads(event[start + 6 :]).get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    self.at = time.perf_counter()
                    self.buffer = b""


async def direct_baseline(upstream_url: str, replies: int, chunks: int, client: str) -> dict:
    """N concurrent streaming requests straight to the fake server: its own time per reply.

    client="raw" reads with bare asyncio streams (a few us per chunk, so the
    figure is the server's); client="httpx" uses httpx.AsyncClient, whose
    per-chunk cost (h11, anyio) is large enough to slow the reading down.
    """
    parts = urlsplit(upstream_url)
    host, port = parts.hostname, parts.port
    path = parts.path.rstrip("/") + "/chat/completions"
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "bench"}], "stream": True,
         "stream_options": {"include_usage": True}}
    ).encode()
    now = time.perf_counter
    results: list[dict] = []

    def record(start: float, first: FirstContent, ok: bool, error: str | None, nbytes: int) -> None:
        results.append(
            {
                "first": None if first.at is None else first.at - start,
                "duration": now() - start,
                "ok": ok,
                "error": error,
                "bytes": nbytes,
            }
        )

    async def one_raw(start: float) -> None:
        first, tail, nbytes, error, ok = FirstContent(), b"", 0, None, False
        writer = None
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
            writer.write(
                (
                    f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                    f"Authorization: Bearer {API_KEY}\r\nAccept: text/event-stream\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                error = f"status {status}"
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    error = error or "connection closed before the end of the body"
                    break
                nbytes += len(data)
                if first.at is None:
                    first.feed(data)
                tail = (tail + data)[-48:]
                if tail.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end; the server keeps the connection
                    ok = error is None and b"data: [DONE]" in tail
                    break
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            if writer is not None:
                writer.close()
        record(start, first, ok, error, nbytes)

    async def one_httpx(http: httpx.AsyncClient, start: float) -> None:
        first, tail, nbytes, error, status = FirstContent(), b"", 0, None, None
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
        try:
            async with http.stream("POST", upstream_url + "/chat/completions", content=body, headers=headers) as response:
                status = response.status_code
                async for data in response.aiter_raw():
                    nbytes += len(data)
                    if first.at is None:
                        first.feed(data)
                    tail = (tail + data)[-32:]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is None and status != 200:
            error = f"status {status}"
        record(start, first, error is None and tail.endswith(b"data: [DONE]\n\n"), error, nbytes)

    cpu_before = time.process_time()
    if client == "httpx":
        limits = httpx.Limits(max_connections=replies + 16, max_keepalive_connections=replies + 16)
        timeout = httpx.Timeout(120.0, connect=30.0, pool=120.0)
        async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as http:
            started = now()
            await asyncio.gather(*(one_httpx(http, started) for _ in range(replies)))
            wall = now() - started
    else:
        started = now()
        await asyncio.gather(*(one_raw(started) for _ in range(replies)))
        wall = now() - started
    client_cpu = time.process_time() - cpu_before
    ok = [r for r in results if r["ok"]]
    return {
        "client": client,
        "requests": replies,
        "ok": len(ok),
        "failed": replies - len(ok),
        "errors": sorted({r["error"] for r in results if r["error"]})[:5],
        "first_chunk": summary([r["first"] for r in ok if r["first"] is not None]),
        "duration": summary([r["duration"] for r in ok]),
        "wall": wall,
        "client_cpu": client_cpu,
        "client_cpu_per_chunk_us": 1e6 * client_cpu / (replies * max(chunks, 1)),
        "bytes_min": min((r["bytes"] for r in ok), default=0),
        "bytes_max": max((r["bytes"] for r in ok), default=0),
    }


# --- the websocket run -------------------------------------------------------------


class Sock:
    __slots__ = (
        "conversation_id", "sessionid", "ws", "t_send", "t_start", "t_first", "t_done", "status", "length",
        "parts", "n_delta", "n_message", "n_start", "bad_offsets", "done_content", "done_error", "errors",
        "pre_send_frames", "close_code", "finished", "reader_done",
    )

    def __init__(self, conversation_id: str, sessionid: str):
        self.conversation_id = conversation_id
        self.sessionid = sessionid
        self.ws = None
        self.t_send = self.t_start = self.t_first = self.t_done = None
        self.status = None
        self.length = 0
        self.parts: list[str] = []
        self.n_delta = self.n_message = self.n_start = self.bad_offsets = self.pre_send_frames = 0
        self.done_content = None
        self.done_error = None
        self.errors: list[str] = []
        self.close_code = None
        self.finished = False
        self.reader_done = False


class Tracker:
    """Counts sockets that finished (got `done`, or closed) and wakes the runner when all did."""

    def __init__(self, expected: int):
        self.expected = expected
        self.count = 0
        self.event = asyncio.Event()
        self.last_at = 0.0
        if expected <= 0:
            self.event.set()

    def finish(self, sock: Sock, at: float) -> None:
        if sock.finished:
            return
        sock.finished = True
        self.count += 1
        self.last_at = at
        if self.count >= self.expected:
            self.event.set()


async def read_frames(sock: Sock, tracker_ref: list) -> None:
    """The socket's only reader. Cheap per frame: json.loads and a few attribute writes."""
    loads, now = json.loads, time.perf_counter
    try:
        async for raw in sock.ws:
            at = now()
            frame = loads(raw)
            kind = frame.get("type")
            if sock.t_send is None:
                sock.pre_send_frames += 1
                if kind == "error":
                    sock.errors.append(str(frame.get("code")))
                continue
            if kind == "delta":
                if sock.t_first is None:
                    sock.t_first = at
                sock.n_delta += 1
                content = frame["content"]
                offset = frame["offset"]
                if offset != sock.length:
                    sock.bad_offsets += 1
                sock.parts.append(content)
                sock.length = offset + len(content)
            elif kind == "done":
                sock.t_done = at
                sock.status = frame.get("status")
                sock.done_content = frame.get("content")
                sock.done_error = frame.get("error")
                tracker_ref[0].finish(sock, at)
            elif kind == "start":
                sock.n_start += 1
                if sock.t_start is None:
                    sock.t_start = at
            elif kind == "message":
                sock.n_message += 1
            elif kind == "error":
                sock.errors.append(str(frame.get("code")))
    except ConnectionClosed as exc:
        sock.close_code = exc.rcvd.code if exc.rcvd else None
    finally:
        sock.reader_done = True
        if sock.ws is not None and sock.close_code is None and sock.t_done is None:
            sock.close_code = getattr(sock.ws, "close_code", None)
        if sock.t_send is not None and tracker_ref[0] is not None:
            tracker_ref[0].finish(sock, time.perf_counter())


async def open_sockets(
    socks: list[Sock], port: int | list[int], concurrency: int, tracker_ref: list
) -> tuple[list, list[str]]:
    """Opens every socket, at most `concurrency` handshakes at once; with several ports they take turns."""
    ports = [port] if isinstance(port, int) else port
    gate = asyncio.Semaphore(concurrency)
    readers: list[asyncio.Task] = []
    failures: list[str] = []

    async def one(index: int, sock: Sock) -> None:
        to = ports[index % len(ports)]
        async with gate:
            try:
                sock.ws = await ws_connect(
                    f"ws://127.0.0.1:{to}/ws/conversations/{sock.conversation_id}/",
                    additional_headers={"Origin": f"http://127.0.0.1:{to}", "Cookie": f"sessionid={sock.sessionid}"},
                    max_size=None,
                    compression=None,
                    open_timeout=60,
                    ping_interval=None,  # no keepalive traffic to skew the numbers
                    close_timeout=5,
                )
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return
            readers.append(asyncio.create_task(read_frames(sock, tracker_ref)))

    await asyncio.gather(*(one(index, sock) for index, sock in enumerate(socks)))
    return readers, failures


async def close_sockets(socks: list[Sock], readers: list[asyncio.Task]) -> None:
    live = [sock.ws for sock in socks if sock.ws is not None]
    if live:
        await asyncio.wait([asyncio.create_task(ws.close()) for ws in live], timeout=15)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


async def send_all(socks: list[Sock], payload: str) -> None:
    now = time.perf_counter

    async def one(sock: Sock) -> None:
        sock.t_send = now()
        try:
            await sock.ws.send(payload)
        except ConnectionClosed:
            pass

    await asyncio.gather(*(one(sock) for sock in socks))


async def warm_up(session: dict, port: int, timeout: float) -> dict:
    """One reply through daphne before measuring: lazy imports, the upstream client, first queries."""
    sock = Sock(session["conversation_id"], session["sessionid"])
    tracker_ref = [Tracker(1)]
    readers, failures = await open_sockets([sock], port, 1, tracker_ref)
    if failures:
        raise SetupError(f"Warm-up socket could not connect: {failures[0]}")
    started = time.perf_counter()
    await send_all([sock], json.dumps({"type": "send", "content": "warm-up"}))
    try:
        await asyncio.wait_for(tracker_ref[0].event.wait(), timeout)
    except TimeoutError:
        pass
    await close_sockets([sock], readers)
    if sock.status != "complete":
        raise SetupError(
            f"Warm-up reply did not complete (status {sock.status!r}, errors {sock.errors}, "
            f"close code {sock.close_code}, done.error {sock.done_error!r})"
        )
    return {"seconds": time.perf_counter() - started}


async def websocket_run(
    sessions: list[dict],
    scenario: Scenario,
    port: int | list[int],
    pids: dict,
    concurrency: int,
    timeout: float,
    late: dict | None = None,
    late_delay: float = 1.0,
) -> dict:
    """The burst: every socket sends at once. With several ports the sockets alternate between them
    (pids named daphne* are the servers, their CPU summed). `late`: one more person's session, whose
    socket sends `late_delay` seconds after the burst's sends (fairness), measured apart."""
    socks = [Sock(s["conversation_id"], s["sessionid"]) for s in sessions]
    daphnes = [pid for name, pid in pids.items() if name.startswith("daphne")]
    tracker_ref: list = [None]

    cpu0 = sum(proc_cpu(pid) for pid in daphnes)
    t0 = time.perf_counter()
    readers, connect_failures = await open_sockets(socks, port, concurrency, tracker_ref)
    connect_wall = time.perf_counter() - t0
    connect_cpu = sum(proc_cpu(pid) for pid in daphnes) - cpu0
    socks = [sock for sock in socks if sock.ws is not None]
    late_sock, late_ref, late_readers, late_failures = None, [Tracker(0 if late is None else 1)], [], []
    if late is not None:
        late_sock = Sock(late["conversation_id"], late["sessionid"])
        late_readers, late_failures = await open_sockets([late_sock], port, 1, late_ref)
    await asyncio.sleep(0.5)  # idle: drain anything sent on connect
    closed_before_send = [sock for sock in socks if sock.reader_done]
    open_before_send = len(socks) - len(closed_before_send)

    tracker = Tracker(open_before_send)
    tracker_ref[0] = tracker
    payload = json.dumps({"type": "send", "content": "Benchmark: please stream your reply."})

    before = {name: proc_cpu(pid) for name, pid in pids.items()}
    infra_before = infra_cpu()
    machine_before = machine_ticks()
    client_before = time.process_time()
    t_send0 = time.perf_counter()
    await send_all([sock for sock in socks if not sock.reader_done], payload)
    send_spread = time.perf_counter() - t_send0
    if late_sock is not None and late_sock.ws is not None:
        await asyncio.sleep(late_delay)
        await send_all([late_sock], payload)
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(tracker.event.wait(), late_ref[0].event.wait()), timeout)
    except TimeoutError:
        timed_out = True
    after = {name: proc_cpu(pid) for name, pid in pids.items()}
    infra_after = infra_cpu()
    machine_after = machine_ticks()
    client_cpu = time.process_time() - client_before
    run_wall = (tracker.last_at or time.perf_counter()) - t_send0

    await asyncio.sleep(0.3)  # an `error` frame follows a failed reply's `done`
    threads = sum(int(proc_status(pid).get("Threads", "0")) for pid in daphnes)
    hwm_kib = max(proc_kib(pid, "VmHWM") for pid in daphnes)
    rss_kib = max(proc_kib(pid, "VmRSS") for pid in daphnes)
    await close_sockets(socks, readers)
    if late_sock is not None:
        await close_sockets([late_sock], late_readers)

    expected_text = WORD * scenario.chunks
    done = [s for s in socks if s.t_done is not None]
    first = [s.t_first - s.t_send for s in socks if s.t_first is not None]
    to_start = [s.t_start - s.t_send for s in socks if s.t_start is not None]
    to_done = [s.t_done - s.t_send for s in done]
    statuses: dict[str, int] = {}
    for sock in socks:
        key = sock.status or ("closed" if sock.close_code is not None else "no done")
        statuses[key] = statuses.get(key, 0) + 1
    error_codes: dict[str, int] = {}
    for sock in socks:
        for code in sock.errors:
            error_codes[code] = error_codes.get(code, 0) + 1
    texts_joined = ["".join(s.parts) for s in done]
    cpu = {name: after[name] - before[name] for name in pids}
    daphne_cpu = sum(value for name, value in cpu.items() if name.startswith("daphne"))
    busy = machine_after[0] - machine_before[0]
    total = machine_after[1] - machine_before[1]
    n_delta = [s.n_delta for s in done]
    avg_frames = sum(n_delta) / len(n_delta) if n_delta else 0.0
    relayed_chunks = len(done) * scenario.chunks
    return {
        "sockets": len(sessions),
        "connected": len(socks),
        "connect_failures": len(connect_failures),
        "connect_failure_samples": connect_failures[:3],
        "open_before_send": open_before_send,
        "connect_wall_s": connect_wall,
        "connect_cpu_s": connect_cpu,
        "send_spread_s": send_spread,
        "timed_out": timed_out,
        "done": len(done),
        "complete": statuses.get("complete", 0),
        "statuses": statuses,
        "error_frames": sum(len(s.errors) for s in socks),
        "error_codes": error_codes,
        "closed_early": sum(1 for s in socks if s.t_done is None and s.close_code is not None),
        "close_codes": sorted({s.close_code for s in socks if s.t_done is None and s.close_code is not None}),
        "pre_send_frames": sum(s.pre_send_frames for s in socks),
        "offset_errors": sum(s.bad_offsets for s in socks),
        "text_mismatch_done": sum(1 for s, text in zip(done, texts_joined, strict=True) if text != s.done_content),
        "text_mismatch_upstream": sum(1 for s in done if s.done_content != expected_text),
        "extra_frames": sum(1 for s in socks if s.n_start > 1 or s.n_message > 1),
        "no_first_delta": sum(1 for s in socks if s.t_first is None),
        "first_delta": summary(first),
        "send_to_start": summary(to_start),
        "send_to_done": summary(to_done),
        "run_wall_s": run_wall,
        "delta_frames_avg": avg_frames,
        "delta_frames_max": max(n_delta, default=0),
        "chunks_per_frame": (scenario.chunks / avg_frames) if avg_frames else None,
        "daphne_cpu_s": daphne_cpu,
        "daphne_cpu_each_s": [value for name, value in cpu.items() if name.startswith("daphne")],
        # PostgreSQL's and Redis's server processes (all of them on the machine: other jobs' too; a
        # backend that exited during the run is missed).
        "infra_cpu_s": sum(value - infra_before.get(pid, 0.0) for pid, value in infra_after.items()),
        "upstream_cpu_s": cpu["upstream"],
        "client_cpu_s": client_cpu,
        "machine_busy_pct": 100.0 * busy / total if total else None,
        # CPU used by everything else on the machine (other users' jobs, the database server, Redis):
        # it competes for the same cores and so inflates the latencies.
        "other_cpu_s": busy / CLK_TCK - daphne_cpu - cpu["upstream"] - client_cpu,
        "cpu_per_reply_ms": 1000 * daphne_cpu / len(done) if done else None,
        "cpu_per_chunk_naive_us": 1e6 * daphne_cpu / relayed_chunks if relayed_chunks else None,
        "daphne_threads": threads,
        "daphne_vmhwm_mib": hwm_kib / 1024,
        "daphne_vmrss_mib": rss_kib / 1024,
        "late": None if late is None else late_report(late_sock, late_failures, t_send0, expected_text),
    }


def late_report(sock: Sock, failures: list[str], t_burst: float, expected_text: str) -> dict:
    """The one person who sent during the burst, timed from their own send."""
    return {
        "connected": sock.ws is not None,
        "connect_failures": failures[:1],
        "sent_after_burst_s": None if sock.t_send is None else sock.t_send - t_burst,
        "first_delta_s": None if sock.t_first is None or sock.t_send is None else sock.t_first - sock.t_send,
        "done_s": None if sock.t_done is None or sock.t_send is None else sock.t_done - sock.t_send,
        "status": sock.status,
        "error_frames": len(sock.errors),
        "text_exact": sock.t_done is not None and "".join(sock.parts) == sock.done_content == expected_text
        and not sock.bad_offsets,
    }


# --- one scenario end to end ---------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_scenario(
    scenario: Scenario, args, workroot: Path, *, processes: int = 1, late_delay: float | None = None
) -> dict:
    """One scenario end to end. `processes` daphnes share the database and channel layer (the sockets
    alternate between them); `late_delay`: one more socket sends that long after the burst's sends."""
    workdir = workroot / scenario.key
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Processes(workdir)
    result: dict = {"scenario": asdict(scenario), "label": scenario.label, "processes": processes}
    timings: dict = {}
    try:
        # The fake upstream.
        upstream_port = args.upstream_port or free_port()
        upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
        log(f"[{scenario.label}] fake upstream on :{upstream_port}")
        upstream = procs.start(
            "upstream",
            [PYTHON, "-m", "tests.fake_openai", "--port", str(upstream_port), "--chunks", str(scenario.chunks),
             "--rate", str(scenario.rate)],
            dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        wait_until(lambda: listening(upstream_port), "The fake upstream", upstream, procs, "upstream")

        # A fresh database, migrated (which also points the default model at the fake upstream).
        started = time.perf_counter()
        if args.database == "postgres":
            database_url = args.pg_url
            fresh_postgres(database_url)
        else:
            database_url = f"sqlite:///{workdir / 'bench.db'}"
        redis_url = args.redis_url if args.redis else None
        env = base_env(database_url, upstream_url, redis_url, f"chatsite-bench-{os.getpid()}-{scenario.key}")
        log(f"[{scenario.label}] migrating {args.database} database")
        run_checked([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], env, "manage.py migrate")
        timings["migrate_s"] = time.perf_counter() - started

        started = time.perf_counter()
        users_file = workdir / "sessions.json"
        # The burst's sessions, then the late sender's, then one per process for the warm-ups.
        count = scenario.replies + (0 if late_delay is None else 1) + (processes if args.warmup else 0)
        run_checked([PYTHON, "-c", USERS_HELPER, str(count), str(users_file)], env, "creating users")
        sessions = json.loads(users_file.read_text())
        timings["users_s"] = time.perf_counter() - started
        log(f"[{scenario.label}] {len(sessions)} users, conversations and sessions in {timings['users_s']:.1f} s")

        # ONE daphne (or `processes` of them, on consecutive free ports).
        names = ["daphne"] + [f"daphne{i + 1}" for i in range(1, processes)]
        ports = [args.port + i if args.port else free_port() for i in range(processes)]
        daphnes = [
            procs.start(name, [*DAPHNE, "-b", "127.0.0.1", "-p", str(port), "chatsite.asgi:application"], env)
            for name, port in zip(names, ports, strict=True)
        ]

        def healthy(port: int) -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        for name, port, daphne in zip(names, ports, daphnes, strict=True):
            wait_until(lambda port=port: healthy(port), name, daphne, procs, name, seconds=60)
            log(f"[{scenario.label}] {name} pid {daphne.pid} on :{port}")
        result["daphne_pid"] = daphnes[0].pid
        result["daphne_pids"] = [daphne.pid for daphne in daphnes]
        pids = {name: daphne.pid for name, daphne in zip(names, daphnes, strict=True)}
        pids["upstream"] = upstream.pid
        timeout = args.timeout or (3 * scenario.chunks / scenario.rate + 60 + 0.05 * scenario.replies + (late_delay or 0))

        async def measure() -> None:
            log(f"[{scenario.label}] direct baseline: {scenario.replies} concurrent requests to the fake upstream "
                f"({args.direct_client} client)")
            result["direct"] = await direct_baseline(upstream_url, scenario.replies, scenario.chunks, args.direct_client)
            if args.warmup:
                log(f"[{scenario.label}] warm-up reply" + (" on each process" if processes > 1 else ""))
                for i, port in enumerate(ports):
                    result["warmup"] = await warm_up(sessions[-1 - i], port, timeout)
            log(f"[{scenario.label}] websockets: opening {scenario.replies}, then sending all at once"
                + ("" if late_delay is None else f"; one more sends {late_delay:g} s after them"))
            result["ws"] = await websocket_run(
                sessions[: scenario.replies], scenario, ports[0] if processes == 1 else ports, pids,
                args.connect_concurrency, timeout,
                late=None if late_delay is None else sessions[scenario.replies], late_delay=late_delay or 0.0,
            )

        asyncio.run(measure())
        exits = [daphne.returncode for daphne in daphnes if daphne.poll() is not None]
        if exits:
            result["daphne_exit"] = exits[0]
        result["daphne_log_tail"] = "\n".join(
            procs.log_tail(name, 15, skip_access_log=True) for name in names
        )
    finally:
        procs.stop_all()
    result["timings"] = timings
    derive(result)
    return result


def derive(result: dict) -> None:
    ws, direct = result.get("ws"), result.get("direct")
    if not ws or not direct:
        return
    own_p50, own_p99 = direct["duration"]["p50"], direct["duration"]["p99"]
    done = ws["send_to_done"]
    result["ratios"] = {
        "p99_done_over_p99_direct": done["p99"] / own_p99 if done["p99"] and own_p99 else None,
        "max_done_over_p50_direct": done["max"] / own_p50 if done["max"] and own_p50 else None,
        "p50_done_over_p50_direct": done["p50"] / own_p50 if done["p50"] and own_p50 else None,
    }


# --- the report ------------------------------------------------------------------


def fmt(value, spec: str = ".3f", unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{unit}"


def triple(stats: dict, scale: float = 1.0, spec: str = ".3f") -> str:
    values = [stats.get(k) for k in ("p50", "p99", "max")]
    return " / ".join(fmt(None if v is None else v * scale, spec) for v in values)


def table(results: list[dict]) -> str:
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, fn) -> None:
        cells = []
        for result in results:
            try:
                cells.append(fn(result))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("-")
        rows.append((name, cells))

    row("sockets connected / failed", lambda r: f"{r['ws']['connected']} / {r['ws']['connect_failures']}")
    row(
        "done / complete / timed out",
        lambda r: f"{r['ws']['done']} / {r['ws']['complete']} / {'yes' if r['ws']['timed_out'] else 'no'}",
    )
    row("error frames / closed early", lambda r: f"{r['ws']['error_frames']} / {r['ws']['closed_early']}")
    row(
        "offset errors / text mismatches",
        lambda r: f"{r['ws']['offset_errors']} / {r['ws']['text_mismatch_done'] + r['ws']['text_mismatch_upstream']}",
    )
    row("send spread (s)", lambda r: fmt(r["ws"]["send_spread_s"]))
    row("send->start p50/p99/max (s)", lambda r: triple(r["ws"]["send_to_start"]))
    row("first delta p50/p99/max (s)", lambda r: triple(r["ws"]["first_delta"]))
    row("send->done p50/p99/max (s)", lambda r: triple(r["ws"]["send_to_done"]))
    row("direct first chunk p50/p99/max", lambda r: triple(r["direct"]["first_chunk"]))
    row("server's own time p50/p99/max", lambda r: triple(r["direct"]["duration"]))
    row("direct failed", lambda r: str(r["direct"]["failed"]))
    row("p99 done / p99 own", lambda r: fmt(r["ratios"]["p99_done_over_p99_direct"]))
    row("max done / p50 own", lambda r: fmt(r["ratios"]["max_done_over_p50_direct"]))
    row("p50 done / p50 own", lambda r: fmt(r["ratios"]["p50_done_over_p50_direct"]))
    row("daphne CPU in run (s)", lambda r: fmt(r["ws"]["daphne_cpu_s"], ".2f"))
    row("daphne CPU per reply (ms)", lambda r: fmt(r["ws"]["cpu_per_reply_ms"], ".2f"))
    row("daphne CPU / chunk, naive (us)", lambda r: fmt(r["ws"]["cpu_per_chunk_naive_us"], ".1f"))
    row("delta frames per reply avg/max", lambda r: f"{r['ws']['delta_frames_avg']:.1f} / {r['ws']['delta_frames_max']}")
    row("chunks per delta frame", lambda r: fmt(r["ws"]["chunks_per_frame"], ".2f"))
    row("daphne max RSS VmHWM (MiB)", lambda r: fmt(r["ws"]["daphne_vmhwm_mib"], ".1f"))
    row("daphne threads", lambda r: str(r["ws"]["daphne_threads"]))
    row("connect: wall / daphne CPU (s)", lambda r: f"{r['ws']['connect_wall_s']:.2f} / {r['ws']['connect_cpu_s']:.2f}")
    row("upstream CPU / client CPU (s)", lambda r: f"{r['ws']['upstream_cpu_s']:.2f} / {r['ws']['client_cpu_s']:.2f}")
    row("machine busy during run (%)", lambda r: fmt(r["ws"]["machine_busy_pct"], ".0f"))
    row("other processes' CPU in run (s)", lambda r: fmt(r["ws"]["other_cpu_s"], ".2f"))
    row("direct: wall / client CPU (s)", lambda r: f"{r['direct']['wall']:.2f} / {r['direct']['client_cpu']:.2f}")
    row("direct client CPU / chunk (us)", lambda r: f"{r['direct']['client_cpu_per_chunk_us']:.1f} ({r['direct']['client']})")

    headers = ["metric"] + [r["label"] for r in results]
    width0 = max(len(headers[0]), *(len(name) for name, _ in rows))
    widths = [max(len(headers[i + 1]), *(len(cells[i]) for _, cells in rows)) for i in range(len(results))]
    lines = ["  ".join([headers[0].ljust(width0)] + [h.rjust(w) for h, w in zip(headers[1:], widths, strict=True)])]
    lines.append("  ".join(["-" * width0] + ["-" * w for w in widths]))
    for name, cells in rows:
        lines.append("  ".join([name.ljust(width0)] + [c.rjust(w) for c, w in zip(cells, widths, strict=True)]))
    return "\n".join(lines)


def target(name: str, scenario: str, value, limit, ok: bool, detail: str = "") -> dict:
    return {"target": name, "scenario": scenario, "value": value, "limit": limit, "pass": bool(ok), "detail": detail}


def latency_targets(result: dict) -> list[dict]:
    ws, direct, label = result["ws"], result["direct"], result["label"]
    out = []
    p99_first = ws["first_delta"]["p99"]
    missing = ws["no_first_delta"]
    out.append(target(
        "p99 first delta <= 1.0 s after the send", label, p99_first, TARGET_FIRST_DELTA_S,
        p99_first is not None and p99_first <= TARGET_FIRST_DELTA_S and missing <= 0.01 * ws["sockets"],
        f"{fmt(p99_first)} s (max {fmt(ws['first_delta']['max'])} s, {missing} without a delta)",
    ))
    own50, own99 = direct["duration"]["p50"], direct["duration"]["p99"]
    done = ws["send_to_done"]
    all_done = ws["done"] == ws["sockets"]
    limit = None if own50 is None else TARGET_DONE_RATIO * own50
    out.append(target(
        "every reply done <= 1.15 x server's own time (max vs direct p50)", label, done["max"], limit,
        all_done and limit is not None and done["max"] is not None and done["max"] <= limit,
        f"max {fmt(done['max'])} s vs 1.15 x {fmt(own50)} = {fmt(limit)} s "
        f"(ratio {fmt(result['ratios']['max_done_over_p50_direct'])}; {ws['done']}/{ws['sockets']} done)",
    ))
    limit99 = None if own99 is None else TARGET_DONE_RATIO * own99
    out.append(target(
        "p99 reply done <= 1.15 x p99 server's own time", label, done["p99"], limit99,
        all_done and limit99 is not None and done["p99"] is not None and done["p99"] <= limit99,
        f"p99 {fmt(done['p99'])} s vs 1.15 x {fmt(own99)} = {fmt(limit99)} s "
        f"(ratio {fmt(result['ratios']['p99_done_over_p99_direct'])})",
    ))
    return out


def integrity_target(result: dict, name: str) -> dict:
    ws = result["ws"]
    problems = (
        (ws["sockets"] - ws["complete"]) + ws["error_frames"] + ws["offset_errors"]
        + ws["text_mismatch_done"] + ws["text_mismatch_upstream"] + ws["extra_frames"]
        + ws["connect_failures"] + result["direct"]["failed"]
    )
    detail = (
        f"{ws['complete']}/{ws['sockets']} complete, statuses {ws['statuses']}, {ws['error_frames']} error frames "
        f"{ws['error_codes'] or ''}, {ws['connect_failures']} connect failures, {ws['offset_errors']} offset errors, "
        f"{ws['text_mismatch_done'] + ws['text_mismatch_upstream']} text mismatches"
    )
    return target(name, result["label"], problems, 0, problems == 0, detail)


def evaluate(results: dict[str, dict], suite: bool) -> list[dict]:
    targets: list[dict] = []
    if suite:
        a, b, c = results.get("a"), results.get("b"), results.get("c")
        if a and "ws" in a:
            targets += latency_targets(a)
        per_send = None
        if b and "ws" in b and b["ws"]["done"]:
            per_send = b["ws"]["daphne_cpu_s"] / b["ws"]["sockets"]
            b["derived"] = {"cpu_per_send_ms": 1000 * per_send}
            targets.append(target(
                "daphne CPU per send <= 5 ms", b["label"], 1000 * per_send, TARGET_CPU_PER_SEND_MS,
                1000 * per_send <= TARGET_CPU_PER_SEND_MS and b["ws"]["complete"] == b["ws"]["sockets"],
                f"{1000 * per_send:.2f} ms = {b['ws']['daphne_cpu_s']:.2f} s / {b['ws']['sockets']} sends",
            ))
        for key in ("a", "c"):
            r = results.get(key)
            if per_send is None or not r or "ws" not in r:
                continue
            n, chunks = r["ws"]["sockets"], r["scenario"]["chunks"]
            per_chunk_us = 1e6 * (r["ws"]["daphne_cpu_s"] - n * per_send) / (n * chunks)
            r["derived"] = {"cpu_per_chunk_us": per_chunk_us, "cpu_per_send_ms_used": 1000 * per_send}
            if key == "a":
                targets.append(target(
                    "daphne CPU per relayed chunk <= 30 us", r["label"], per_chunk_us, TARGET_CPU_PER_CHUNK_US,
                    per_chunk_us <= TARGET_CPU_PER_CHUNK_US and r["ws"]["complete"] == n,
                    f"({r['ws']['daphne_cpu_s']:.2f} s - {n} x {1000 * per_send:.2f} ms) / ({n} x {chunks}) "
                    f"= {per_chunk_us:.1f} us (naive {r['ws']['cpu_per_chunk_naive_us']:.1f} us)",
                ))
        if a and "ws" in a:
            targets.append(integrity_target(a, "200 replies: all complete, no error, text intact"))
        if c and "ws" in c:
            targets.append(integrity_target(c, "1000 replies at once complete with no error"))
        return targets
    (result,) = results.values()
    ws = result["ws"]
    if result["scenario"]["chunks"] > 1:
        targets += latency_targets(result)
        naive = ws["cpu_per_chunk_naive_us"]
        targets.append(target(
            "daphne CPU per relayed chunk <= 30 us (naive: includes the per-send cost)", result["label"], naive,
            TARGET_CPU_PER_CHUNK_US, naive is not None and naive <= TARGET_CPU_PER_CHUNK_US,
            f"{fmt(naive, '.1f')} us = {ws['daphne_cpu_s']:.2f} s / {ws['done']} x {result['scenario']['chunks']} chunks",
        ))
    else:
        per_send = ws["cpu_per_reply_ms"]
        targets.append(target(
            "daphne CPU per send <= 5 ms", result["label"], per_send, TARGET_CPU_PER_SEND_MS,
            per_send is not None and per_send <= TARGET_CPU_PER_SEND_MS, f"{fmt(per_send, '.2f')} ms",
        ))
    targets.append(integrity_target(result, "all replies complete, no error, text intact"))
    return targets


def print_report(results: dict[str, dict], targets: list[dict], args) -> None:
    ordered = [results[key] for key in results]
    print()
    print("=" * 78)
    chat_env = {k: v for k, v in os.environ.items() if k.startswith("CHAT_")}
    print(
        f"stream_load: {os.cpu_count()} CPUs, Python {platform.python_version()}, database {args.database}, "
        f"channel layer {'redis' if args.redis else 'in-memory'}, CHAT_* env {chat_env or '(defaults)'}"
    )
    print("Times in seconds from each socket's own send; 'server's own time' = the same requests read directly.")
    print("=" * 78)
    print(table(ordered))
    derived = [(r["label"], r["derived"]) for r in ordered if r.get("derived")]
    if derived:
        print()
        for label, values in derived:
            print(f"derived {label}: " + ", ".join(f"{k} = {v:.2f}" for k, v in values.items()))
    print()
    print("targets:")
    for t in targets:
        print(f"  [{'PASS' if t['pass'] else 'FAIL'}] {t['target']} ({t['scenario']}): {t['detail']}")
    for r in ordered:
        ws = r.get("ws") or {}
        notes = []
        if ws.get("connect_failure_samples"):
            notes.append(f"connect failures, e.g. {ws['connect_failure_samples']}")
        if ws.get("close_codes"):
            notes.append(f"close codes {ws['close_codes']}")
        if r.get("direct", {}).get("errors"):
            notes.append(f"direct errors {r['direct']['errors']}")
        other, wall = ws.get("other_cpu_s"), ws.get("run_wall_s")
        if other is not None and wall and other / wall > 0.2:
            notes.append(
                f"other processes used {other / wall:.2f} cores on average during the run "
                "(database server, Redis, or unrelated jobs): latencies are pessimistic"
            )
        if r.get("daphne_exit") is not None:
            notes.append(f"daphne exited with {r['daphne_exit']}")
        if notes:
            print(f"  note {r['label']}: " + "; ".join(notes))
    tails = [(r["label"], r.get("daphne_log_tail", "").strip()) for r in ordered]
    for label, tail in tails:
        if tail:
            print(f"\ndaphne log tail ({label}):\n{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Many websockets against one daphne process, vs the fake upstream read directly.",
        epilog="See the module docstring for what is measured.",
    )
    parser.add_argument("--replies", type=int, default=200, help="concurrent replies (one socket and conversation each)")
    parser.add_argument("--chunks", type=int, default=200, help="chunks per reply from the fake upstream")
    parser.add_argument("--rate", type=float, default=50.0, help="chunks per second per reply")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="the database to DROP and re-create (postgres)")
    parser.add_argument("--redis", action="store_true", help="use the Redis channel layer")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--port", type=int, default=0, help="daphne's port (default: a free one)")
    parser.add_argument("--upstream-port", type=int, default=0, help="the fake upstream's port (default: a free one)")
    parser.add_argument(
        "--suite", action="store_true", help="run (a) 200x200@50, (b) 200x1, (c) 1000x200@50 (ignores --replies/--chunks/--rate)"
    )
    parser.add_argument("--json", metavar="PATH", help="write all results here")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="skip the one warm-up reply through daphne before measuring")
    parser.add_argument("--connect-concurrency", type=int, default=50,
                        help="websocket handshakes in flight at once (daphne's listen backlog is 50)")
    parser.add_argument("--timeout", type=float, default=0, help="seconds to wait for every done (default: derived)")
    parser.add_argument("--direct-client", choices=("raw", "httpx"), default="raw",
                        help="how the baseline reads the upstream: bare asyncio streams (default: cheap, so the "
                        "figure is the server's own) or httpx.AsyncClient (its per-chunk cost slows the reading)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, SQLite file)")
    args = parser.parse_args()

    fd_limit = raise_fd_limit()
    if args.suite:
        scenarios = [
            Scenario("a", 200, 200, 50.0),
            Scenario("b", 200, 1, 50.0),
            Scenario("c", 1000, 200, 50.0),
        ]
    else:
        scenarios = [Scenario("run", args.replies, args.chunks, args.rate)]
    needed = 2 * max(s.replies for s in scenarios) + 256
    if fd_limit < needed:
        log(f"warning: the open-file limit is {fd_limit}; {needed} or more is advised")

    def measure(workroot: Path) -> tuple[int, dict]:
        results = {scenario.key: run_scenario(scenario, args, workroot) for scenario in scenarios}
        targets = evaluate(results, args.suite)
        print_report(results, targets, args)
        return (0 if all(t["pass"] for t in targets) else 1), {"results": results, "targets": targets}

    return run_session(args, fd_limit, "stream-bench-", measure)


def run_session(args, fd_limit: int, prefix: str, measure) -> int:
    """Run `measure(workroot)` (it runs the scenarios, prints the report and returns (exit status, the JSON's
    sections)) in a fresh temporary directory; write --json; exit 2 on a set-up error, 130 on Ctrl-C or
    `kill` (subprocesses stopped); remove the directory unless --keep. bench/scale_load.py shares it."""

    def on_term(signum, frame):  # clean up on `kill` as on Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    workroot = Path(tempfile.mkdtemp(prefix=prefix))
    status = 0
    try:
        status, sections = measure(workroot)
        if args.json:
            payload = {
                "config": dict(vars(args)),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "fd_limit": fd_limit},
                **sections,
            }
            Path(args.json).write_text(json.dumps(payload, indent=2, default=str))
            print(f"\nresults written to {args.json}")
    except SetupError as exc:
        log(f"set-up failed: {exc}")
        status = 2
    except KeyboardInterrupt:
        log("interrupted; subprocesses stopped")
        status = 130
    finally:
        if args.keep:
            log(f"kept {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Real daphne processes for end-to-end tests (and bench/): the app as `make run` serves it, on a free port."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]

SEED_SCRIPT = """
import json, sys
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from conversations.models import Conversation

out = []
for username, password in json.loads(sys.argv[1]):
    user = get_user_model().objects.create_user(username=username, password=password)
    conversation = Conversation.objects.create(owner=user, title="Seeded")
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    out.append({"username": username, "conversation": str(conversation.pk), "sessionid": session.session_key})
print(json.dumps(out))
"""


def app_env(database_url: str, **extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "REDIS_", "DJANGO_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SECRET_KEY": "live-test-secret-key-not-for-production-0123456789",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            # Every client of a test or a benchmark comes from 127.0.0.1: limits per address are off
            # (a test of them turns them on).
            "CHAT_SOCKETS_PER_ADDRESS": "0",
            "CHAT_CONNECTS_PER_MINUTE": "0",
        }
    )
    env.update(extra)
    return env


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def seed_users(env: dict, users: list[tuple[str, str]]) -> list[dict]:
    """Users, each with a conversation and a logged-in session: [{username, conversation, sessionid}]."""
    script = "import django; django.setup()\n" + SEED_SCRIPT
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(users)],
        env={**env, "DJANGO_SETTINGS_MODULE": "chatsite.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextmanager
def demo_app(
    directory: Path,
    *,
    users: list[tuple[str, str]],
    demo_delay: str,
    setup: str = "",
    env: dict | None = None,
    port: int | None = None,
) -> Iterator["LiveServer"]:
    """The app served by daphne from a fresh SQLite file in `directory`, with its static files collected,
    the offline demo model streaming a word every `demo_delay` seconds, and `users` (username, password).
    `setup`, Python run by `manage.py shell` before the server starts, adds what else a test needs; `env`
    adds environment variables, `port` chooses the port (else a free one)."""
    env = app_env(f"sqlite:///{directory / 'db.sqlite3'}", CHAT_DEMO_DELAY=demo_delay, **(env or {}))
    manage(env, "migrate", "--no-input")
    manage(env, "collectstatic", "--no-input", "--verbosity", "0")
    seed_users(env, users)
    if setup:
        manage(env, "shell", "--no-imports", "--command", setup)
    with LiveServer(env, port) as server:
        yield server


class LiveServer:
    """One daphne process serving chatsite.asgi (as `make run` starts it), stopped on exit."""

    def __init__(self, env: dict, port: int | None = None):
        self.env = env
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LiveServer":
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"daphne-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatsite.server", "-b", "127.0.0.1", "-p", str(self.port), "chatsite.asgi:application"],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"daphne did not start; see {self.log.name}")
            time.sleep(0.2)

    async def open_socket(self, conversation: str, sessionid: str):
        """A websocket (the websockets library's) to a conversation, logged in by the session id."""
        import websockets

        return await websockets.connect(
            f"ws://127.0.0.1:{self.port}/ws/conversations/{conversation}/",
            additional_headers={"Origin": self.url, "Cookie": f"sessionid={sessionid}"},
        )

    def restart(self) -> None:
        """Stop and start again on the same port: every open socket drops meanwhile."""
        self.__exit__(None, None, None)
        self.__enter__()

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


async def frames_until(socket, predicate, timeout: float = 10.0) -> list[dict]:
    """Frames from a live socket (the websockets library's) up to and including the first `predicate` accepts."""
    frames = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            frames.append(frame)
            if predicate(frame):
                return frames


class RedisServer:
    """A redis-server on a free port, keeping nothing on disk; stop() and start() again on the same port."""

    def __init__(self):
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # as a crash or a restart cuts every connection
            self.process.wait(5)

    def __enter__(self) -> "RedisServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

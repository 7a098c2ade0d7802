"""Two daphne processes behind one database and Redis: a reply started on one is watched and stopped from the other."""

import asyncio
import json
import uuid

import psycopg
import pytest

from tests.e2e.live import LiveServer, app_env, frames_until, manage, seed_users
from tests.fake_openai import reply
from tests.helpers import text_of
from tests.infra import ensure_redis

pytestmark = pytest.mark.infra

@pytest.fixture
def two_servers(postgres_database, fake_openai_server):
    ensure_redis()
    fake_openai_server.reset()
    env = app_env(
        postgres_database,
        REDIS_URL="redis://127.0.0.1:6379/0",
        CHANNELS_PREFIX=f"scaleout-{uuid.uuid4().hex[:8]}",
        OPENAI_API_KEY="sk-scale-out-test",
        OPENAI_BASE_URL=fake_openai_server.base_url,
        OPENAI_MODEL="fake-model",
    )
    manage(env, "migrate", "--no-input")
    [person] = seed_users(env, [("sam", "sam-password-123")])
    with LiveServer(env) as first, LiveServer(env) as second:
        yield first, second, person, postgres_database
    fake_openai_server.reset()


async def test_reply_on_one_process_is_watched_and_stopped_from_another(two_servers, fake_openai_server):
    first, second, person, database = two_servers
    fake_openai_server.push(reply([f"w{i} " for i in range(300)], delay=0.02))  # about 6 s
    starter = await first.open_socket(person["conversation"], person["sessionid"])
    await starter.send(json.dumps({"type": "send", "content": "Scale out"}))
    started = await frames_until(starter, lambda f: f["type"] == "delta" and f["offset"] > 50)
    reply_id = next(f["message_id"] for f in started if f["type"] == "start")

    watcher = await second.open_socket(person["conversation"], person["sessionid"])  # the other process, mid-reply
    watched = await frames_until(watcher, lambda f: f["type"] == "delta" and f["offset"] > 200)
    assert watched[0] == {"type": "start", "message_id": reply_id}
    assert watched[1]["offset"] == 0 and len(watched[1]["content"]) > 50  # the text so far, then live

    await watcher.send(json.dumps({"type": "stop"}))  # stop from the process that does not run the reply
    watched += await frames_until(watcher, lambda f: f["type"] == "done")
    started += await frames_until(starter, lambda f: f["type"] == "done")
    assert watched[-1]["status"] == started[-1]["status"] == "stopped"
    assert text_of(watched) == text_of(started) == watched[-1]["content"]
    assert len(watched[-1]["content"]) < len("".join(f"w{i} " for i in range(300)))

    with psycopg.connect(database.replace("postgres://", "postgresql://")) as connection:
        status, content = connection.execute(
            "SELECT status, content FROM conversations_message WHERE id = %s", (reply_id,)
        ).fetchone()
    assert (status, content) == ("stopped", watched[-1]["content"])
    await starter.close()
    await watcher.close()


async def test_one_reply_at_a_time_across_processes(two_servers, fake_openai_server):
    first, second, person, _ = two_servers
    fake_openai_server.push(reply(["slow "] * 50, delay=0.02))
    one = await first.open_socket(person["conversation"], person["sessionid"])
    other = await second.open_socket(person["conversation"], person["sessionid"])
    await one.send(json.dumps({"type": "send", "content": "first"}))
    await frames_until(one, lambda f: f["type"] == "start")
    await other.send(json.dumps({"type": "send", "content": "second"}))
    refused = await frames_until(other, lambda f: f["type"] == "error")
    assert refused[-1]["code"] == "busy"
    finished = await frames_until(one, lambda f: f["type"] == "done")
    assert finished[-1]["status"] == "complete"
    await one.close()
    await other.close()


async def test_viewer_on_another_process_watches_live_and_is_closed_when_revoked_elsewhere(two_servers, fake_openai_server):
    first, second, person, _database = two_servers
    env = first.env
    [viewer] = seed_users(env, [("vic", "vic-password-123")])
    share = (
        "from conversations.models import Share; from django.contrib.auth.models import User; "
        f"Share.objects.create(conversation_id='{person['conversation']}', user=User.objects.get(username='vic'), role='viewer')"
    )
    manage(env, "shell", "-c", share)
    fake_openai_server.push(reply([f"w{i} " for i in range(100)], delay=0.01))
    owner = await first.open_socket(person["conversation"], person["sessionid"])
    watcher = await second.open_socket(person["conversation"], viewer["sessionid"])
    await owner.send(json.dumps({"type": "send", "content": "Watch this"}))
    owned = await frames_until(owner, lambda f: f["type"] == "done")
    watched = await frames_until(watcher, lambda f: f["type"] == "done")
    assert text_of(watched) == text_of(owned) == owned[-1]["content"]

    await watcher.send(json.dumps({"type": "send", "content": "may I?"}))
    refused = await frames_until(watcher, lambda f: f["type"] == "error")
    assert refused[-1]["code"] == "forbidden"

    # Revoked from a third process (a management shell): the change reaches the other two through Redis.
    manage(env, "shell", "-c", "from conversations.models import Share; Share.objects.all().delete()")
    revoked_at = asyncio.get_running_loop().time()
    farewell = await frames_until(watcher, lambda f: f["type"] == "error", timeout=1.0)
    assert farewell[-1]["code"] == "access_revoked"
    async with asyncio.timeout(1.0):
        await watcher.wait_closed()
    assert watcher.close_code == 4403
    assert asyncio.get_running_loop().time() - revoked_at < 1.0
    await owner.send(json.dumps({"type": "stop"}))  # the owner's socket is still open
    await owner.close()

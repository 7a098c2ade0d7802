"""A crowd on one live public link, against a real daphne process: a thousand anonymous visitors all watch a
reply to its end, see how many are here but not who, and the owner's page stays quick meanwhile."""

import asyncio
import json
import time
from statistics import median

import httpx
import pytest
import websockets

from tests.e2e.live import demo_app, frames_until, manage, seed_users

pytestmark = pytest.mark.infra

CROWD = 1000

LINK_SCRIPT = """
from conversations.models import PublicLink
print(PublicLink.objects.create(conversation_id={conversation!r}, kind="live", audience="anyone").token)
"""


@pytest.fixture(scope="module")
def crowd_app(tmp_path_factory):
    with demo_app(tmp_path_factory.mktemp("crowd"), users=[], demo_delay="0.02") as server:
        yield server


async def test_a_thousand_guests_on_a_live_link_watch_a_reply_to_its_end(crowd_app):
    server = crowd_app
    owner, other = seed_users(server.env, [("olga", "olga-password-123"), ("pavel", "pavel-password-123")])
    other_page = f"{server.url}/c/{other['conversation']}/"
    async with httpx.AsyncClient(cookies={"sessionid": other["sessionid"]}) as client:
        quiet = await page_times(client, other_page, count=20)
    token = manage(server.env, "shell", "-c", LINK_SCRIPT.format(conversation=owner["conversation"])).split()[-1]
    handshakes = asyncio.Semaphore(50)  # daphne's listen backlog: more at once and some are dropped

    async def guest():
        async with handshakes:
            url = f"ws://127.0.0.1:{server.port}/ws/s/{token}/"
            return await websockets.connect(url, additional_headers={"Origin": server.url})

    started = time.monotonic()
    guests = await asyncio.gather(*(guest() for _ in range(CROWD)))
    joined = time.monotonic() - started
    headers = {"Origin": server.url, "Cookie": f"sessionid={owner['sessionid']}"}
    owner_url = f"ws://127.0.0.1:{server.port}/ws/conversations/{owner['conversation']}/"
    owner_socket = await websockets.connect(owner_url, additional_headers=headers)
    presence = await frames_until(owner_socket, lambda f: f["type"] == "presence" and f["guests"] == CROWD, timeout=60)
    assert presence[-1]["people"] == []

    await owner_socket.send(json.dumps({"type": "send", "content": "Tell the crowd a story"}))
    busy = []
    async with httpx.AsyncClient(cookies={"sessionid": other["sessionid"]}) as client:
        watching = [asyncio.ensure_future(frames_until(g, lambda f: f["type"] == "done", timeout=120)) for g in guests]
        owner_done = asyncio.ensure_future(frames_until(owner_socket, lambda f: f["type"] == "done", timeout=120))
        while not owner_done.done():  # someone else's page, loaded while the reply fans out to the crowd
            busy += await page_times(client, other_page, count=1)
            await asyncio.sleep(0.1)
        owner_frames = await owner_done
        owner_done_at = time.monotonic()
        seen = await asyncio.gather(*watching)
    lag = time.monotonic() - owner_done_at

    assert all(frames[-1]["content"] == owner_frames[-1]["content"] for frames in seen)  # all thousand, whole
    # A guest sees how many others are here, never who.
    guest_presence = [f for frames in seen for f in frames if f["type"] == "presence"]
    assert all(f["people"] == [] and "others" in f for f in guest_presence)
    print(
        f"\n{CROWD} guests: joined in {joined:.1f} s; the last `done` {lag:.2f} s after the owner's; another "
        f"person's page {1000 * median(quiet):.0f} ms quiet, {1000 * median(busy):.0f} ms (median) "
        f"and {1000 * max(busy):.0f} ms (max) while the reply reached the crowd"
    )
    assert lag < 10
    assert median(busy) < 2 * median(quiet) + 0.05
    for socket in (*guests, owner_socket):
        await socket.close()


async def page_times(client: httpx.AsyncClient, url: str, *, count: int) -> list[float]:
    times = []
    for _ in range(count):
        begun = time.monotonic()
        assert (await client.get(url)).status_code == 200
        times.append(time.monotonic() - begun)
    return times

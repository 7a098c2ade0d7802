"""A crowd on one live public link: how long does someone else's page take, and does the crowd get the reply?

    python bench/crowd.py [--guests 1000] [--seconds 8]

One daphne process (as `make run` serves it, SQLite, the offline demo model at a word per 20 ms).
A person loads their own conversation page ten times a second throughout three phases:

- quiet: nobody else connected (the baseline, in the same run);
- crowd idle: --guests anonymous sockets on another person's live public link, after all joined;
  daphne's CPU per second of wall time is printed too;
- reply: the link's owner sends a message and the crowd watches the reply stream. Printed: how
  many guests received its `done`, with the whole text, within 30 s.

Run it from another checkout to compare (it needs only tests/e2e/live.py there).
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.live import LiveServer, app_env, manage, seed_users

LINK_SCRIPT = """
from conversations.models import PublicLink
print(PublicLink.objects.create(conversation_id={conversation!r}, kind="live", audience="anyone").token)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def page_times(url: str, cookie: str, done: asyncio.Event) -> list[float]:
    times = []
    async with httpx.AsyncClient(cookies={"sessionid": cookie}, timeout=60) as client:
        while not done.is_set():
            started = time.monotonic()
            assert (await client.get(url)).status_code == 200
            times.append(time.monotonic() - started)
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
    return times


async def while_measuring(url: str, cookie: str, work) -> tuple[list[float], object]:
    """The person's page times while `work` (a coroutine) runs, and its result."""
    done = asyncio.Event()
    pages = asyncio.ensure_future(page_times(url, cookie, done))
    try:
        result = await work
    finally:
        done.set()
    return await pages, result


async def receive_until(socket, predicate, timeout: float) -> dict | None:
    try:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await socket.recv())
                if predicate(frame):
                    return frame
    except (TimeoutError, websockets.ConnectionClosed):
        return None


async def run(guests: int, seconds: float) -> None:
    directory = Path(tempfile.mkdtemp(prefix="crowd-"))
    env = app_env(f"sqlite:///{directory / 'db.sqlite3'}", CHAT_DEMO_DELAY="0.02", DJANGO_LOG_LEVEL="ERROR")
    manage(env, "migrate", "--no-input")
    manage(env, "collectstatic", "--no-input", "--verbosity", "0")
    person, owner = seed_users(env, [("vic", "vic-password-123"), ("olga", "olga-password-123")])
    token = manage(env, "shell", "-c", LINK_SCRIPT.format(conversation=owner["conversation"])).split()[-1]
    rows = []
    with LiveServer(env) as server:
        page, cookie = f"{server.url}/c/{person['conversation']}/", person["sessionid"]
        quiet, _ = await while_measuring(page, cookie, asyncio.sleep(seconds))
        rows.append(("quiet", quiet, ""))

        handshakes = asyncio.Semaphore(50)  # daphne's listen backlog: more at once and some are dropped

        async def guest():
            async with handshakes:
                url = f"ws://127.0.0.1:{server.port}/ws/s/{token}/"
                return await websockets.connect(url, additional_headers={"Origin": server.url}, max_size=None)

        started = time.monotonic()
        crowd = await asyncio.gather(*(guest() for _ in range(guests)))
        joined = time.monotonic() - started
        await asyncio.sleep(2)  # the joining settles
        cpu_before = cpu_seconds(server.process.pid)
        idle, _ = await while_measuring(page, cookie, asyncio.sleep(seconds))
        cpu = (cpu_seconds(server.process.pid) - cpu_before) / seconds
        rows.append((f"{guests} guests idle", idle, f"joined in {joined:.1f} s; daphne CPU {cpu:.2f} s per s"))

        headers = {"Origin": server.url, "Cookie": f"sessionid={owner['sessionid']}"}
        owner_url = f"ws://127.0.0.1:{server.port}/ws/conversations/{owner['conversation']}/"
        async with websockets.connect(owner_url, additional_headers=headers, max_size=None) as owner_socket:
            await owner_socket.send(json.dumps({"type": "send", "content": "Tell the crowd a story"}))

            async def reply():
                watching = [receive_until(g, lambda f: f["type"] == "done", 30) for g in crowd]
                owner_done = receive_until(owner_socket, lambda f: f["type"] == "done", 30)
                results = await asyncio.gather(owner_done, *watching)
                return results[0], results[1:]

            started = time.monotonic()
            during, (owner_frame, seen) = await while_measuring(page, cookie, reply())
            took = time.monotonic() - started
        whole = owner_frame["content"] if owner_frame else None
        reached = sum(frame is not None and frame["content"] == whole for frame in seen)
        note = f"{reached} of {guests} got the whole reply within 30 s ({took:.1f} s)"
        rows.append(("reply streaming to the crowd", during, note))
        for socket in crowd:
            await socket.close()

    base = statistics.median(quiet)
    print(f"\nAnother person's page, one daphne process, {guests} anonymous sockets on one live link:")
    print(f"{'phase':30} {'median':>9} {'p95':>9} {'max':>9} {'x quiet':>8}")
    for name, times, note in rows:
        ordered = sorted(times)
        median, p95 = statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]
        print(f"{name:30} {median * 1000:7.0f}ms {p95 * 1000:7.0f}ms {ordered[-1] * 1000:7.0f}ms {median / base:8.2f}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    asyncio.run(run(args.guests, args.seconds))


if __name__ == "__main__":
    main()

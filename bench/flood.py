"""One client floods the server; how long does another person's page take meanwhile?

    python bench/flood.py [--seconds 8]

One daphne process (as `make run` serves it, SQLite). A person loads their conversation page ten
times a second throughout; meanwhile an attacker floods tiny frames, first from a logged-in socket,
then as an anonymous visitor on a live public link, reconnecting whenever the server closes the
socket. Printed: the person's page time (median, p95, max) in each phase, and against the quiet
baseline measured in the same run. Run it from another checkout to compare (it needs only
tests/e2e/live.py there).
"""

import argparse
import asyncio
import json
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
from conversations.models import Conversation, Message, PublicLink
conversation = Conversation.objects.get(pk={conversation!r})
for n in range(20):
    Message.objects.create(conversation=conversation, role="user", content=f"Question {{n}}", author=conversation.owner)
    answer = f"Answer {{n}} " * 40
    Message.objects.create(conversation=conversation, role="assistant", content=answer, html=f"<p>{{answer}}</p>")
link = PublicLink.objects.create(conversation_id={attacker_conversation!r}, kind="live", audience="anyone")
print(link.token)
"""


async def page_times(url: str, cookie: str, until: float) -> list[float]:
    times = []
    async with httpx.AsyncClient(cookies={"sessionid": cookie}, timeout=60) as client:
        while time.monotonic() < until:
            started = time.monotonic()
            response = await client.get(url)
            assert response.status_code == 200, response.status_code
            times.append(time.monotonic() - started)
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
    return times


async def flood(url: str, origin: str, cookie: str | None, until: float) -> dict:
    """Tiny frames as fast as the socket takes them; reconnect when closed. Counts what happened."""
    sent = connects = refused = 0
    headers = {"Origin": origin, **({"Cookie": f"sessionid={cookie}"} if cookie else {})}
    while time.monotonic() < until:
        try:
            async with websockets.connect(url, additional_headers=headers, max_queue=None) as socket:
                connects += 1
                while time.monotonic() < until:
                    await socket.send('{"type":"stop"}')
                    sent += 1
                    if sent % 100 == 0:
                        await asyncio.sleep(0)  # let the reader drain what the server says
        except (websockets.ConnectionClosed, websockets.InvalidStatus, OSError):
            refused += 1
            await asyncio.sleep(0.01)
    return {"frames": sent, "connects": connects, "closed or refused": refused}


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "median": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
        "pages": len(ordered),
    }


async def run(seconds: float) -> None:
    directory = Path(tempfile.mkdtemp(prefix="flood-"))
    env = app_env(f"sqlite:///{directory / 'db.sqlite3'}", DJANGO_LOG_LEVEL="ERROR")
    manage(env, "migrate", "--no-input")
    manage(env, "collectstatic", "--no-input", "--verbosity", "0")
    person, attacker = seed_users(env, [("vic", "vic-password-123"), ("mal", "mal-password-123")])
    script = LINK_SCRIPT.format(conversation=person["conversation"], attacker_conversation=attacker["conversation"])
    token = manage(env, "shell", "-c", script).strip().splitlines()[-1]
    phases = {}
    for name, path, cookie in (
        ("quiet", None, None),
        ("flood, logged in", f"/ws/conversations/{attacker['conversation']}/", attacker["sessionid"]),
        ("flood, anonymous on a live link", f"/ws/s/{token}/", None),
    ):
        # A fresh process for each phase: what one flood leaves behind (a penalised address) does not help the next.
        with LiveServer(env) as server:
            page = f"{server.url}/c/{person['conversation']}/"
            until = time.monotonic() + seconds
            if path is None:
                phases[name] = (await page_times(page, person["sessionid"], until), {})
                continue
            url = f"ws://127.0.0.1:{server.port}{path}"
            times, counts = await asyncio.gather(
                page_times(page, person["sessionid"], until), flood(url, server.url, cookie, until)
            )
            phases[name] = (times, counts)
    quiet = summary(phases["quiet"][0])["median"]
    print(f"\nThe person's page ({seconds:g} s per phase), one daphne process:")
    print(f"{'phase':36} {'median':>9} {'p95':>9} {'max':>9} {'x quiet':>8}  attacker")
    for name, (times, counts) in phases.items():
        s = summary(times)
        print(
            f"{name:36} {s['median'] * 1000:7.0f}ms {s['p95'] * 1000:7.0f}ms {s['max'] * 1000:7.0f}ms "
            f"{s['median'] / quiet:8.2f}  {json.dumps(counts) if counts else ''}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    asyncio.run(run(args.seconds))


if __name__ == "__main__":
    main()

"""Many people watching one shared conversation: joining, a reply fanned out to all, and a revoke.

    .venv/bin/python bench/sharing_load.py [--viewers 100] [--redis]

One daphne process (as `make run` serves it) on a throwaway SQLite file with the
offline demo model. The owner shares the conversation with a team of --viewers
people as viewers; each opens a socket on it. Measured:

- joining: the time for all sockets to connect (until the owner's presence counts
  them all), and daphne's CPU for it;
- fan-out: how much later than the owner the last viewer receives `done`;
- revoke: the owner revokes the team's share over HTTP (the Share dialog's
  form); the time from the request until each viewer's socket is closed with
  4403. The issue's bound is one second.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.live import LiveServer, app_env, manage, seed_users  # noqa: E402

SHARE_SCRIPT = """
from conversations.models import Share, Team, TeamMembership
from django.contrib.auth.models import User
team = Team.objects.create(name="bench")
for user in User.objects.all():
    TeamMembership.objects.create(team=team, user=user, role="owner" if user.username == "owner" else "member")
share = Share.objects.create(conversation_id="{conversation}", team=team, role="viewer")
print(share.pk)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def open_socket(server: LiveServer, conversation: str, sessionid: str):
    return await websockets.connect(
        f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation}/",
        additional_headers={"Origin": server.url, "Cookie": f"sessionid={sessionid}"},
        max_size=None,
    )


async def until(socket, predicate, timeout: float = 60.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if predicate(frame):
                return frame


async def closed_at(socket) -> tuple[float, int | None]:
    try:
        async for _ in socket:
            pass
    except websockets.ConnectionClosed:
        pass
    return time.monotonic(), socket.close_code


async def run(server: LiveServer, owner: dict, viewers: list[dict], share_id: int) -> dict:
    conversation = owner["conversation"]
    cpu_before, started = cpu_seconds(server.process.pid), time.monotonic()
    owner_socket = await open_socket(server, conversation, owner["sessionid"])
    handshakes = asyncio.Semaphore(50)  # daphne's listen backlog is 50: more at once and some are dropped

    async def join(viewer: dict):
        async with handshakes:
            return await open_socket(server, conversation, viewer["sessionid"])

    sockets = await asyncio.gather(*(join(viewer) for viewer in viewers))
    # Everyone has joined once the owner has been told about the last of them.
    await until(owner_socket, lambda f: f["type"] == "presence" and len(f["people"]) + f.get("more", 0) == len(viewers))
    join_wall, join_cpu = time.monotonic() - started, cpu_seconds(server.process.pid) - cpu_before

    await owner_socket.send(json.dumps({"type": "send", "content": "Tell everyone a story"}))
    owner_done = asyncio.create_task(until(owner_socket, lambda f: f["type"] == "done"))
    viewer_done = [asyncio.create_task(until(s, lambda f: f["type"] == "done")) for s in sockets]
    await owner_done
    owner_done_at = time.monotonic()
    await asyncio.gather(*viewer_done)
    fan_out_lag = time.monotonic() - owner_done_at

    closers = [asyncio.create_task(closed_at(s)) for s in sockets]
    async with httpx.AsyncClient(base_url=server.url) as client:
        token = uuid.uuid4().hex
        revoked_at = time.monotonic()  # the sockets are told once the revoke commits, before the response
        response = await client.post(
            f"/c/{conversation}/shares/{share_id}/revoke/",
            cookies={"sessionid": owner["sessionid"], "csrftoken": token},
            headers={"X-CSRFToken": token},
        )
    assert response.status_code == 302, response.status_code
    results = await asyncio.gather(*closers)
    latencies = [at - revoked_at for at, _ in results]
    codes = {code for _, code in results}
    await owner_socket.close()
    return {
        "viewers": len(viewers),
        "join_wall_s": join_wall,
        "join_cpu_ms_per_socket": 1000 * join_cpu / (len(viewers) + 1),
        "fan_out_lag_s": fan_out_lag,
        "revoke_close_p50_s": statistics.median(latencies),
        "revoke_close_p99_s": pct(latencies, 0.99),
        "revoke_close_max_s": max(latencies),
        "close_codes": sorted(code for code in codes if code is not None),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--redis", action="store_true", help="use the Redis channel layer (127.0.0.1:6379)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        extra = {"CHAT_DEMO_DELAY": "0.01"}
        if args.redis:
            extra |= {"REDIS_URL": "redis://127.0.0.1:6379/0", "CHANNELS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}"}
        env = app_env(f"sqlite:///{workdir}/db.sqlite3", **extra)
        manage(env, "migrate", "--no-input")
        people = seed_users(env, [("owner", "owner-pw-12345")] + [(f"viewer{i}", "viewer-pw-12345") for i in range(args.viewers)])
        owner, viewers = people[0], people[1:]
        share_id = int(manage(env, "shell", "-c", SHARE_SCRIPT.format(conversation=owner["conversation"])).split()[-1])
        with LiveServer(env) as server:
            result = asyncio.run(run(server, owner, viewers, share_id))
    width = max(map(len, result))
    for key, value in result.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    ok = result["revoke_close_max_s"] < 1.0 and result["close_codes"] == [4403]
    print(f"[{'PASS' if ok else 'FAIL'}] every viewer's socket closed with 4403 within 1 s of the revoke")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

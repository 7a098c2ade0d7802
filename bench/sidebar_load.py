"""How much the sidebar weighs and how long pages take with many conversations, against a baseline of 20.

    .venv/bin/python bench/sidebar_load.py [--conversations 5000] [--baseline 20] [--runs 20] [--database-url URL]

Builds a throwaway database (SQLite file by default) with two people: one with --baseline conversations,
one with --conversations (spread over two years, some pinned, some archived, a few dozen shared with
them), each with a short conversation open. For each it times GET / and GET /c/<id>/ through Django's
test client (the full request path) and prints the sidebar's bytes (<aside class="sidebar"> … </aside>),
the whole page's bytes, the queries per page and the median page time, then the time of one
"more" page (GET /sidebar/?before=…). Target: under 60 KB of sidebar, and the same queries, at 5,000.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def logging_off() -> None:
    import logging

    logging.disable(logging.WARNING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=5000)
    parser.add_argument("--baseline", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="sidebar-bench-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SECRET_KEY", "sidebar-bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    for name in ("OPENAI_API_KEY", "REDIS_URL"):
        os.environ.pop(name, None)

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from conversations.models import Conversation, Message, Share

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    call_command("migrate", verbosity=0)
    logging_off()
    people = get_user_model().objects
    sharer = people.create_user("sharer", password="unused-password-123")

    def person(name: str, count: int):
        user = people.create_user(name, password="unused-password-123")
        now = timezone.now()
        step = timedelta(days=730) / max(count, 1)
        conversations = [
            Conversation(
                owner=user,
                title=f"Conversation number {number} about something worth a long title",
                updated=now - step * number,
                pinned_at=now if number % 500 == 7 else None,
                archived_at=now if number % 10 == 9 else None,
            )
            for number in range(count)
        ]
        Conversation.objects.bulk_create(conversations, batch_size=1000)
        shared = Conversation.objects.bulk_create(
            [
                Conversation(owner=sharer, title=f"Shared {number}", updated=now - step * number)
                for number in range(min(count, 60))
            ]
        )
        Share.objects.bulk_create([Share(conversation=chat, user=user, role="viewer") for chat in shared])
        opened = conversations[0]
        Message.objects.bulk_create(
            [
                Message(conversation=opened, role=role, content=f"{role} says hello", html="<p>hello</p>")
                for role in ("user", "assistant")
            ]
        )
        return user, opened

    def sidebar_bytes(html: str) -> int:
        start = html.index('<aside class="sidebar"')
        return len(html[start : html.index("</aside>", start)].encode())

    class Counted:
        """The statements run while it is open (an execute wrapper: the connection may be reopened meanwhile)."""

        def __enter__(self):
            self.count = 0
            self.hook = connection.execute_wrapper(self)
            self.hook.__enter__()
            return self

        def __call__(self, execute, sql, params, many, context):
            self.count += 1
            return execute(sql, params, many, context)

        def __exit__(self, *exc):
            self.hook.__exit__(*exc)

        def __len__(self):
            return self.count

    def measure(client, url: str) -> tuple[int, int, int, float]:
        client.get(url)  # warm up: templates compiled, the connection open
        with Counted() as queries:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        html = response.content.decode()
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            client.get(url)
            times.append(time.perf_counter() - started)
        return sidebar_bytes(html), len(html.encode()), len(queries), statistics.median(times) * 1000

    print(f"database: {connection.vendor}; {args.runs} runs per page, median")
    print(f"{'conversations':>13}  {'page':<14} {'sidebar':>10} {'whole page':>11} {'queries':>8} {'time':>9}")
    for name, count in (("baseline", args.baseline), ("many", args.conversations)):
        user, opened = person(name, count)
        client = Client()
        client.force_login(user)
        for label, url in (("home", "/"), ("conversation", f"/c/{opened.id}/")):
            side, whole, queries, ms = measure(client, url)
            print(f"{count:>13}  {label:<14} {side / 1024:>7.1f} KB {whole / 1024:>8.1f} KB {queries:>8} {ms:>6.1f} ms")
        more = re.search(r'id="sidebar-own"[^>]*data-more="([^"]+)"', client.get("/").content.decode())
        if more:
            url = more.group(1).replace("&amp;", "&")
            with Counted() as queries:
                client.get(url)
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                client.get(url)
                times.append(time.perf_counter() - started)
            print(f"{count:>13}  {'next 50':<14} {'':>10} {'':>11} {len(queries):>8} {statistics.median(times) * 1000:>6.1f} ms")


if __name__ == "__main__":
    main()

"""How long the conversation page takes to render for a long conversation, and with how many queries.

    .venv/bin/python bench/page_render.py [--messages 1000] [--runs 30] [--database-url URL]

Builds a throwaway database (SQLite file by default) with one conversation of
--messages messages (alternating user / assistant, assistant replies with
Markdown and code already rendered, as replies are stored), then times GET
/c/<id>/ through Django's test client — the full request path: middleware,
session, the access check, the queries and the template. Prints the median,
p95 and max wall time and the number of queries per render. Target: < 150 ms.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="page-bench-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SECRET_KEY", "page-bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    for name in ("OPENAI_API_KEY", "REDIS_URL"):
        os.environ.pop(name, None)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from conversations.models import Conversation, Message
    from conversations.rendering import render_markdown

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("reader", password="unused-password-123")
    conversation = Conversation.objects.create(owner=user, title="A long conversation")
    answer = (
        "Here is what I found:\n\n- first point with `code`\n- second point, **bold**\n\n"
        "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n\n"
        "And a closing paragraph that is a little longer, as replies tend to be. " * 2
    )
    answer_html = render_markdown(answer)
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            role="user" if index % 2 == 0 else "assistant",
            content=f"Question number {index}: how does <this> & that work?" if index % 2 == 0 else answer,
            html="" if index % 2 == 0 else answer_html,
            author=user if index % 2 == 0 else None,
        )
        for index in range(args.messages)
    )
    client = Client()
    client.force_login(user)
    url = f"/c/{conversation.id}/"
    assert client.get(url).status_code == 200  # warm up: templates compiled, connections open

    timings = []
    for _ in range(args.runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    timings.sort()
    p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
    print(f"conversation page, {args.messages} messages, {len(response.content) / 1024:.0f} KiB of HTML, "
          f"{connection.vendor}:")
    print(f"  median {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, max {timings[-1]:.1f} ms "
          f"over {args.runs} renders; {len(queries)} queries per render")
    print(f"  target < 150 ms: {'PASS' if p95 < 150 else 'FAIL'} (p95)")


if __name__ == "__main__":
    main()

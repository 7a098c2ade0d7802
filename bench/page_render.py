"""How long the conversation page takes to render for a long conversation, and with how many queries.

    .venv/bin/python bench/page_render.py [--messages 1000] [--branches 50] [--runs 30] [--database-url URL]

Builds a throwaway database (SQLite file by default) with two conversations of
--messages messages each (alternating user / assistant, assistant replies with
Markdown and code already rendered, as replies are stored): one branch, the
baseline, and the same number with --branches other versions of replies, then
times GET /c/<id>/ of each through Django's test client — the full request
path: middleware, session, the access check, the queries and the template.
Prints the median, p95 and max wall time and the number of queries per render.
Target: < 150 ms.
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
    parser.add_argument("--branches", type=int, default=50, help="replies regenerated and followed up")
    parser.add_argument("--branch-length", type=int, default=4, help="messages on each such branch")
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
    answer = (
        "Here is what I found:\n\n- first point with `code`\n- second point, **bold**\n\n"
        "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n\n"
        "And a closing paragraph that is a little longer, as replies tend to be. " * 2
    )
    answer_html = render_markdown(answer)

    def message(conversation, index: int) -> Message:
        return Message(
            conversation=conversation,
            role="user" if index % 2 == 0 else "assistant",
            content=f"Question number {index}: how does <this> & that work?" if index % 2 == 0 else answer,
            html="" if index % 2 == 0 else answer_html,
            author=user if index % 2 == 0 else None,
        )

    # The baseline: one branch of --messages messages.
    linear = Conversation.objects.create(owner=user, title="A long conversation")
    Message.objects.create_tree([message(linear, i) for i in range(args.messages)], [None, *range(args.messages - 1)])

    # The same number of messages with versions: --branches of the replies on the current branch were
    # regenerated and followed up (--branch-length messages each), so the page shows fewer but has
    # "‹ n / m ›" to draw and a tree to walk.
    branched = Conversation.objects.create(owner=user, title="A long conversation with versions")
    main_length = args.messages - args.branches * args.branch_length
    messages = [message(branched, i) for i in range(main_length)]
    parents = [None, *range(main_length - 1)]
    step = max(2, main_length // max(1, args.branches)) // 2 * 2
    for branch in range(args.branches):
        parent = min(main_length - 2, branch * step)  # a person's message: the branch is another answer to it
        for offset in range(args.branch_length):
            messages.append(message(branched, 1 + offset))
            parents.append(parent)
            parent = len(messages) - 1
    Message.objects.create_tree(messages, parents)
    leaf = Message.objects.filter(conversation=branched).get(pk=Message.objects.filter(conversation=branched)
                                                              .order_by("id")[main_length - 1].pk)
    Conversation.objects.filter(pk=branched.pk).update(current_leaf=leaf)

    client = Client()
    client.force_login(user)
    for conversation, label in ((linear, "one branch"), (branched, f"{args.branches} branches")):
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
        shown = response.content.count(b'class="message message--')
        print(f"conversation page, {args.messages} messages, {label} ({shown} shown), "
              f"{len(response.content) / 1024:.0f} KiB of HTML, {connection.vendor}:")
        print(f"  median {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, max {timings[-1]:.1f} ms "
              f"over {args.runs} renders; {len(queries)} queries per render")
        print(f"  target < 150 ms: {'PASS' if p95 < 150 else 'FAIL'} (p95)")


if __name__ == "__main__":
    main()

"""How fast search answers over a few months of chats, against a naive `icontains`, and what indexing adds to a send.

    .venv/bin/python bench/search_load.py [--conversations 2000] [--messages 50] [--runs 30] [--database-url URL]

Into a fresh database (a SQLite file by default; a PostgreSQL URL's database is flushed first):
- one person with --conversations conversations of --messages messages (100,000 by default), and as many
  messages again in other people's conversations (which must never be found), mixed English, Chinese and
  mixed text, bulk-saved, then indexed from scratch as migration 0012 indexes existing data (its time printed);
- each query --runs times through the /search/ view (Django's test client: the server's time, page rendered,
  with the sidebar listing all 2,000 conversations), and through selectors.search.search alone (the search
  and its snippets), p50 and p95, English and Chinese; then the baseline in the same run: the conversations whose messages
  contain the text (`icontains`, what one would write first), same access rule, first page only;
- the send path: reply_begin + reply_finish (one turn, the statements every send runs) with the index as
  shipped, and with the index writes turned off (what a send cost before search), in the same run.
Target: p95 under 100 ms for each query.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENGLISH = (
    "stream streaming streams response database migration error handling deploy docker kubernetes cache redis "
    "query index python django template websocket channel latency token model prompt context window retry "
    "backoff upload export import branch version message conversation share team budget invoice report "
    "lighthouse otter walrus garden recipe travel schedule meeting review summary translate"
).split()
FILLER = "the a of to and in is it that for on with as this be are by we you can how why what".split()
CHINESE = (
    "流式 响应 打字机 效果 数据库 迁移 错误 处理 部署 缓存 查询 索引 模板 延迟 模型 提示 上下文 重试 上传 导出 "
    "导入 分支 版本 消息 会话 分享 团队 预算 报表 灯塔 水獭 花园 菜谱 旅行 日程 会议 评审 总结 翻译 的 了 是 在 我们 如何"
).split()
QUERIES = [
    ("en", "stream"), ("en", "database migration"), ("en", '"error handling"'), ("en", "docker -kubernetes"),
    ("en", "lighthouse otter"), ("zh", "流式"), ("zh", "打字机"), ("zh", "数据库 迁移"), ("zh", "灯塔 -水獭"),
    ("zh", "水獭 python"),
]


def sentence(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        words = [rng.choice(ENGLISH) if rng.random() < 0.4 else rng.choice(FILLER) for _ in range(rng.randint(8, 20))]
        return " ".join(words).capitalize() + "."
    if kind < 0.75:
        return "".join(rng.choice(CHINESE) for _ in range(rng.randint(6, 16))) + "。"
    return "".join(rng.choice(CHINESE) for _ in range(4)) + f" {rng.choice(ENGLISH)} " + "".join(
        rng.choice(CHINESE) for _ in range(4)
    ) + "。"


def text(rng: random.Random, reply: bool) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(3, 12) if reply else rng.randint(1, 3)))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="search-bench-"))
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SECRET_KEY", "search-bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    for name in ("OPENAI_API_KEY", "REDIS_URL"):
        os.environ.pop(name, None)

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Exists, OuterRef
    from django.test import Client
    from django.utils import timezone

    from conversations import fulltext, selectors, services
    from conversations.models import Conversation, Message

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.CHAT_SENDS_PER_MINUTE = 0  # the send-path part sends 220 turns at once
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    call_command("migrate", verbosity=0)
    if args.database_url:
        call_command("flush", interactive=False, verbosity=0)
    print(f"database: {connection.vendor}")

    rng = random.Random(7)
    User = get_user_model()
    me = User.objects.create(username="me")
    others = [User.objects.create(username=f"other{number}") for number in range(20)]
    started = time.perf_counter()
    now = timezone.now()
    owners = [me] * args.conversations + [others[number % 20] for number in range(args.conversations)]
    for batch in range(0, len(owners), 200):
        conversations = Conversation.objects.bulk_create(
            Conversation(owner=owner, title=" ".join(rng.choice(ENGLISH + CHINESE) for _ in range(3)),
                         updated=now - timezone.timedelta(minutes=rng.randint(0, 200_000)))
            for owner in owners[batch : batch + 200]
        )
        messages = [
            Message(conversation=conversation, role="assistant" if number % 2 else "user",
                    content=text(rng, bool(number % 2)), status="complete")
            for conversation in conversations
            for number in range(args.messages)
        ]
        Message.objects.bulk_create(messages, batch_size=1000)
    count = Message.objects.count()
    print(f"data: {count:,} messages in {len(owners):,} conversations (half of them mine), "
          f"{time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    fulltext.index.index_everything()
    print(f"indexing everything (migration 0012's backfill): {time.perf_counter() - started:.1f} s, "
          f"{count / (time.perf_counter() - started):,.0f} messages/s")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would have by then: without statistics the plans are poor

    client = Client()
    client.force_login(me)
    client.get("/search/", {"q": "warm up"})  # first-request costs (URL resolver, templates) are not search's
    print(f"\n{'query':28} {'lang':4} {'results':>7} {'view p50':>9} {'p95':>7} {'search() p50':>13} {'p95':>7}"
          f" {'icontains p50':>14} {'p95':>7}   (ms)")
    worst = 0.0
    for language, query in QUERIES:
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get("/search/", {"q": query})
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        results = response.content.decode().count('class="search-result"')
        selector_times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            selectors.search.search(me, query)
            selector_times.append((time.perf_counter() - started) * 1000)
        naive_times = []
        word = query.split()[0].strip('"')
        for _ in range(max(3, args.runs // 5)):
            started = time.perf_counter()
            matching = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=word)
            list(Conversation.objects.visible_to(me).filter(Exists(matching)).order_by("-updated").values("pk")[:21])
            naive_times.append((time.perf_counter() - started) * 1000)
        worst = max(worst, pct(times, 0.95))
        print(f"{query:28} {language:4} {results:7} {statistics.median(times):9.1f} {pct(times, 0.95):7.1f}"
              f" {statistics.median(selector_times):13.1f} {pct(selector_times, 0.95):7.1f}"
              f" {statistics.median(naive_times):14.1f} {pct(naive_times, 0.95):7.1f}")
    print(f"worst p95: {worst:.1f} ms (target < 100 ms): {'ok' if worst < 100 else 'MISSED'}")
    home = []
    for _ in range(args.runs):
        started = time.perf_counter()
        client.get("/")
        home.append((time.perf_counter() - started) * 1000)
    print(f"for scale, the home page (the same sidebar of every conversation, no search): "
          f"p50 {statistics.median(home):.1f} ms, p95 {pct(home, 0.95):.1f} ms")

    # The send path: the same turn with the index writes, and with them turned off (before search existed).
    conversation = services.conversations.conversation_create(owner=me)
    sample = text(rng, False)
    reply_text = text(rng, True)

    def turns(number: int) -> list[float]:
        spent = []
        for _ in range(number):
            started = time.perf_counter()
            plan = services.replies.reply_begin(user=me, conversation_id=conversation.id, content=sample)
            services.replies.reply_finish(reply_id=plan.reply_id, content=reply_text, status="complete")
            spent.append((time.perf_counter() - started) * 1000)
        return spent

    index = fulltext.index
    shipped = (index.message_index_statement, index.message_parameters)
    turns(20)  # warm-up
    with_index, without_index = [], []
    for _ in range(5):  # interleaved, so the conversation's growth weighs on both alike
        with_index += turns(20)
        index.message_index_statement = lambda using=connection: "SELECT %s, %s, %s"
        index.message_parameters = lambda message_id, conversation_id, content, using=connection: [0, 0, 0]
        without_index += turns(20)
        index.message_index_statement, index.message_parameters = shipped
    print(f"\nsend path (reply_begin + reply_finish, {len(with_index)} turns each, reply {len(reply_text)} chars): "
          f"median {statistics.median(without_index):.2f} ms without the index writes, "
          f"{statistics.median(with_index):.2f} ms with them")


if __name__ == "__main__":
    main()

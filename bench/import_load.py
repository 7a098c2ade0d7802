"""How long importing a large ChatGPT export takes, against the time just to parse it.

    .venv/bin/python bench/import_load.py [--conversations 1000] [--messages 50] [--database-url URL]

Builds a ChatGPT data export ZIP (tests/chatgpt_export.py: --conversations conversations of --messages
messages, questions and Markdown answers with a code block; every tenth also has a regenerated answer
and an edited question), then, into a fresh database (a SQLite file by default):
- parses it: one pass of reading the ZIP and decoding every conversation (the baseline: the import reads
  the file twice, once to count and check it, once to import);
- converts it: that pass plus turning each conversation into the tree that is saved, no database;
- imports it as an upload is imported: a job, then the background thread (runner.import_start) that
  counts, parses, renders and sanitises every reply, and saves each conversation in its own transaction.
Prints each wall time, conversations per second, and what rendering the replies alone costs.
Target: the import under 30 s for 1,000 x 50.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="import-bench-"))
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SECRET_KEY", "import-bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    for name in ("OPENAI_API_KEY", "REDIS_URL"):
        os.environ.pop(name, None)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from conversations import services
    from conversations.imports import runner
    from conversations.imports.parsed import Limits
    from conversations.imports.sources import Source
    from conversations.models import ImportJob, Message
    from conversations.rendering import render_markdown
    from tests.chatgpt_export import many_conversations, write_zip

    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        path = write_zip(workdir / "export.zip", many_conversations(args.conversations, args.messages), split=100)
        built = time.perf_counter() - started
        unzipped = sum(info.file_size for info in zipfile.ZipFile(path).infolist())
        print(f"export: {args.conversations:,} conversations x {args.messages} messages, "
              f"{path.stat().st_size / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped, built in {built:.1f} s")

        limits = Limits.from_settings()
        started = time.perf_counter()
        count = sum(1 for _ in Source(str(path), path.name, limits).items())
        parse = time.perf_counter() - started
        started = time.perf_counter()
        converted = [runner.conversation_from_item(item, limits) for item in Source(str(path), path.name, limits).items()]
        convert = time.perf_counter() - started
        messages = sum(len(conversation.messages) for conversation in converted)
        started = time.perf_counter()
        for conversation in converted:
            for message in conversation.messages:
                if message.role == "assistant":
                    render_markdown(message.content)
        render = time.perf_counter() - started
        del converted

        owner = get_user_model().objects.create_user("importer", password="unused-password-123")
        job = services.imports.import_job_create(owner=owner, filename=path.name)
        upload = workdir / "upload.zip"  # the thread deletes what it imported, as it does an upload
        shutil.copy(path, upload)
        started = time.perf_counter()
        runner.import_start(job_id=job.id, path=str(upload))
        assert runner.wait_for_imports(timeout=3600)
        wall = time.perf_counter() - started
        job = ImportJob.objects.get(pk=job.id)
        assert (job.status, job.imported, job.failed) == ("done", count, 0), (job.status, job.error, job.failures[:3])
        assert Message.objects.count() == messages and not upload.exists()

        print(f"{connection.vendor}, {messages:,} messages in {count:,} conversations:")
        print(f"  parse only (one pass: unzip + JSON)       {parse:6.2f} s")
        print(f"  parse + convert to trees (no database)    {convert:6.2f} s")
        print(f"  render + sanitise the replies alone       {render:6.2f} s")
        print(f"  import (count pass, then parse, render, save) {wall:6.2f} s: "
              f"{count / wall:,.0f} conversations/s, {messages / wall:,.0f} messages/s")
        print(f"  target < 30 s: {'PASS' if wall < 30 else 'FAIL'}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

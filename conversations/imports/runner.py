"""Running an import: count the file's conversations, then parse and save each in its own transaction, the
job's progress saved as it goes. An upload runs on a thread of its own, started once its job is committed;
the command (`manage.py import_conversations`) runs the same code in the caller's thread.
"""

import logging
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, connections, transaction
from django.utils import translation
from django.utils.translation import gettext as _

from .. import selectors, services
from ..models import ImportJob
from .chatgpt import conversation_from_chatgpt
from .parsed import ConversationRefused, ImportedConversation, ImportRefused, Limits, plain_title
from .sources import Source
from .teamchat import conversation_from_export
from .uploads import discard, keep_upload

logger = logging.getLogger(__name__)

# Seconds between saves of a job's progress; each renews its lease (services.imports.STALE_AFTER).
PROGRESS_EVERY = 0.5
# Failures beyond this many are counted (ImportJob.failed), not listed.
FAILURES_LISTED = 1000


def conversation_from_item(item, limits: Limits) -> ImportedConversation:
    """One conversation of the file, in whichever format it is (ConversationRefused if in none, or broken)."""
    if not isinstance(item, dict):
        raise ConversationRefused(_("It is not a conversation (not a JSON object)."))
    if "mapping" in item:
        conversation = conversation_from_chatgpt(item, limits)
    elif "messages" in item:
        conversation = conversation_from_export(item, limits)
    else:
        raise ConversationRefused(_("It is neither a ChatGPT conversation nor one exported from this site."))
    if not conversation.messages:
        raise ConversationRefused(_("It has no messages to import (all of them are empty or hidden)."))
    return conversation


class JobGone(Exception):
    """The job is no longer running (it was found interrupted meanwhile): stop without touching it."""


class Progress:
    """A job's counts, saved to it at most every PROGRESS_EVERY seconds (and at the end)."""

    def __init__(self, job_id, on_save: Callable[["Progress"], None] | None):
        self.job_id, self.on_save = job_id, on_save
        self.total = self.processed = self.imported = self.skipped = self.failed = 0
        self.failures: list[dict] = []
        self.saved_at = time.monotonic()

    def fail(self, title: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < FAILURES_LISTED:
            self.failures.append({"title": title, "reason": reason})

    def fields(self) -> dict:
        return {
            "total": self.total, "processed": self.processed, "imported": self.imported, "skipped": self.skipped,
            "failed": self.failed, "failures": self.failures,
        }

    def save(self, *, now: bool = False) -> None:
        if not now and time.monotonic() - self.saved_at < PROGRESS_EVERY:
            return
        if not services.imports.import_job_progress(job_id=self.job_id, **self.fields()):
            raise JobGone()
        self.saved_at = time.monotonic()
        if self.on_save is not None:
            self.on_save(self)


def import_run(*, job_id, path: str, on_progress: Callable[[Progress], None] | None = None) -> ImportJob:
    """Import the file at `path` for the job's owner and finish the job (done, or failed with why the file was
    refused); returns it. Never raises for a bad file. The caller owns `path` (and deletes it if it should)."""
    job = ImportJob.objects.select_related("owner").get(pk=job_id)
    if not services.imports.import_job_begin(job_id=job.id):
        return ImportJob.objects.get(pk=job_id)
    progress = Progress(job.id, on_progress)
    limits = Limits.from_settings()
    error = ""
    try:
        source = Source(path, job.filename, limits)
        progress.total = source.count(on_item=progress.save)  # the first pass: invalid files stop here
        progress.save(now=True)
        model_config_id = selectors.providers.default_model_id(job.owner)
        for item in source.items():
            _import_one(item, job.owner, model_config_id, limits, progress)
            progress.processed += 1
            progress.save()
    except ImportRefused as exc:
        error = exc.message
    except JobGone:
        return ImportJob.objects.get(pk=job_id)
    except Exception:
        logger.exception("import %s stopped", job_id)
        error = _("The import stopped on an unexpected error; the conversations imported so far are kept.")
    services.imports.import_job_finish(job_id=job.id, error=error, **progress.fields())
    if on_progress is not None:
        on_progress(progress)
    return ImportJob.objects.get(pk=job_id)


def _import_one(item, owner, model_config_id: int | None, limits: Limits, progress: Progress) -> None:
    title = (plain_title(item.get("title")) if isinstance(item, dict) else "") or _("(untitled)")
    try:
        conversation = conversation_from_item(item, limits)
        saved = services.imports.conversation_import(owner=owner, conversation=conversation, model_config_id=model_config_id)
    except ConversationRefused as exc:
        progress.fail(title, exc.reason)
    except DatabaseError as exc:
        logger.exception("import: conversation %r not saved", title)
        progress.fail(title, _("It could not be saved (%(error)s).") % {"error": str(exc)[:200]})
    else:
        if saved is None:
            progress.skipped += 1
        else:
            progress.imported += 1


# --- in the background ---------------------------------------------------------------------------

_threads: set[threading.Thread] = set()
_threads_lock = threading.Lock()


def import_upload(*, owner, upload, language: str | None) -> ImportJob:
    """Keep the upload in a private temporary file, record its job, and import it on a thread of its own once the
    job is committed (the file is deleted when it is done). ImportBusy, keeping nothing, while another import of
    this person's is unfinished."""
    path = keep_upload(upload)
    try:
        with transaction.atomic():
            job = services.imports.import_job_create(owner=owner, filename=upload.name or "upload")
            transaction.on_commit(lambda: import_start(job_id=job.id, path=path, language=language))
    except BaseException:
        discard(path)
        raise
    return job


def import_start(*, job_id, path: str, language: str | None = None) -> None:
    """Run the job on a thread of its own, which deletes `path` when it is done."""
    thread = threading.Thread(target=_run, args=(job_id, path, language), name=f"import-{job_id}", daemon=True)
    with _threads_lock:
        _threads.add(thread)
    thread.start()


def _run(job_id, path: str, language: str | None) -> None:
    try:
        with translation.override(language):
            import_run(job_id=job_id, path=path)
    except Exception:
        logger.exception("import %s failed", job_id)
    finally:
        discard(path)
        connections.close_all()  # this thread's own; nothing else would close them
        with _threads_lock:
            _threads.discard(threading.current_thread())


def wait_for_imports(timeout: float = 60.0) -> bool:
    """Wait for the imports running in this process to finish (tests, benchmarks); False if some still run."""
    deadline = time.monotonic() + timeout
    while True:
        with _threads_lock:
            running = list(_threads)
        if not running:
            return True
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            with _threads_lock:
                return not _threads

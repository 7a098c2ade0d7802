"""Writes for imports: the job that tracks an upload (created, started, its progress, finished, or found
interrupted), and one imported conversation saved whole.

The reading and parsing is imports/ (no database); imports/runner.py drives these."""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import fulltext
from ..exceptions import ImportBusy
from ..imports.parsed import ImportedConversation
from ..models import Conversation, ImportJob, Message
from .conversations import stored_html, title_from

# A running job renews `updated` at least every few seconds (imports/runner.py); one that has not for this long
# was cut short by a restart or a crash. Generous: one very large conversation can take a while to save.
STALE_AFTER = timedelta(minutes=2)
UNFINISHED = (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)


def interrupted_message() -> str:
    return _("Interrupted (the server restarted); upload the file again: conversations already imported are skipped.")


def import_jobs_expire(*, owner, now=None) -> int:
    """Mark this person's jobs that stopped being renewed as failed (interrupted): how many there were.

    Checked where jobs are looked at (the Import page, its status URL, a new upload, the command): a job has
    no process left to say it died, so the next look says so, and a new upload is not refused because of it.
    """
    cutoff = (now or timezone.now()) - STALE_AFTER
    return ImportJob.objects.filter(owner=owner, status__in=UNFINISHED, updated__lt=cutoff).update(
        status=ImportJob.Status.FAILED, error=interrupted_message()
    )


@transaction.atomic
def import_job_create(*, owner, filename: str) -> ImportJob:
    """A queued job for this person's upload. ImportBusy while another of theirs is unfinished (the partial
    unique constraint one_unfinished_import_per_person makes that hold for two uploads at the same moment)."""
    import_jobs_expire(owner=owner)
    if ImportJob.objects.filter(owner=owner, status__in=UNFINISHED).exists():
        raise ImportBusy()
    try:
        with transaction.atomic():
            return ImportJob.objects.create(owner=owner, filename=filename[:255])
    except IntegrityError:
        raise ImportBusy() from None


def import_job_begin(*, job_id) -> bool:
    """The job is running now; False if it is not queued any more (found interrupted meanwhile)."""
    return bool(
        ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
            status=ImportJob.Status.RUNNING, updated=timezone.now()
        )
    )


def import_job_progress(
    *, job_id, total: int, processed: int, imported: int, skipped: int, failed: int, failures: list[dict]
) -> bool:
    """Save how far the job got, renewing its lease; False if it is no longer running (found interrupted: stop)."""
    return bool(
        ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.RUNNING).update(
            total=total, processed=processed, imported=imported, skipped=skipped, failed=failed, failures=failures,
            updated=timezone.now(),
        )
    )


def import_job_finish(
    *, job_id, error: str = "", total: int, processed: int, imported: int, skipped: int, failed: int,
    failures: list[dict],
) -> None:
    """Done, or failed with `error` (the whole file refused, or stopped part way: what was imported stays)."""
    ImportJob.objects.filter(pk=job_id, status__in=UNFINISHED).update(
        status=ImportJob.Status.FAILED if error else ImportJob.Status.DONE,
        error=error,
        total=total, processed=processed, imported=imported, skipped=skipped, failed=failed, failures=failures,
        updated=timezone.now(),
    )


def conversation_import(*, owner, conversation: ImportedConversation, model_config_id: int | None) -> Conversation | None:
    """Save an imported conversation for `owner`, all or nothing; None when this person imported it before.

    Replies are rendered and sanitised here as any reply is (stored_html); a person's messages are theirs
    (author: the importer) and are escaped when shown. Times come from the file.
    """
    if conversation.key and Conversation.objects.filter(owner=owner, import_key=conversation.key).exists():
        return None
    messages = conversation.messages
    first_question = next((message.content for message in messages if message.role == Message.Role.USER), "")
    created = conversation.created or timezone.now()
    try:
        with transaction.atomic():
            saved = Conversation.objects.create(
                owner=owner,
                title=conversation.title or title_from(first_question or (messages[0].content if messages else "")),
                model_config_id=model_config_id,
                created=created,
                updated=conversation.updated or created,
                import_key=conversation.key,
            )
            rows = Message.objects.create_tree(
                [
                    Message(
                        conversation=saved,
                        role=message.role,
                        content=message.content,
                        html=stored_html(role=message.role, content=message.content),
                        status=message.status,
                        finish_reason=message.finish_reason,
                        error=message.error,
                        model_name=message.model_name,
                        prompt_tokens=message.prompt_tokens,
                        completion_tokens=message.completion_tokens,
                        author=owner if message.role == Message.Role.USER else None,
                        created=message.created or created,
                    )
                    for message in messages
                ],
                conversation.parents,
            )
            # In bulk: one prepared statement for the conversation's messages.
            fulltext.index.title_index(saved.id, saved.title)
            fulltext.index.messages_index((row.id, saved.id, row.content) for row in rows)
            if rows:
                leaf = rows[conversation.current if conversation.current is not None else -1]
                Conversation.objects.filter(pk=saved.pk).update(current_leaf=leaf)
                saved.current_leaf = leaf
    except IntegrityError:
        # Another upload of the same file got there first (conversation_imported_once): imported before.
        if conversation.key and Conversation.objects.filter(owner=owner, import_key=conversation.key).exists():
            return None
        raise
    return saved

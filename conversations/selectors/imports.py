"""Reads for the Import page: a person's recent import jobs, and one job's status as its page polls it."""

import uuid

from django.core.exceptions import ValidationError

from ..models import ImportJob

RECENT_JOBS = 10


def recent_import_jobs(user) -> list[ImportJob]:
    """This person's latest import jobs, newest first."""
    return list(ImportJob.objects.filter(owner=user).order_by("-created")[:RECENT_JOBS])


def import_job_for(user, job_id: uuid.UUID | str) -> ImportJob | None:
    """The job if it is this person's; None otherwise (someone else's job is never shown, nor hinted at)."""
    try:
        return ImportJob.objects.filter(owner=user).get(pk=job_id)
    except (ImportJob.DoesNotExist, ValidationError, ValueError):
        return None


def import_job_status(job: ImportJob) -> dict:
    """What the page shows of a job (static/conversations/js/imports.js words it)."""
    return {
        "id": str(job.id),
        "filename": job.filename,
        "status": job.status,
        "finished": job.finished,
        "total": job.total,
        "processed": job.processed,
        "imported": job.imported,
        "skipped": job.skipped,
        "failed": job.failed,
        "failures": job.failures,
        "error": job.error,
    }

import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from conversations import services
from conversations.exceptions import ImportBusy
from conversations.imports import runner
from conversations.models import ImportJob


class Command(BaseCommand):
    help = (
        "Import a ChatGPT data export (its ZIP, or conversations.json) or JSON exports of this site for a person, "
        "as the Import page does, here and now: progress as it goes, then what was imported, skipped and not "
        "imported. Conversations imported before are skipped. Exits non-zero if the file was refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The ZIP or JSON file.")
        parser.add_argument("--user", required=True, help="The username the conversations will belong to.")

    def handle(self, *args, file: str, user: str, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        try:
            owner = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user called {user!r}.") from None
        try:
            job = services.imports.import_job_create(owner=owner, filename=path.name)
        except ImportBusy as exc:
            raise CommandError(exc.message) from None

        shown = [0.0]

        def report(progress: runner.Progress) -> None:
            if progress.total and time.monotonic() - shown[0] >= 1.0:
                shown[0] = time.monotonic()
                self.stdout.write(f"{progress.processed:,} of {progress.total:,} conversations")

        job = runner.import_run(job_id=job.id, path=str(path), on_progress=report)
        self.stdout.write(
            f"Imported: {job.imported:,}. Skipped (imported before): {job.skipped:,}. Not imported: {job.failed:,}."
        )
        for failure in job.failures:
            self.stdout.write(f"  {failure['title']}: {failure['reason']}")
        if job.status == ImportJob.Status.FAILED:  # refused whole (or stopped part way: what was imported stays)
            raise CommandError(job.error)

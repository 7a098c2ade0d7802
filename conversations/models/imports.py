"""An upload of conversations being imported: its progress and what came of it (imports/)."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ImportJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"  # the file as a whole was refused, or the import was interrupted

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="import_jobs")
    filename = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text=_("Conversations found in the file."))
    processed = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text=_("Imported before: left as they were."))
    failed = models.PositiveIntegerField(default=0, help_text=_("Not imported: the first of them are in failures."))
    failures = models.JSONField(default=list, blank=True, help_text=_("[{title, reason}] of conversations not imported."))
    error = models.TextField(blank=True, help_text=_("Why the whole file was refused."))
    created = models.DateTimeField(default=timezone.now)
    # Renewed while it runs: a job not renewed for a while was cut short by a restart.
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["owner", "-created"], name="importjob_owner_recent")]
        constraints = [
            # One import at a time per person, even for two uploads at the same moment (services.imports).
            models.UniqueConstraint(
                fields=["owner"], condition=Q(status__in=["queued", "running"]), name="one_unfinished_import_per_person"
            ),
        ]

    def __str__(self) -> str:
        return self.filename

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

"""An upload of conversations being imported: its progress and what came of it (imports/)."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ImportJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")  # the file as a whole was refused, or the import was interrupted

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, verbose_name=_("ID"))
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="import_jobs", verbose_name=_("owner")
    )
    filename = models.CharField(max_length=255, verbose_name=_("filename"))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, verbose_name=_("status"))
    total = models.PositiveIntegerField(default=0, help_text=_("Conversations found in the file."), verbose_name=_("total"))
    processed = models.PositiveIntegerField(default=0, verbose_name=_("processed"))
    imported = models.PositiveIntegerField(default=0, verbose_name=_("imported"))
    skipped = models.PositiveIntegerField(
        default=0, help_text=_("Imported before: left as they were."), verbose_name=_("skipped")
    )
    failed = models.PositiveIntegerField(
        default=0, help_text=_("Not imported: the first of them are in failures."), verbose_name=_("failed")
    )
    failures = models.JSONField(
        default=list, blank=True, help_text=_("[{title, reason}] of conversations not imported."), verbose_name=_("failures")
    )
    error = models.TextField(blank=True, help_text=_("Why the whole file was refused."), verbose_name=_("error"))
    created = models.DateTimeField(default=timezone.now, verbose_name=_("created"))
    # Renewed while it runs: a job not renewed for a while was cut short by a restart.
    updated = models.DateTimeField(default=timezone.now, verbose_name=_("updated"))

    class Meta:
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")
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

"""The admin's usage and limits pages.

Usage records are read-only: they are what happened. Staff with the "view usage
record" permission see every person's usage, not only their own: usage is
accounting data (counts, costs, who and which model), not conversation content,
and whoever is given that permission is there to watch spending. The reply a
record belongs to is shown by id only, never by its text.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count, Sum
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import Limit, UsageRecord


class ModelFilter(admin.RelatedOnlyFieldListFilter):
    """The models that have usage, titled "model" (the field's own name is "model config")."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = _("model")


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = [
        "created",
        "user",
        "team",
        "model_used",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "estimated",
        "cost",
    ]
    list_filter = [
        ("user", admin.RelatedOnlyFieldListFilter),
        ("team", admin.RelatedOnlyFieldListFilter),
        ("model_config", ModelFilter),
        "estimated",
        "created",
    ]
    date_hierarchy = "created"
    search_fields = ["user__username"]
    list_select_related = ["user", "team", "model_config"]
    fields = [
        "created",
        "user",
        "team",
        "model_config",
        "model_name",
        "prompt_tokens",
        "completion_tokens",
        "estimated",
        "cost",
        "reply",
    ]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # Not "model": ModelAdmin.model is the admin's model class and would hide the column.
    @admin.display(description=_("Model"), ordering="model_name")
    def model_used(self, obj: UsageRecord) -> str:
        return obj.model_name or str(obj.model_config or "—")

    @admin.display(description=_("Tokens"))
    def total_tokens(self, obj: UsageRecord) -> int:
        return obj.total_tokens

    @admin.display(description=_("Reply"))
    def reply(self, obj: UsageRecord) -> str:
        return f"#{obj.message_id}" if obj.message_id else gettext("deleted")

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:  # not a redirect or an error page
            context["usage_totals"] = usage_totals(context["cl"].queryset)
        return response


def usage_totals(queryset) -> dict:
    """Replies, tokens and cost of every record the changelist selects (all pages; filters, search and dates applied)."""
    sums = queryset.aggregate(
        replies=Count("id"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cost=Sum("cost")
    )
    prompt, completion = sums["prompt"] or 0, sums["completion"] or 0
    return {
        "replies": sums["replies"],
        "prompt": prompt,
        "completion": completion,
        "total": prompt + completion,
        "cost": sums["cost"] or 0,
    }


class LimitForm(forms.ModelForm):
    class Meta:
        model = Limit
        fields = ["user", "team", "daily_tokens", "monthly_tokens", "requests_per_minute"]
        help_texts = {
            "user": _("A person's own limit. Choose a person or a team, not both."),
            "team": _("A team's shared limit: it counts the usage of replies made by members for whom this is their "
            "first team (the one they joined first). Every member is refused once it is used up."),
            "daily_tokens": _("Prompt and reply tokens per UTC day, for all models together. A send is refused once "
            "this many are used, until 00:00 UTC. Empty: no daily cap."),
            "monthly_tokens": _("Prompt and reply tokens per calendar month (UTC). A send is refused once this many "
            "are used, until the 1st of the next month. Empty: no monthly cap."),
            "requests_per_minute": _("Replies started in any 60 seconds, regenerations included. Empty: no cap."),
        }
        error_messages = {
            "user": {"unique": _("This person already has a limit: change that one.")},
            "team": {"unique": _("This team already has a limit: change that one.")},
        }

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("user")) == bool(cleaned.get("team")):
            # On the field, so the model's own check (the same rule, in database words) is not shown too.
            raise ValidationError({"user": _("Choose either a person or a team: a limit caps exactly one of them.")})
        caps = ("daily_tokens", "monthly_tokens", "requests_per_minute")
        if all(cleaned.get(name) is None for name in caps):
            raise ValidationError(_("Set at least one cap; with all three empty this limit would change nothing."))
        return cleaned


@admin.register(Limit)
class LimitAdmin(admin.ModelAdmin):
    form = LimitForm
    list_display = ["__str__", "daily_tokens", "monthly_tokens", "requests_per_minute"]
    list_select_related = ["user", "team"]
    search_fields = ["user__username", "team__name"]
    # Teams in a plain list: the team autocomplete searches the team admin, which shows staff who are not
    # superusers only their own teams. Team names are configuration here, as in a model's allowed teams.
    autocomplete_fields = ["user"]
    fieldsets = [
        (
            _("Who"),
            {
                "description": _("A person may have their own limit and be in teams with limits: every one applies. "
                "Usage is counted with tokens the model server reports, or estimated from the text when it "
                "reports none. Changes apply within about 10 seconds on every server process."),
                "fields": ["user", "team"],
            },
        ),
        (_("Caps"), {"fields": ["daily_tokens", "monthly_tokens", "requests_per_minute"]}),
    ]

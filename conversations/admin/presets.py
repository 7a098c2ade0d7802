"""The admin for presets: shared ones (no owner, offered to everyone) and people's own.

Staff who are not superusers see the shared presets and their own, as the Presets page shows them,
never another person's (a personal preset is a private system prompt). They manage those with the
permissions they were given: shared presets are configuration, like the models they start from. A
preset they add or change is for everyone or for themselves: the owner field offers no one else, so
no one finds a preset planted in their list.
"""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import F
from django.utils.translation import gettext_lazy as _

from ..models import Preset


class PresetForFilter(admin.SimpleListFilter):
    title = _("for")
    parameter_name = "for"

    def lookups(self, request, model_admin):
        return [("everyone", _("Everyone (shared)")), ("personal", _("One person (their own)"))]

    def queryset(self, request, queryset):
        if self.value() == "everyone":
            return queryset.filter(owner__isnull=True)
        if self.value() == "personal":
            return queryset.filter(owner__isnull=False)
        return queryset


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ["name", "for_whom", "model_config", "temperature", "created"]
    list_filter = [PresetForFilter, "model_config"]
    list_select_related = ["owner", "model_config"]
    search_fields = ["name", "owner__username", "system_prompt"]
    raw_id_fields = ["owner"]
    # Shared presets first, then each person's, by name.
    ordering = [F("owner__username").asc(nulls_first=True), "name"]
    fields = ["name", "owner", "model_config", "temperature", "system_prompt", "created"]
    readonly_fields = ["created"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.available_to(request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "owner" and not request.user.is_superuser:
            kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk)
            kwargs["widget"] = forms.Select  # not the raw-id field: its lookup would list every person
            kwargs["empty_label"] = _("Everyone (shared)")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("For"), ordering="owner__username")
    def for_whom(self, obj: Preset) -> str:
        return obj.owner.get_username() if obj.owner_id else "Everyone"

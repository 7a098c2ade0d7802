"""The admin for presets: shared ones (no owner, offered to everyone) and people's own."""

from django.contrib import admin
from django.db.models import F

from ..models import Preset


class PresetForFilter(admin.SimpleListFilter):
    title = "for"
    parameter_name = "for"

    def lookups(self, request, model_admin):
        return [("everyone", "Everyone (shared)"), ("personal", "One person (their own)")]

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

    @admin.display(description="For", ordering="owner__username")
    def for_whom(self, obj: Preset) -> str:
        return obj.owner.get_username() if obj.owner_id else "Everyone"

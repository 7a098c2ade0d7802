from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Count
from django.shortcuts import redirect

from .models import (
    Conversation,
    Message,
    ModelConfig,
    Provider,
    PublicLink,
    Share,
    SiteSettings,
    Team,
    TeamMembership,
)


def mask_key(key: str) -> str:
    """Enough of a key to tell two apart, never enough to use: sk-…abcd."""
    if not key:
        return "—"
    if len(key) < 12:
        return "set"
    prefix = key[:3] if key.startswith("sk-") else ""
    return f"{prefix}…{key[-4:]}"


class ProviderForm(forms.ModelForm):
    # Write-only: the stored key is never rendered back into the form.
    api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Sent as 'Authorization: Bearer …'. Leave empty to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")

    class Meta:
        model = Provider
        fields = ["name", "base_url", "api_key", "timeout"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["api_key"] = ""
        self._stored_key = self.instance.api_key if self.instance.pk else ""

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_api_key"):
            cleaned["api_key"] = ""
        elif not cleaned.get("api_key"):
            cleaned["api_key"] = self._stored_key
        return cleaned


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "base_url", "api_key_masked", "timeout", "from_env"]
    search_fields = ["name", "base_url"]
    readonly_fields = ["api_key_masked", "from_env", "created", "updated"]
    fields = ["name", "base_url", "api_key_masked", "api_key", "clear_api_key", "timeout", "from_env"]

    @admin.display(description="API key")
    def api_key_masked(self, obj: Provider) -> str:
        return mask_key(obj.api_key)


class ModelConfigForm(forms.ModelForm):
    class Meta:
        model = ModelConfig
        fields = "__all__"
        widgets = {
            "stop": forms.Textarea(attrs={"rows": 2}),
            "logit_bias": forms.Textarea(attrs={"rows": 2}),
        }

    def clean_stop(self):
        return self.cleaned_data.get("stop") or []

    def clean_logit_bias(self):
        return self.cleaned_data.get("logit_bias") or {}


@admin.register(ModelConfig)
class ModelConfigAdmin(admin.ModelAdmin):
    form = ModelConfigForm
    list_display = ["display_name", "provider", "model", "endpoint", "enabled", "is_default"]
    list_editable = ["enabled"]
    list_filter = ["enabled", "endpoint", "provider"]
    list_select_related = ["provider"]
    search_fields = ["display_name", "model"]
    fieldsets = [
        (None, {"fields": ["display_name", "provider", "model", "endpoint", "enabled", "is_default"]}),
        (
            "Request parameters",
            {
                "description": "Leave a parameter empty to use the server's default. Names and ranges are the API's.",
                "fields": [
                    "temperature",
                    "top_p",
                    "max_tokens",
                    "presence_penalty",
                    "frequency_penalty",
                    "stop",
                    "logit_bias",
                ],
            },
        ),
        ("Prompt", {"fields": ["system_prompt"]}),
    ]

    def save_model(self, request, obj: ModelConfig, form, change: bool) -> None:
        with transaction.atomic():
            if obj.is_default:
                # Exactly one default: choosing this one unsets the previous.
                ModelConfig.objects.exclude(pk=obj.pk).filter(is_default=True).update(is_default=False)
            super().save_model(request, obj, form, change)


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["role", "status", "author", "content", "created"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "model_config", "message_count", "updated", "created"]
    list_filter = ["model_config", "updated"]
    search_fields = ["title", "owner__username", "owner__email"]
    date_hierarchy = "created"
    list_select_related = ["owner", "model_config"]
    raw_id_fields = ["owner"]
    readonly_fields = ["id", "created", "updated"]
    inlines = [MessageInline]

    def get_queryset(self, request):
        # Staff who are not superusers see only what the site would show them.
        return visible_in_admin(request, super().get_queryset(request)).annotate(message_count=Count("messages"))

    @admin.display(description="Messages", ordering="message_count")
    def message_count(self, obj) -> int:
        return obj.message_count


def visible_in_admin(request, queryset, path: str = ""):
    """Everything for a superuser; for other staff, only rows of conversations they may see."""
    if request.user.is_superuser:
        return queryset
    visible = Conversation.objects.visible_to(request.user).values("pk")
    return queryset.filter(**{f"{path}pk__in" if path else "pk__in": visible})


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "role", "status", "author", "model_name", "completion_tokens", "created"]
    list_filter = ["role", "status", "finish_reason", "created"]
    search_fields = ["content", "conversation__title", "author__username"]
    date_hierarchy = "created"
    list_select_related = ["conversation", "author"]
    raw_id_fields = ["conversation", "author"]
    readonly_fields = ["created", "updated"]

    def get_queryset(self, request):
        return visible_in_admin(request, super().get_queryset(request), "conversation__")


class TeamMembershipInline(admin.TabularInline):
    model = TeamMembership
    fields = ["user", "role", "created"]
    readonly_fields = ["created"]
    raw_id_fields = ["user"]
    extra = 1


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "member_count", "created"]
    search_fields = ["name", "memberships__user__username"]
    inlines = [TeamMembershipInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    @admin.display(description="Members", ordering="member_count")
    def member_count(self, obj) -> int:
        return obj.member_count


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    list_display = ["conversation", "user", "team", "role", "created"]
    list_filter = ["role", "team"]
    search_fields = ["conversation__title", "user__username", "team__name"]
    list_select_related = ["conversation", "user", "team"]
    raw_id_fields = ["conversation", "user"]

    def get_queryset(self, request):
        return visible_in_admin(request, super().get_queryset(request), "conversation__")


@admin.register(PublicLink)
class PublicLinkAdmin(admin.ModelAdmin):
    list_display = ["conversation", "kind", "audience", "protected", "expires_at", "created"]
    list_filter = ["kind", "audience"]
    search_fields = ["conversation__title"]
    list_select_related = ["conversation"]
    raw_id_fields = ["conversation"]
    # The token is the link itself and the password is a hash: neither is shown or edited here.
    fields = ["conversation", "kind", "audience", "expires_at", "title", "snapshot_at", "created"]
    readonly_fields = ["title", "snapshot_at", "created"]

    def get_queryset(self, request):
        return visible_in_admin(request, super().get_queryset(request), "conversation__")

    def has_add_permission(self, request) -> bool:
        return False  # links are made by the owner from the Share dialog

    @admin.display(boolean=True, description="Password")
    def protected(self, obj: PublicLink) -> bool:
        return obj.has_password


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "public_links_enabled"]

    def has_add_permission(self, request) -> bool:
        return not SiteSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        # One row: go straight to it.
        settings_row = SiteSettings.objects.get_or_create(pk=1)[0]
        return redirect("admin:conversations_sitesettings_change", settings_row.pk)

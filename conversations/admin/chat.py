"""The admin for conversations and messages.

Staff who are not superusers see only the conversations the site would show them, and their messages,
read-only (access.py); a conversation's own settings (its system prompt and temperature) only where they
may write, as the site shows its Settings panel. A message's html is never edited: it is rendered from
the content whenever a superuser saves one.
"""

from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from .. import permissions, services
from ..models import Conversation, Message
from .access import ReadOnlyUnlessSuperuser, visible_in_admin


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
class ConversationAdmin(ReadOnlyUnlessSuperuser, admin.ModelAdmin):
    list_display = ["__str__", "owner", "model_config", "message_count", "updated", "created"]
    list_filter = ["model_config", "updated"]
    search_fields = ["title", "owner__username", "owner__email"]
    date_hierarchy = "created"
    list_select_related = ["owner", "model_config"]
    raw_id_fields = ["owner"]
    readonly_fields = ["id", "created", "updated"]
    inlines = [MessageInline]

    def get_queryset(self, request):
        return visible_in_admin(request, super().get_queryset(request)).annotate(message_count=Count("messages"))

    def get_exclude(self, request, obj=None):
        # A viewer has no Settings panel on the site, so no system prompt here either.
        if obj is not None and not request.user.is_superuser:
            role = permissions.role_of(request.user, obj)
            if not permissions.allows(role, permissions.Action.SEND):
                return ["temperature", "system_prompt"]
        return super().get_exclude(request, obj)

    @admin.display(description=_("Messages"), ordering="message_count")
    def message_count(self, obj) -> int:
        return obj.message_count


@admin.register(Message)
class MessageAdmin(ReadOnlyUnlessSuperuser, admin.ModelAdmin):
    list_display = ["id", "conversation", "role", "status", "author", "model_name", "completion_tokens", "created"]
    list_filter = ["role", "status", "finish_reason", "created"]
    search_fields = ["content", "conversation__title", "author__username"]
    date_hierarchy = "created"
    list_select_related = ["conversation", "author"]
    raw_id_fields = ["conversation", "author"]
    # html is derived from the content (and shown unescaped on the conversation's page): never a form field.
    readonly_fields = ["html", "created", "updated"]

    def get_queryset(self, request):
        return visible_in_admin(request, super().get_queryset(request), "conversation__")

    def save_model(self, request, obj, form, change):
        obj.html = services.conversations.stored_html(role=obj.role, content=obj.content)
        super().save_model(request, obj, form, change)

"""The admin for conversations and messages. Staff who are not superusers see only what the site would show them."""

from django.contrib import admin
from django.db.models import Count

from ..models import Conversation, Message


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

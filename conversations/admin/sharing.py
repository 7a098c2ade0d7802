"""The admin for shares, public links and the site-wide settings (public links on or off).

Staff who are not superusers see the shares and links of conversations they own, as the Share dialog
shows them to their owner and to no one else, read-only (access.py): sharing and links are made from
that dialog, where only the owner may, and only with teammates. Site settings are configuration: they
follow the permissions given.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.utils.translation import gettext_lazy as _

from ..models import PublicLink, Share, SiteSettings
from ..permissions import Action
from .access import ReadOnlyUnlessSuperuser, visible_in_admin


@admin.register(Share)
class ShareAdmin(ReadOnlyUnlessSuperuser, admin.ModelAdmin):
    list_display = ["conversation", "user", "team", "role", "created"]
    # Only the teams of the shares listed: the filter names no team a staff member may not see.
    list_filter = ["role", ("team", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["conversation__title", "user__username", "team__name"]
    list_select_related = ["conversation", "user", "team"]
    raw_id_fields = ["conversation", "user"]

    def get_queryset(self, request):
        return visible_in_admin(request, super().get_queryset(request), "conversation__", Action.SHARE)


@admin.register(PublicLink)
class PublicLinkAdmin(ReadOnlyUnlessSuperuser, admin.ModelAdmin):
    list_display = ["conversation", "kind", "audience", "protected", "expires_at", "created"]
    list_filter = ["kind", "audience"]
    search_fields = ["conversation__title"]
    list_select_related = ["conversation"]
    # The token is the link itself and the password is a hash: neither is shown or edited here. The
    # conversation is the one the link was made for (its snapshot is of that one): it never changes.
    fields = ["conversation", "kind", "audience", "expires_at", "title", "snapshot_at", "created"]
    readonly_fields = ["conversation", "title", "snapshot_at", "created"]

    def get_queryset(self, request):
        return visible_in_admin(request, super().get_queryset(request), "conversation__", Action.PUBLIC_LINK)

    def has_add_permission(self, request) -> bool:
        return False  # links are made by the owner from the Share dialog

    @admin.display(boolean=True, description=_("Password"))
    def protected(self, obj: PublicLink) -> bool:
        return obj.has_password


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "public_links_enabled", "titles_by_model", "title_model"]

    def has_add_permission(self, request) -> bool:
        return super().has_add_permission(request) and not SiteSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        # One row: go straight to it (made with its defaults, which change nothing, for those who may see it).
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        settings_row = SiteSettings.objects.get_or_create(pk=1)[0]
        return redirect("admin:conversations_sitesettings_change", settings_row.pk)

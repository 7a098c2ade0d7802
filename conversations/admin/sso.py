"""The admin for single sign-on links: which person at which provider is which account.

Deleting a link makes that person's next sign-in look for an account again (by a verified email
address, else a new one): how an admin moves a person to another account.
"""

from django.contrib import admin

from ..models import ExternalIdentity
from .access import ReadOnlyUnlessSuperuser


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(ReadOnlyUnlessSuperuser, admin.ModelAdmin):
    list_display = ["user", "subject", "issuer", "created", "last_sign_in"]
    list_filter = ["issuer"]
    search_fields = ["user__username", "user__email", "subject"]
    raw_id_fields = ["user"]
    readonly_fields = ["created", "last_sign_in"]

    def has_add_permission(self, request) -> bool:
        return False  # links are made by signing in

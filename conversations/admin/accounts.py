"""The admin for people's profiles and account invitations.

An invitation made here is made by services.accounts, like one from a team page: the admin chooses the team
(or none) and an address; the link is emailed to it, or (no address) shown once in the confirmation message.
Invitations are never edited (their token is not kept), only revoked.
"""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import selectors, services
from ..emails import invitation_link, send_account_invitation
from ..models import AccountInvitation, Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "display_name", "language", "theme"]
    search_fields = ["user__username", "display_name"]
    raw_id_fields = ["user"]


class AccountInvitationAddForm(forms.ModelForm):
    class Meta:
        model = AccountInvitation
        fields = ["team", "email"]


@admin.register(AccountInvitation)
class AccountInvitationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "team", "invited_by", "created", "expires", "state"]
    list_filter = ["team"]
    search_fields = ["email", "team__name", "invited_by__username"]
    readonly_fields = ["team", "email", "invited_by", "created", "expires", "accepted_at", "accepted_by", "revoked_at"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = AccountInvitationAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return ["team", "email"] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False  # nothing to edit: revoke instead

    def save_model(self, request, obj, form, change):
        invitation, token = services.accounts.account_invitation_create(
            by=request.user, team=form.cleaned_data["team"], email=form.cleaned_data["email"]
        )
        obj.pk = invitation.pk  # the admin's "added" message and redirect name the row the service made
        link = invitation_link(request, token)
        if invitation.email:
            inviter = selectors.accounts.display_name_of(request.user)
            send_account_invitation(invitation=invitation, link=link, inviter_name=inviter)
            self.message_user(request, _("The invitation link was emailed to %(email)s.") % {"email": invitation.email})
        else:
            self.message_user(
                request,
                format_html("{} <code id='admin-invitation-link'>{}</code>", _("The invitation link (shown only now):"), link),
                messages.WARNING,
            )

    def state(self, obj) -> str:
        return obj.state

    @admin.action(description=_("Revoke the selected invitations"), permissions=["add"])
    def revoke(self, request, queryset):
        count = 0
        for invitation in queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True):
            services.accounts.account_invitation_revoke(invitation_id=invitation.pk, by=request.user)
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d invitation revoked.", "%(count)d invitations revoked.", count) % {"count": count},
        )

"""The Share dialog's actions: share, change a role, revoke, and public links. All owner-only, all POST."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from .. import selectors, services
from ..exceptions import InvalidChange
from ..forms import SHORT_ROLES, PublicLinkForm, ShareForm, ShareRoleForm
from ..permissions import Action
from ._common import conversation_or_404, flash_form_errors


def _back_to_dialog(conversation) -> HttpResponse:
    return redirect(reverse("conversation", args=[conversation.id]) + "#share")


@login_required
@require_POST
def share_create(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id, Action.SHARE)
    form = ShareForm(
        request.POST, teammates=selectors.teams.teammates_of(request.user), teams=selectors.teams.teams_of(request.user)
    )
    if not form.is_valid():
        flash_form_errors(request, form)
        return _back_to_dialog(conversation)
    try:
        share = services.sharing.conversation_share(
            conversation=conversation, by=request.user, role=form.cleaned_data["role"], **form.target_ids()
        )
    except InvalidChange as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, _("Shared with %(target)s as %(role)s.") % {"target": share.target, "role": _role_name(share.role)}
        )
    return _back_to_dialog(conversation)


def _role_name(role: str) -> str:
    """"viewer" or "collaborator", in the reader's language (a flash message's wording)."""
    return str(dict(SHORT_ROLES)[role]).lower()


def _share_or_404(conversation, share_id: int):
    share = conversation.shares.select_related("user", "team").filter(pk=share_id).first()
    if share is None:
        raise Http404("No such share.")
    return share


@login_required
@require_POST
def share_change(request: HttpRequest, conversation_id, share_id: int) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id, Action.SHARE)
    share = _share_or_404(conversation, share_id)
    form = ShareRoleForm(request.POST)
    if form.is_valid():
        services.sharing.share_change_role(share=share, role=form.cleaned_data["role"])
        messages.success(
            request, _("%(target)s is now a %(role)s.") % {"target": share.target, "role": _role_name(share.role)}
        )
    else:
        flash_form_errors(request, form)
    return _back_to_dialog(conversation)


@login_required
@require_POST
def share_revoke(request: HttpRequest, conversation_id, share_id: int) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id, Action.SHARE)
    share = _share_or_404(conversation, share_id)
    services.sharing.share_revoke(share=share)
    messages.success(request, _("%(target)s no longer has access.") % {"target": share.target})
    return _back_to_dialog(conversation)


@login_required
@require_POST
def public_link_create(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id, Action.PUBLIC_LINK)
    form = PublicLinkForm(request.POST)
    if not form.is_valid():
        flash_form_errors(request, form)
        return _back_to_dialog(conversation)
    try:
        services.sharing.public_link_create(
            conversation=conversation,
            kind=form.cleaned_data["kind"],
            audience=form.cleaned_data["audience"],
            password=form.cleaned_data["password"],
            expires_at=form.expires_at(),
        )
    except InvalidChange as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Public link created."))
    return _back_to_dialog(conversation)


def _link_or_404(conversation, link_id: int):
    link = conversation.public_links.filter(pk=link_id).first()
    if link is None:
        raise Http404("No such link.")
    link.conversation = conversation
    return link


@login_required
@require_POST
def public_link_refresh(request: HttpRequest, conversation_id, link_id: int) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id, Action.PUBLIC_LINK)
    services.sharing.public_link_refresh(link=_link_or_404(conversation, link_id))
    messages.success(request, _("The link now shows the conversation as it is."))
    return _back_to_dialog(conversation)


@login_required
@require_POST
def public_link_delete(request: HttpRequest, conversation_id, link_id: int) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id, Action.PUBLIC_LINK)
    services.sharing.public_link_delete(link=_link_or_404(conversation, link_id))
    messages.success(request, _("Public link deleted; it no longer opens."))
    return _back_to_dialog(conversation)

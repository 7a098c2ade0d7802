"""The sidebar: its next pages as the list is scrolled, pinning, archiving, the Archived page, and acting on
several conversations at once. Thin: read through selectors.sidebar, write through services.conversations."""

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from .. import selectors, services
from ..forms import BulkChangeForm
from ..permissions import Action
from ..selectors.sidebar import ARCHIVED, OWN, SHARED, BadCursor, Cursor
from ._common import conversation_or_404, sidebar_context, sidebar_zone


@login_required
@require_GET
def sidebar_more(request: HttpRequest) -> HttpResponse:
    """The next page of a sidebar list (`?list=own|shared&before=<cursor>`), as JSON: `html` (its items,
    a date heading only where a new group starts) and `more` (the next page's URL, null after the last)."""
    which = request.GET.get("list", OWN)
    if which not in (OWN, SHARED):
        return HttpResponseBadRequest("Unknown list.")
    try:
        before = Cursor.parse(request.GET.get("before", ""))
    except BadCursor:
        return HttpResponseBadRequest("Bad cursor.")
    zone = sidebar_zone(request)
    page = selectors.sidebar.sidebar_page(request.user, which, before=before, zone=zone)
    after_group, _label = selectors.sidebar.date_group(before.updated, today=timezone.localdate(timezone=zone), zone=zone)
    html = render_to_string(
        "conversations/_sidebar_items.html",
        {"rows": page.rows, "selectable": which == OWN, "after_group": after_group},
        request=request,
    )
    more = _more_url(which, page.next_cursor)
    response = JsonResponse({"html": html, "more": more})
    response["Cache-Control"] = "private, no-store"
    return response


def _more_url(which: str, cursor: Cursor | None) -> str | None:
    from urllib.parse import urlencode

    from django.urls import reverse

    return f"{reverse('sidebar_more')}?{urlencode({'list': which, 'before': str(cursor)})}" if cursor else None


@login_required
@require_GET
def archived_list(request: HttpRequest) -> HttpResponse:
    """Your archived conversations, newest activity first, a page at a time (`?before=<cursor>`)."""
    try:
        before = Cursor.parse(request.GET["before"]) if request.GET.get("before") else None
    except BadCursor:
        return HttpResponseBadRequest("Bad cursor.")
    zone = sidebar_zone(request)
    page = selectors.sidebar.sidebar_page(request.user, ARCHIVED, before=before, zone=zone)
    context = {**sidebar_context(request), "archived": page, "next_cursor": str(page.next_cursor or "")}
    return render(request, "conversations/archived.html", context)


@login_required
@require_POST
def conversation_pin(request: HttpRequest, conversation_id) -> HttpResponse:
    """Pin (`pinned=1`) to the top of your sidebar, or unpin (`pinned=0`). Owner only."""
    conversation = conversation_or_404(request, conversation_id, Action.ORGANISE)
    services.conversations.conversation_pin(conversation=conversation, pinned=request.POST.get("pinned") == "1")
    return redirect("conversation", conversation_id=conversation.id)


@login_required
@require_POST
def conversation_archive(request: HttpRequest, conversation_id) -> HttpResponse:
    """Archive (`archived=1`: out of the sidebar, into Archived) or bring back (`archived=0`). Owner only."""
    conversation = conversation_or_404(request, conversation_id, Action.ORGANISE)
    archived = request.POST.get("archived") == "1"
    services.conversations.conversation_archive(conversation=conversation, archived=archived)
    if archived:
        flash.success(request, _("Archived. It is still here, and listed under Archived."))
    return redirect("conversation", conversation_id=conversation.id)


@login_required
@require_POST
def sidebar_bulk(request: HttpRequest) -> HttpResponse:
    """Archive, unarchive or delete the conversations ticked (`ids`). Only your own are changed: ids of
    conversations you do not own are ignored, and the message says how many were not changed."""
    form = BulkChangeForm(request.POST)
    if not form.is_valid():
        flash.error(request, _("Choose conversations and what to do with them."))
        return redirect(_back(request))
    ids, action = form.cleaned_data["ids"], form.cleaned_data["action"]
    changed = services.conversations.conversations_bulk_change(user=request.user, conversation_ids=ids, action=action)
    done = {
        "archive": ngettext("%(count)d conversation archived.", "%(count)d conversations archived.", changed),
        "unarchive": ngettext("%(count)d conversation unarchived.", "%(count)d conversations unarchived.", changed),
        "delete": ngettext("%(count)d conversation deleted.", "%(count)d conversations deleted.", changed),
    }[action]
    flash.success(request, done % {"count": changed})
    if changed < len(ids):
        skipped = len(ids) - changed
        flash.warning(
            request,
            ngettext(
                "%(count)d conversation was left as it was: only its owner can do that.",
                "%(count)d conversations were left as they were: only their owners can do that.",
                skipped,
            )
            % {"count": skipped},
        )
    if action == "delete" and form.cleaned_data["next"].startswith("/c/"):
        return redirect("home")  # the page it came from may be one of those deleted
    return redirect(_back(request))


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "/"

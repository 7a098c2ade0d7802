"""Public links: /s/<token>/ shows a conversation read-only, without an account unless the owner asked for one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import clients, selectors, services
from ..exceptions import ChatError, PublicLinkNotFound, TooManyAttempts
from ..forms import LinkPasswordForm
from ..models import PublicLink


def _private(response: HttpResponse) -> HttpResponse:
    # Not for search engines or caches, and the token never leaves for another site in a Referer header.
    # Not no-referrer: browsers then send "Origin: null" with the page's forms, which CSRF refuses.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "same-origin"
    return response


@require_http_methods(["GET", "POST"])
def public_link(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = selectors.sharing.public_link_for(token)
    except PublicLinkNotFound as exc:
        if exc.expired:
            return _private(render(request, "conversations/public_gone.html", status=410))
        raise Http404(exc.message) from None
    gate = selectors.sharing.public_link_gate(link, request.user, request.session)
    if gate == "login":
        return redirect_to_login(request.get_full_path())
    if gate == "password":
        return _password_page(request, link)
    if request.method == "POST":
        return redirect("public_link", token=token)
    live = link.kind == PublicLink.Kind.LIVE
    tree = selectors.conversations.conversation_tree(link.conversation_id) if live else None
    rows = selectors.sharing.public_link_rows(link, tree=tree)
    context = {
        "link": link,
        "title": str(link.conversation) if live else link.title or _("Shared conversation"),
        "message_list": rows,  # not "messages": that is the flash messages' name in templates
        "live": live,
        "since": selectors.conversations.resume_from(tree, rows) if live else 0,
        "newest": selectors.conversations.newest_message(tree) if live else 0,
    }
    return _private(render(request, "conversations/public.html", context))


def _password_page(request: HttpRequest, link: PublicLink) -> HttpResponse:
    """Ask for the link's password; a right one unlocks the link for this browser session."""
    form = LinkPasswordForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        address = clients.request_address(request)
        try:
            unlocked = services.sharing.public_link_unlock(link=link, password=form.cleaned_data["password"], address=address)
        except TooManyAttempts as exc:
            context = {"form": LinkPasswordForm(), "refusal": exc.message}
            return _private(render(request, "conversations/public_password.html", context, status=429))
        if unlocked:
            request.session[selectors.sharing.link_unlock_key(link)] = selectors.sharing.link_unlock_value(link)
            return redirect("public_link", token=link.token)
        form.add_error("password", _("That is not the password."))
    status = 403 if request.method == "POST" else 200
    return _private(render(request, "conversations/public_password.html", {"form": form}, status=status))


@require_GET
def public_link_message(request: HttpRequest, token: str, message_id: int) -> HttpResponse:
    """One message of a live link's conversation, for a page whose frame was too big to carry its text."""
    try:
        link = selectors.sharing.public_link_for(token)
    except PublicLinkNotFound as exc:
        raise Http404(exc.message) from None
    gate = selectors.sharing.public_link_gate(link, request.user, request.session)
    if link.kind != PublicLink.Kind.LIVE or gate is not None:
        raise Http404("No such message.")
    payload = selectors.conversations.message_payload_of(message_id, conversation_id=link.conversation_id)
    if payload is None:
        raise Http404("No such message.")
    return _private(JsonResponse(payload))


@login_required
@require_POST
def public_link_continue(request: HttpRequest, token: str) -> HttpResponse:
    """Copy what the link shows into a new conversation this person owns."""
    try:
        link = selectors.sharing.public_link_for(token)
    except PublicLinkNotFound as exc:
        raise Http404(exc.message) from None
    if selectors.sharing.public_link_gate(link, request.user, request.session) is not None:
        return redirect("public_link", token=token)
    title = str(link.conversation) if link.kind == PublicLink.Kind.LIVE else link.title
    rows = selectors.sharing.public_link_rows(link)
    try:
        conversation = services.conversations.conversation_copy(owner=request.user, title=title, rows=rows)
    except ChatError as exc:  # too many new conversations this hour
        messages.error(request, exc.message)
        return redirect("public_link", token=token)
    return redirect("conversation", conversation_id=conversation.id)

"""Public links: /s/<token>/ shows a conversation read-only, without an account unless the owner asked for one."""

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.contrib.auth.hashers import check_password
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .. import selectors, services
from ..exceptions import PublicLinkNotFound
from ..forms import LinkPasswordForm
from ..models import PublicLink


# Guessing a link's password: this many wrong tries from one address, then a pause (per process's cache).
PASSWORD_ATTEMPTS = 10
PASSWORD_LOCKOUT = 600


def _private(response: HttpResponse) -> HttpResponse:
    # Not for search engines or caches, and the token never leaves in a Referer header.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_http_methods(["GET", "POST"])
def public_link(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = selectors.public_link_for(token)
    except PublicLinkNotFound as exc:
        if exc.expired:
            return _private(render(request, "conversations/public_gone.html", status=410))
        raise Http404(exc.message) from None
    gate = selectors.public_link_gate(link, request.user, request.session)
    if gate == "login":
        return redirect_to_login(request.get_full_path())
    if gate == "password":
        form = LinkPasswordForm(request.POST if request.method == "POST" else None)
        failures_key = f"public-link-failures:{link.pk}:{request.META.get('REMOTE_ADDR', '')}"
        if request.method == "POST" and cache.get(failures_key, 0) >= PASSWORD_ATTEMPTS:
            context = {"form": LinkPasswordForm(), "refusal": f"Too many wrong passwords. Try again in {PASSWORD_LOCKOUT // 60} minutes."}
            return _private(render(request, "conversations/public_password.html", context, status=429))
        if form.is_valid():
            if check_password(form.cleaned_data["password"], link.password):
                request.session[selectors.link_unlock_key(link)] = selectors.link_unlock_value(link)
                cache.delete(failures_key)
                return redirect("public_link", token=token)
            cache.add(failures_key, 0, PASSWORD_LOCKOUT)
            cache.incr(failures_key)
            form.add_error("password", "That is not the password.")
        status = 403 if request.method == "POST" else 200
        return _private(render(request, "conversations/public_password.html", {"form": form}, status=status))
    if request.method == "POST":
        return redirect("public_link", token=token)
    live = link.kind == PublicLink.Kind.LIVE
    rows = selectors.public_link_rows(link)
    context = {
        "link": link,
        "title": str(link.conversation) if live else link.title or "Shared conversation",
        "message_list": rows,  # not "messages": that is the flash messages' name in templates
        "live": live,
        "since": selectors.resume_from(rows) if live else 0,
    }
    return _private(render(request, "conversations/public.html", context))


@login_required
@require_POST
def public_link_continue(request: HttpRequest, token: str) -> HttpResponse:
    """Copy what the link shows into a new conversation this person owns."""
    try:
        link = selectors.public_link_for(token)
    except PublicLinkNotFound as exc:
        raise Http404(exc.message) from None
    if selectors.public_link_gate(link, request.user, request.session) is not None:
        return redirect("public_link", token=token)
    title = str(link.conversation) if link.kind == PublicLink.Kind.LIVE else link.title
    conversation = services.conversation_copy(owner=request.user, title=title, rows=selectors.public_link_rows(link))
    return redirect("conversation", conversation_id=conversation.id)

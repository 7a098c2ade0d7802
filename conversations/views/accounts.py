"""A person's own account: their profile page (name, language, theme, password), the language switcher anyone
may use, account invitations (made and revoked by a team's owners, opened by the person invited), and the
password reset that Django's views do (with a limit per address)."""

from django.contrib import messages
from django.contrib.auth import login, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from .. import selectors, services, throttle
from ..clients import request_address
from ..emails import invitation_link, send_account_invitation
from ..exceptions import AccountInvitationGone, Forbidden, InvalidChange, TooManyInvitations
from ..forms import AccountInvitationForm, InvitedAccountForm, LanguageForm, ProfileForm
from ..middleware import remember_language
from ._common import sidebar_context
from .teams import _team_or_404, team_page_context

# Posts one address may make to these forms per hour: enough for typos, too few to guess at anything.
INVITATION_POSTS_PER_HOUR = 20
PASSWORD_RESETS_PER_HOUR = 10


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return target if allowed else fallback


@require_POST
def language_switch(request: HttpRequest) -> HttpResponse:
    """Anyone: the cookie; a logged-in person: their profile too (which then wins on every browser they use)."""
    form = LanguageForm(request.POST)
    response = redirect(_safe_next(request, reverse("home") if request.user.is_authenticated else reverse("login")))
    if not form.is_valid():
        return response
    language = form.cleaned_data["language"]
    if request.user.is_authenticated:
        services.accounts.profile_language_set(user=request.user, language=language)
    return remember_language(response, language)


def _profile_initial(profile) -> dict:
    return {"display_name": profile.display_name, "language": profile.language, "theme": profile.theme}


def _profile_page(request: HttpRequest, *, profile_form, password_form, status: int = 200) -> HttpResponse:
    context = {**sidebar_context(request), "profile_form": profile_form, "password_form": password_form}
    return render(request, "conversations/profile.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    current = selectors.accounts.profile_of(request.user)
    form = ProfileForm(request.POST if request.method == "POST" else None, initial=_profile_initial(current))
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.accounts.profile_update(user=request.user, **form.cleaned_data)
        except InvalidChange as exc:
            form.add_error(None, exc.message)
        else:
            response = redirect("profile")
            # Worded in the language just chosen: the next page is shown in it.
            with translation.override(saved.language or translation.get_language()):
                messages.success(request, _("Your profile is saved."))
            return remember_language(response, saved.language) if saved.language != current.language else response
    return _profile_page(
        request, profile_form=form, password_form=PasswordChangeForm(request.user), status=400 if form.errors else 200
    )


@login_required
@require_POST
def password_change(request: HttpRequest) -> HttpResponse:
    """Django's PasswordChangeForm; this session stays logged in, the person's other sessions end."""
    form = PasswordChangeForm(request.user, request.POST)
    if form.is_valid():
        user = form.save()
        update_session_auth_hash(request, user)
        messages.success(request, _("Your password is changed."))
        return redirect("profile")
    profile_form = ProfileForm(initial=_profile_initial(selectors.accounts.profile_of(request.user)))
    return _profile_page(request, profile_form=profile_form, password_form=form, status=400)


# --- account invitations ------------------------------------------------------------------------


@login_required
@require_POST
def account_invitation_create(request: HttpRequest, team_id: int) -> HttpResponse:
    """A team owner invites someone without an account: by email (the link is sent), or a link shown once, here,
    for them to pass on (never stored, so never shown again)."""
    team = _team_or_404(request, team_id)
    form = AccountInvitationForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter a valid email address, or leave it empty for a link."))
        return redirect("team", team_id=team.id)
    email = form.cleaned_data["email"]
    try:
        invitation, token = services.accounts.account_invitation_create(by=request.user, team=team, email=email)
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    except TooManyInvitations as exc:
        messages.error(request, exc.message)
        return redirect("team", team_id=team.id)
    link = invitation_link(request, token)
    if email:
        send_account_invitation(
            invitation=invitation, link=link, inviter_name=selectors.accounts.display_name_of(request.user)
        )
        messages.success(request, _("An invitation was sent to %(email)s.") % {"email": email})
        return redirect("team", team_id=team.id)
    context = {**team_page_context(request, team), "new_invitation_link": link}
    return render(request, "conversations/team.html", context, status=201)


@login_required
@require_POST
def account_invitation_revoke(request: HttpRequest, team_id: int, invitation_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    try:
        services.accounts.account_invitation_revoke(invitation_id=invitation_id, by=request.user)
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    except InvalidChange as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The invitation is revoked: its link no longer works."))
    return redirect("team", team_id=team.id)


def _gone(request: HttpRequest, state: str) -> HttpResponse:
    return render(
        request, "conversations/invitation_gone.html", {"state": state}, status=404 if state == "unknown" else 410
    )


@never_cache  # the page's address is the token: no cache or proxy keeps it
@require_http_methods(["GET", "POST"])
def account_invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The link's page. Someone logged out makes their account here; someone logged in may join the team with
    the account they have (or log out first to make another)."""
    invitation = selectors.accounts.account_invitation_for(token)
    if invitation is None or invitation.state != "pending":
        return _gone(request, invitation.state if invitation else "unknown")
    if request.method == "POST":
        try:
            throttle.address_check(
                action="invitation", address=request_address(request), limit=INVITATION_POSTS_PER_HOUR, seconds=3600
            )
        except throttle.RateLimited as exc:
            context = {"invitation": invitation, "refused": exc.message}
            return render(request, "conversations/invitation.html", context, status=429)
    if request.user.is_authenticated:
        return _join_with_account(request, invitation, token)
    suggested = invitation.email.partition("@")[0] if invitation.email else ""
    form = InvitedAccountForm(request.POST if request.method == "POST" else None, initial={"username": suggested})
    if form.is_valid():
        try:
            user = services.accounts.account_invitation_accept(
                token=token,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                display_name=form.cleaned_data["display_name"],
            )
        except AccountInvitationGone as exc:
            return _gone(request, exc.state)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return _welcome(request, invitation)
    context = {"invitation": invitation, "form": form}
    return render(request, "conversations/invitation.html", context, status=400 if form.errors else 200)


def _join_with_account(request: HttpRequest, invitation, token: str) -> HttpResponse:
    is_member = invitation.team is not None and invitation.team.memberships.filter(user=request.user).exists()
    if request.method == "POST" and invitation.team is not None and not is_member:
        try:
            services.accounts.account_invitation_join(token=token, user=request.user)
        except AccountInvitationGone as exc:
            return _gone(request, exc.state)
        return _welcome(request, invitation)
    return render(request, "conversations/invitation.html", {"invitation": invitation, "is_member": is_member})


def _welcome(request: HttpRequest, invitation) -> HttpResponse:
    if invitation.team is None:
        messages.success(request, _("Welcome! Your account is ready."))
        return redirect("home")
    messages.success(request, _("Welcome to %(team)s!") % {"team": invitation.team.name})
    return redirect("team", team_id=invitation.team_id)


# --- password reset -----------------------------------------------------------------------------


class PasswordResetView(auth_views.PasswordResetView):
    """Django's: the same answer whether or not the address has an account (nothing to learn from it), and at
    most PASSWORD_RESETS_PER_HOUR requests from one address, so it cannot be used to flood an inbox."""

    def form_valid(self, form):
        try:
            throttle.address_check(
                action="password_reset", address=request_address(self.request), limit=PASSWORD_RESETS_PER_HOUR, seconds=3600
            )
        except throttle.RateLimited as exc:
            form.add_error(None, exc.message)
            response = self.form_invalid(form)
            response.status_code = 429
            return response
        return super().form_valid(form)

"""The team pages: your teams and the invitations waiting for your answer, and for a team owner, inviting
and removing people."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from .. import selectors, services
from ..exceptions import Forbidden, InvalidChange, InvitationNotFound, TeamNotFound, TooManyInvitations
from ..forms import AccountInvitationForm, TeamCreateForm, TeamInviteForm
from ._common import sidebar_context


def _team_or_404(request: HttpRequest, team_id: int):
    try:
        return selectors.teams.team_for(request.user, team_id)
    except TeamNotFound:
        raise Http404("No such team.") from None


@login_required
@require_http_methods(["GET", "POST"])
def team_list(request: HttpRequest) -> HttpResponse:
    form = TeamCreateForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            team = services.teams.team_create(name=form.cleaned_data["name"], owner=request.user)
        except InvalidChange as exc:
            form.add_error("name", exc.message)
        else:
            return redirect("team", team_id=team.id)
    context = {
        **sidebar_context(request),
        "teams": selectors.teams.teams_of(request.user),
        "invitations": selectors.teams.open_invitations_for(request.user),
        "blocked_teams": selectors.teams.blocked_teams_of(request.user),
        "form": form,
    }
    return render(request, "conversations/teams.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET"])
def team_detail(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    return render(request, "conversations/team.html", team_page_context(request, team))


def team_page_context(request: HttpRequest, team) -> dict:
    """The team page: its members, and for its owners the invitation forms and the links not used yet."""
    return {
        **sidebar_context(request),
        "team": team,
        "memberships": selectors.teams.team_member_rows(team),
        "form": TeamInviteForm(),
        "account_invitation_form": AccountInvitationForm(),
        "account_invitations": selectors.accounts.pending_account_invitations(team) if team.is_owner else [],
        "invitation_days": int(settings.CHAT_INVITATION_DAYS),
    }


@login_required
@require_POST
def team_invite(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    form = TeamInviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Enter a username."))
        return redirect("team", team_id=team.id)
    username = form.cleaned_data["username"].strip()
    try:
        membership = services.teams.team_invite(team=team, by=request.user, username=username, role=form.cleaned_data["role"])
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    except (InvalidChange, TooManyInvitations) as exc:
        messages.error(request, exc.message)
    else:
        if membership is not None:  # a member already: the page lists them, so naming them tells nothing new
            messages.success(
                request,
                _("%(username)s is in %(team)s as %(role)s.")
                % {"username": username, "team": team.name, "role": membership.role},
            )
        else:
            # Worded alike for every name: whether it exists, or the invitation reached them, is theirs to tell.
            messages.success(
                request,
                _("If someone called %(username)s is on this site, they have been invited. They join %(team)s once they accept.")
                % {"username": username, "team": team.name},
            )
    return redirect("team", team_id=team.id)


@login_required
@require_POST
def team_member_remove(request: HttpRequest, team_id: int, user_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    try:
        services.teams.team_remove_member(team=team, by=request.user, user_id=user_id)
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    except InvalidChange as exc:
        messages.error(request, exc.message)
        return redirect("team", team_id=team.id)
    if user_id == request.user.pk:
        messages.success(request, _("You left %(team)s.") % {"team": team.name})
        return redirect("teams")
    messages.success(request, _("Removed from the team; their access through it ended."))
    return redirect("team", team_id=team.id)


# --- the invitee's answers ----------------------------------------------------------------------


def _answered(request: HttpRequest, answer, invitation_id: int):
    """What `answer` (a services.teams function taking the invitation) returns; 404 unless it is this person's
    open invitation (answered already, lapsed, or someone else's: all alike)."""
    try:
        return answer(invitation_id=invitation_id, by=request.user)
    except InvitationNotFound:
        raise Http404("No such invitation.") from None


@login_required
@require_POST
def invitation_accept(request: HttpRequest, invitation_id: int) -> HttpResponse:
    membership = _answered(request, services.teams.invitation_accept, invitation_id)
    messages.success(request, _("You joined %(team)s.") % {"team": membership.team.name})
    return redirect("team", team_id=membership.team_id)


@login_required
@require_POST
def invitation_decline(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """Decline; with `block` (the form's other button), block the team as well."""
    if request.POST.get("block"):
        team = _answered(request, services.teams.team_block, invitation_id)
        message = _("You blocked %(team)s: its owners can no longer invite you.")
    else:
        team = _answered(request, services.teams.invitation_decline, invitation_id)
        message = _("You declined the invitation to %(team)s.")
    messages.success(request, message % {"team": team.name})
    return redirect("teams")


@login_required
@require_POST
def team_unblock(request: HttpRequest, team_id: int) -> HttpResponse:
    try:
        team = services.teams.team_unblock(team_id=team_id, by=request.user)
    except TeamNotFound:
        raise Http404("You have not blocked that team.") from None
    messages.success(request, _("You unblocked %(team)s: its owners can invite you again.") % {"team": team.name})
    return redirect("teams")

"""The team pages: your teams, and for a team owner, adding and removing people."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .. import selectors, services
from ..exceptions import Forbidden, InvalidChange, TeamNotFound
from ..forms import TeamCreateForm, TeamMemberForm
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
    context = {**sidebar_context(request), "teams": selectors.teams.teams_of(request.user), "form": form}
    return render(request, "conversations/teams.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET"])
def team_detail(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    context = {
        **sidebar_context(request),
        "team": team,
        "memberships": selectors.teams.team_member_rows(team),
        "form": TeamMemberForm(),
    }
    return render(request, "conversations/team.html", context)


@login_required
@require_POST
def team_member_add(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    form = TeamMemberForm(request.POST)
    if form.is_valid():
        try:
            membership = services.teams.team_add_member(
                team=team, by=request.user, username=form.cleaned_data["username"], role=form.cleaned_data["role"]
            )
        except Forbidden as exc:
            raise PermissionDenied(exc.message) from None
        except InvalidChange as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{membership.user.get_username()} is in {team.name} as {membership.role}.")
    else:
        messages.error(request, "Enter a username.")
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
        messages.success(request, f"You left {team.name}.")
        return redirect("teams")
    messages.success(request, "Removed from the team; their access through it ended.")
    return redirect("team", team_id=team.id)

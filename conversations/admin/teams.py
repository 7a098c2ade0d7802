"""The admin for teams and their members.

Staff who are not superusers see the teams they are in, with their members, as the team page does,
read-only (access.py): people join a team on the team page, by its rules, never by an admin adding
themselves.
"""

from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from .. import selectors
from ..models import Team, TeamMembership
from .access import ReadOnlyUnlessSuperuser


class TeamMembershipInline(ReadOnlyUnlessSuperuser, admin.TabularInline):
    model = TeamMembership
    fields = ["user", "role", "created"]
    readonly_fields = ["created"]
    raw_id_fields = ["user"]
    extra = 1


@admin.register(Team)
class TeamAdmin(ReadOnlyUnlessSuperuser, admin.ModelAdmin):
    list_display = ["name", "member_count", "created"]
    search_fields = ["name", "memberships__user__username"]
    inlines = [TeamMembershipInline]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if not request.user.is_superuser:
            queryset = queryset.filter(pk__in=selectors.teams.team_ids_of(request.user))
        return queryset.annotate(member_count=Count("memberships"))

    @admin.display(description=_("Members"), ordering="member_count")
    def member_count(self, obj) -> int:
        return obj.member_count

"""What staff who are not superusers may do in the admin: the site's access rule, applied to its pages.

The policy (README, "The admin"), whatever model permissions such an account was given:

- Conversations, messages, teams with their members, shares and public links are read-only
  (ReadOnlyUnlessSuperuser), and list only what the site shows that person: the conversations
  they may see (Conversation.objects.visible_to) and their messages, the teams they are in, the
  shares and links of conversations they own (the Share dialog shows them to no one else).
- Presets: the shared ones (no owner) and their own, which they manage with the permissions they
  have; never another person's, and they cannot give a preset to anyone else (presets.py).
- Providers, models, usage records, limits and site settings are the admin's configuration, not
  anyone's conversations: they follow the permissions given.

Why read-only rather than the site's rules again: every one of those rows grants or shows access to
a conversation, and the site already offers each change a person may make (the Share dialog, the
team page, the conversation's own page), through services that check it: teammates only, team
owners only, the owner only. Admin forms that allowed the same would be a second copy of those
rules, to be kept in step with each change to them (to who may join a team, say); read-only has
nothing to keep in step. Superusers keep every power, and are the ones who repair data here.
"""

from ..permissions import Action, conversations_allowing


def visible_in_admin(request, queryset, path: str = "", action: Action = Action.VIEW):
    """Everything for a superuser; for other staff, only rows of conversations where their role allows
    `action` (by default: that they may see). `path` leads from the rows to their conversation."""
    if request.user.is_superuser:
        return queryset
    allowed = conversations_allowing(request.user, action).values("pk")
    return queryset.filter(**{f"{path}pk__in": allowed})


class ReadOnlyUnlessSuperuser:
    """For a ModelAdmin or an inline (before it in the bases): only superusers add, change or delete here.

    Staff with the view (or change) permission see the rows its get_queryset gives them, read-only,
    and no delete action is offered. The superclass's checks still apply to superusers.
    """

    def has_add_permission(self, request, *args) -> bool:  # an inline's takes the parent object too
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)

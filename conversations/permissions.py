"""Who may do what with a conversation. The one table every view, the consumer, exports and the admin read.

A person's role in a conversation comes from the same Share rows that
Conversation.objects.visible_to / writable_by filter on: the owner, else the
strongest share that reaches them (made to them or to one of their teams).
"""

from enum import IntEnum, StrEnum

from django.utils.translation import gettext_lazy as _

from .exceptions import ConversationNotFound, Forbidden
from .models import Conversation, Share, TeamMembership


class Role(IntEnum):
    NONE = 0
    VIEWER = 1
    COLLABORATOR = 2
    OWNER = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Action(StrEnum):
    VIEW = "view"  # the page, the socket, watching replies live
    EXPORT = "export"
    SEND = "send"
    STOP = "stop"
    REGENERATE = "regenerate"
    RENAME = "rename"
    DELETE = "delete"
    ORGANISE = "organise"  # pin to the top of the sidebar, archive (the owner's own sidebar)
    SHARE = "share"  # share, change a role, revoke
    PUBLIC_LINK = "public_link"  # create, refresh, delete public links


REQUIRED_ROLE: dict[Action, Role] = {
    Action.VIEW: Role.VIEWER,
    Action.EXPORT: Role.VIEWER,
    Action.SEND: Role.COLLABORATOR,
    Action.STOP: Role.COLLABORATOR,
    Action.REGENERATE: Role.COLLABORATOR,
    Action.RENAME: Role.OWNER,
    Action.DELETE: Role.OWNER,
    Action.ORGANISE: Role.OWNER,
    Action.SHARE: Role.OWNER,
    Action.PUBLIC_LINK: Role.OWNER,
}


def allows(role: Role, action: Action) -> bool:
    return role >= REQUIRED_ROLE[action]


def check(role: Role, action: Action) -> None:
    """Raise ConversationNotFound for someone who may not even see it (no hint it exists), Forbidden otherwise."""
    if role == Role.NONE:
        raise ConversationNotFound()
    if not allows(role, action):
        raise Forbidden(FORBIDDEN_MESSAGES.get(action))


def conversations_allowing(user, action: Action):
    """The conversations where this person's role allows `action`: the table above as a queryset."""
    required = REQUIRED_ROLE[action]
    if required == Role.OWNER:
        return Conversation.objects.visible_to(user).filter(owner=user)
    if required == Role.COLLABORATOR:
        return Conversation.objects.writable_by(user)
    return Conversation.objects.visible_to(user)


def role_of(user, conversation: Conversation) -> Role:
    """This person's role in the conversation. No query when it came from Conversation.objects.with_access(user)."""
    if not user.is_authenticated:
        return Role.NONE
    if conversation.owner_id == user.pk:
        return Role.OWNER
    collaborating = getattr(conversation, "collaborating", None)
    if collaborating is not None:  # fetched through with_access, so visible
        return Role.COLLABORATOR if collaborating else Role.VIEWER
    roles = set(Share.objects.granting(user).filter(conversation=conversation).values_list("role", flat=True))
    if Share.Role.COLLABORATOR in roles:
        return Role.COLLABORATOR
    return Role.VIEWER if roles else Role.NONE


def role_in(user, conversation_id) -> Role:
    """This person's role in the conversation with this id; Role.NONE when it does not exist for them.

    Runs on every socket connect and access change: the owner costs one small query, anyone else two.
    """
    if not user.is_authenticated:
        return Role.NONE
    owner_id = Conversation.objects.filter(pk=conversation_id).values_list("owner_id", flat=True).first()
    if owner_id is None:
        return Role.NONE
    return role_of(user, Conversation(id=conversation_id, owner_id=owner_id))


def roles_in(conversation_id) -> dict[int, Role] | None:
    """Everyone's role in the conversation by user id (anyone missing has none); None if it does not exist.

    The same rule as role_of (a deactivated account has no role: it can no longer log in),
    for all people at once: when a share or a team changes, each
    process asks this once for all the sockets open on the conversation, not once per socket.
    """
    owner_id = Conversation.objects.filter(pk=conversation_id).values_list("owner_id", flat=True).first()
    if owner_id is None:
        return None
    shares = Share.objects.filter(conversation_id=conversation_id)
    direct = shares.filter(user__isnull=False, user__is_active=True).values_list("user_id", "role")
    through_teams = TeamMembership.objects.filter(team__shares__in=shares, user__is_active=True).values_list(
        "user_id", "team__shares__role"
    )
    roles: dict[int, Role] = {}
    for user_id, share_role in [*direct, *through_teams]:
        role = Role.COLLABORATOR if share_role == Share.Role.COLLABORATOR else Role.VIEWER
        roles[user_id] = max(roles.get(user_id, Role.NONE), role)
    if Conversation.objects.filter(pk=conversation_id, owner__is_active=True).exists():
        roles[owner_id] = Role.OWNER
    return roles


FORBIDDEN_MESSAGES = {
    Action.SEND: _("You can watch this conversation but not write in it."),
    Action.STOP: _("You can watch this conversation but not stop its replies."),
    Action.REGENERATE: _("You can watch this conversation but not regenerate replies."),
    Action.RENAME: _("Only the owner can rename this conversation."),
    Action.DELETE: _("Only the owner can delete this conversation."),
    Action.ORGANISE: _("Only the owner can pin or archive this conversation."),
    Action.SHARE: _("Only the owner can share this conversation."),
    Action.PUBLIC_LINK: _("Only the owner can make public links to this conversation."),
}

"""The app's models, one module per subdomain; every model is re-exported here.

    chat.py       Conversation (visible_to, writable_by: the one access rule's queries), Message
    providers.py  Provider, ModelConfig and their validators
    teams.py      Team, TeamMembership, TeamInvitation (what joining starts with), TeamBlock
    sharing.py    Share, PublicLink, SiteSettings
    presets.py    Preset
    usage.py      UsageRecord, Limit
    imports.py    ImportJob
    sso.py        ExternalIdentity (a person at a single sign-on provider is an account)
    accounts.py   Profile (display name, language, theme), AccountInvitation (a link to make an account)

`from conversations.models import Message` works as it always did; the app
label, table names and migrations are those of the single models.py this was.
"""

from .accounts import AccountInvitation, AccountInvitationQuerySet, Profile, invitation_token_hash, new_invitation_token
from .chat import Conversation, ConversationQuerySet, Message, MessageQuerySet
from .imports import ImportJob
from .presets import Preset, PresetQuerySet
from .providers import (
    RESERVED_HEADERS,
    ModelConfig,
    ModelConfigQuerySet,
    Provider,
    validate_base_url,
    validate_extra_headers,
    validate_logit_bias,
    validate_omit_parameters,
    validate_response_format,
    validate_stop,
)
from .sharing import PublicLink, PublicLinkQuerySet, Share, ShareQuerySet, SiteSettings, new_link_token
from .sso import ExternalIdentity
from .teams import Team, TeamBlock, TeamInvitation, TeamInvitationQuerySet, TeamMembership
from .usage import Limit, UsageRecord

__all__ = [
    "RESERVED_HEADERS",
    "AccountInvitation",
    "AccountInvitationQuerySet",
    "Conversation",
    "ConversationQuerySet",
    "ExternalIdentity",
    "ImportJob",
    "Limit",
    "Message",
    "MessageQuerySet",
    "ModelConfig",
    "ModelConfigQuerySet",
    "Preset",
    "PresetQuerySet",
    "Profile",
    "Provider",
    "PublicLink",
    "PublicLinkQuerySet",
    "Share",
    "ShareQuerySet",
    "SiteSettings",
    "Team",
    "TeamBlock",
    "TeamInvitation",
    "TeamInvitationQuerySet",
    "TeamMembership",
    "UsageRecord",
    "invitation_token_hash",
    "new_invitation_token",
    "new_link_token",
    "validate_base_url",
    "validate_extra_headers",
    "validate_logit_bias",
    "validate_omit_parameters",
    "validate_response_format",
    "validate_stop",
]

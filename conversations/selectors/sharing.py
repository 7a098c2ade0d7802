"""Reads about sharing: a conversation's shares and public links, and what a link's visitor may see."""

from django.utils.crypto import salted_hmac
from django.utils.safestring import mark_safe

from ..exceptions import PublicLinkNotFound
from ..models import Conversation, PublicLink, Share, SiteSettings
from .conversations import message_attributes, message_rows


def share_list(conversation: Conversation) -> list[Share]:
    return list(conversation.shares.select_related("user", "team").order_by("created"))

def public_links_on() -> bool:
    return SiteSettings.current().public_links_enabled


def public_link_list(conversation: Conversation) -> list[PublicLink]:
    return list(conversation.public_links.order_by("created"))


def public_link_for(token: str) -> PublicLink:
    """The usable link with this token; PublicLinkNotFound when deleted, expired or links are off."""
    link = PublicLink.objects.select_related("conversation").filter(token=token).first()
    if link is None or not public_links_on():
        raise PublicLinkNotFound()
    if link.is_expired():
        raise PublicLinkNotFound("This link has expired.", expired=True)
    return link


def public_link_rows(link: PublicLink, *, tree=None) -> list[dict]:
    """What a public link shows: the snapshot (the branch that was current when it was taken), or for a live
    link the conversation's current branch now."""
    if link.kind == PublicLink.Kind.LIVE:
        return message_rows(link.conversation, tree=tree)
    rows = [{**row, "body": mark_safe(row["body"])} for row in link.snapshot]  # stored sanitised
    for row in rows:
        row["attributes"] = message_attributes(row)
    return rows


def public_link_gate(link: PublicLink, user, session) -> str | None:
    """What stands between this visitor and the link: "login", "password", or None (they may look)."""
    if link.audience == PublicLink.Audience.USERS and not user.is_authenticated:
        return "login"
    if link.password and session is not None and session.get(link_unlock_key(link)) == link_unlock_value(link):
        return None
    return "password" if link.password else None


def link_unlock_key(link: PublicLink) -> str:
    return f"public-link-{link.pk}"


def link_unlock_value(link: PublicLink) -> str:
    """Kept in the session once the password was right; changes when the password does."""
    return salted_hmac("public-link-unlock", link.password).hexdigest()[:32]


def live_link_for(token: str, user, session) -> PublicLink | None:
    """The live link whose conversation this visitor's socket may watch now, or None."""
    try:
        link = public_link_for(token)
    except PublicLinkNotFound:
        return None
    if link.kind != PublicLink.Kind.LIVE or public_link_gate(link, user, session) is not None:
        return None
    return link

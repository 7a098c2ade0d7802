"""What the view modules share: the access check for a conversation, the sidebar and chat page context, form errors."""

from urllib.parse import unquote

from django.conf import settings
from django.contrib import messages as flash
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _

from .. import permissions, selectors
from ..exceptions import ConversationNotFound, Forbidden
from ..models import Conversation
from ..permissions import Action


def conversation_or_404(request: HttpRequest, conversation_id, action: Action = Action.VIEW) -> Conversation:
    """The conversation if this person may do `action` in it: 404 if they may not see it, 403 if they may only look."""
    try:
        conversation = selectors.conversations.conversation_for(request.user, conversation_id)
        permissions.check(conversation.role, action)
    except ConversationNotFound:
        raise Http404("No such conversation.") from None
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    return conversation


def sidebar_zone(request: HttpRequest):
    """The time zone the sidebar's date groups use: the browser's (the `tz` cookie sidebar.js sets), else the
    server's (TIME_ZONE) until that cookie arrives. sidebar.js percent-encodes it ("Asia%2FTokyo"), and Django
    hands cookies over as they came."""
    return selectors.sidebar.zone_named(unquote(request.COOKIES.get("tz", "")))


def sidebar_context(request: HttpRequest) -> dict:
    """The sidebar every signed-in page shows: your pinned conversations, the first page of your others and of
    those shared with you (more load as it scrolls: views/sidebar.py), and how many team invitations wait for
    your answer (beside Teams, so that they are noticed). Four queries, however many conversations."""
    zone = sidebar_zone(request)
    return {
        "pinned": selectors.sidebar.pinned_list(request.user),
        "sidebar": selectors.sidebar.sidebar_page(request.user, selectors.sidebar.OWN, zone=zone),
        "shared_sidebar": selectors.sidebar.sidebar_page(request.user, selectors.sidebar.SHARED, zone=zone),
        "invitation_count": selectors.teams.open_invitation_count(request.user),
    }


def chat_page_context(request: HttpRequest, *, model_id: int | None = None, **extra) -> dict:
    """What every chat page shows; the picker selects `model_id` if this person may use it, else their default."""
    choices = selectors.providers.model_choices(request.user)
    current = next((choice for choice in choices if choice.id == model_id), None)
    current = current or next((choice for choice in choices if choice.is_default), None)
    return {
        **sidebar_context(request),
        "model_choices": choices,
        "current_model": current.id if current else None,
        "current_choice": current,
        "demo_only": bool(choices) and choices[0].id is None,
        "no_model": not choices,
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        **extra,
    }


def flash_form_errors(request: HttpRequest, form) -> None:
    """Each of the form's errors as a flash message (forms in dialogs, which redirect back)."""
    for errors in form.errors.values():
        for error in errors:
            flash.error(request, error)


def form_error_summary(form) -> str:
    """The form's errors in one line, each after its field's label."""
    problems = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)  # None for errors of the whole form
        text = " ".join(errors)
        problems.append(f"{field.label or name.capitalize()}: {text}" if field else text)
    return " ".join(problems)


def preset_applied_message(request: HttpRequest, preset, skipped: list[str]) -> None:
    """Say what applying a preset did, and what of it the model did not allow."""
    if skipped:
        flash.warning(
            request, _("Preset “%(preset)s” applied, except %(skipped)s.") % {"preset": preset, "skipped": "; ".join(skipped)}
        )
    else:
        flash.success(request, _("Preset “%(preset)s” applied.") % {"preset": preset})

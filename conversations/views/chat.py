"""The chat pages. Thin: read through selectors, write through services, access through permissions."""

import json

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from .. import permissions, selectors, services, streaming
from ..exceptions import ChatError, ConversationNotFound, Forbidden
from ..forms import SYSTEM_PROMPT_MAX_CHARS, NewConversationForm, PublicLinkForm, RenameConversationForm, ShareForm
from ..models import Conversation, Message, Share
from ..permissions import Action, Role


def conversation_or_404(request: HttpRequest, conversation_id, action: Action = Action.VIEW) -> Conversation:
    """The conversation if this person may do `action` in it: 404 if they may not see it, 403 if they may only look."""
    try:
        conversation = selectors.conversation_for(request.user, conversation_id)
        permissions.check(conversation.role, action)
    except ConversationNotFound:
        raise Http404("No such conversation.") from None
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    return conversation


def sidebar_context(request: HttpRequest) -> dict:
    """The sidebar every signed-in page shows: your conversations, and those shared with you."""
    return {
        "sidebar": selectors.conversation_list_for(request.user),
        "shared_sidebar": selectors.shared_conversation_list_for(request.user),
    }


def _page_context(request: HttpRequest, *, model_id: int | None = None, **extra) -> dict:
    """What every chat page shows; the picker selects `model_id` if this person may use it, else their default."""
    choices = selectors.model_choices(request.user)
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


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    form = NewConversationForm(user=request.user)
    context = _page_context(request, form=form, presets=selectors.preset_choices(request.user))
    return render(request, "conversations/home.html", context)


@login_required
@require_POST
def conversation_new(request: HttpRequest) -> HttpResponse:
    form = NewConversationForm(request.POST, user=request.user)
    if form.is_valid():
        model, preset = form.cleaned_data["model"], form.cleaned_data["preset"]
        start = {
            "owner": request.user,
            "model_config_id": model.id if model else None,
            "content": form.cleaned_data["content"],
        }
        try:
            if preset is None:
                conversation = services.conversation_create(**start)
            else:
                conversation, skipped = services.conversation_create_from_preset(preset=preset, **start)
                preset_applied_message(request, preset, skipped)
        except ChatError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("conversation", conversation_id=conversation.id)
    context = _page_context(request, form=form, presets=selectors.preset_choices(request.user))
    return render(request, "conversations/home.html", context, status=400)


def preset_applied_message(request: HttpRequest, preset, skipped: list[str]) -> None:
    """Say what applying a preset did, and what of it the model did not allow."""
    if skipped:
        flash.warning(request, f"Preset “{preset}” applied, except {'; '.join(skipped)}.")
    else:
        flash.success(request, f"Preset “{preset}” applied.")


@login_required
@require_GET
def conversation_detail(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id)
    messages = selectors.message_rows(conversation)
    role = conversation.role
    can_write = permissions.allows(role, Action.SEND)
    context = _page_context(
        request,
        model_id=conversation.model_config_id,
        conversation=conversation,
        message_list=messages,
        role=role.label,
        can_write=can_write,
        is_owner=role == Role.OWNER,
        # Only those who may send may change the settings (views/presets.conversation_settings).
        presets=selectors.preset_choices(request.user) if can_write else [],
        system_prompt_max=SYSTEM_PROMPT_MAX_CHARS,
    )
    if role == Role.OWNER:
        context.update(_sharing_context(request, conversation))
        context["show_authors"] = any(share.role == Share.Role.COLLABORATOR for share in context["shares"])
    else:
        context["show_authors"] = selectors.has_several_writers(conversation)
    context["since"] = selectors.resume_from(messages)
    context["awaiting_reply"] = bool(messages) and messages[-1]["role"] == Message.Role.USER
    return render(request, "conversations/detail.html", context)


@login_required
@require_POST
def conversation_rename(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id, Action.RENAME)
    form = RenameConversationForm(request.POST)
    if form.is_valid():
        services.conversation_rename(conversation=conversation, title=form.cleaned_data["title"])
    return redirect("conversation", conversation_id=conversation.id)


@login_required
@require_POST
def conversation_delete(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id, Action.DELETE)
    deleted_id = conversation.id  # delete() sets the instance's pk to None
    async_to_sync(streaming.reply_stop)(deleted_id)
    services.conversation_delete(conversation=conversation)
    async_to_sync(streaming.announce_deleted)(deleted_id)
    return redirect("home")


def _sharing_context(request: HttpRequest, conversation: Conversation, **forms) -> dict:
    """The Share dialog: current shares and links, and who the owner can share with."""
    teammates, teams = selectors.teammates_of(request.user), selectors.teams_of(request.user)
    return {
        "shares": selectors.share_list(conversation),
        "share_form": forms.get("share_form") or ShareForm(teammates=teammates, teams=teams),
        "can_share": bool(teammates or teams),
        "public_links_on": selectors.public_links_on(),
        "public_links": selectors.public_link_list(conversation),
        "link_form": forms.get("link_form") or PublicLinkForm(),
    }


@login_required
@require_GET
def conversation_export(request: HttpRequest, conversation_id) -> HttpResponse:
    """The whole conversation as Markdown (?format=md, the default) or JSON (?format=json), as a download."""
    conversation = conversation_or_404(request, conversation_id, Action.EXPORT)
    export = selectors.conversation_export(conversation)
    name = slugify(str(conversation))[:60] or "conversation"
    if request.GET.get("format") == "json":
        body, content_type, extension = json.dumps(export, ensure_ascii=False, indent=2), "application/json", "json"
    else:
        body, content_type, extension = selectors.export_markdown(export), "text/markdown; charset=utf-8", "md"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}-{timezone.localdate():%Y-%m-%d}.{extension}"'
    response["Cache-Control"] = "private, no-store"
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")

"""The chat pages. Thin: read through selectors, write through services, access through permissions."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from .. import exports, lifecycle, permissions, selectors, services
from ..exceptions import ChatError
from ..forms import SYSTEM_PROMPT_MAX_CHARS, NewConversationForm, PublicLinkForm, RenameConversationForm, ShareForm
from ..models import Conversation, Message, Share
from ..permissions import Action, Role
from ._common import chat_page_context, conversation_or_404, preset_applied_message, sidebar_context


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    form = NewConversationForm(user=request.user)
    context = chat_page_context(request, form=form, presets=selectors.presets.preset_choices(request.user))
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
                conversation = services.conversations.conversation_create(**start)
            else:
                conversation, skipped = services.presets.conversation_create_from_preset(preset=preset, **start)
                preset_applied_message(request, preset, skipped)
        except ChatError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("conversation", conversation_id=conversation.id)
    context = chat_page_context(request, form=form, presets=selectors.presets.preset_choices(request.user))
    return render(request, "conversations/home.html", context, status=400)


@login_required
@require_GET
def conversation_detail(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id)
    tree = selectors.conversations.conversation_tree(conversation.id)
    # ?message=<id> (a search result): show the branch through it, without making it the saved current branch
    # (a look is not a choice; a send answers the branch the page shows, as chat.js sends its parent).
    found = request.GET.get("message", "")
    through = int(found) if found.isdigit() else None
    messages = selectors.conversations.message_rows(conversation, tree=tree, through=through)
    role = conversation.role
    can_write = permissions.allows(role, Action.SEND)
    context = chat_page_context(
        request,
        model_id=conversation.model_config_id,
        conversation=conversation,
        message_list=messages,
        role=role.label,
        can_write=can_write,
        is_owner=role == Role.OWNER,
        # Only those who may send may change the settings (views/presets.py).
        presets=selectors.presets.preset_choices(request.user) if can_write else [],
        system_prompt_max=SYSTEM_PROMPT_MAX_CHARS,
    )
    if role == Role.OWNER:
        context.update(_sharing_context(request, conversation))
        context["show_authors"] = any(share.role == Share.Role.COLLABORATOR for share in context["shares"])
    else:
        context["show_authors"] = selectors.conversations.has_several_writers(conversation)
    context["since"] = selectors.conversations.resume_from(tree, messages)
    context["newest"] = selectors.conversations.newest_message(tree)
    context["message_actions"] = True  # versions, copy, edit, regenerate (public link pages show none)
    context["found_message"] = through if through in tree else None
    context["awaiting_reply"] = bool(messages) and messages[-1]["role"] == Message.Role.USER
    return render(request, "conversations/detail.html", context)


def _sharing_context(request: HttpRequest, conversation: Conversation) -> dict:
    """The Share dialog: current shares and links, and who the owner can share with."""
    teammates, teams = selectors.teams.teammates_of(request.user), selectors.teams.teams_of(request.user)
    return {
        "shares": selectors.sharing.share_list(conversation),
        "share_form": ShareForm(teammates=teammates, teams=teams),
        "can_share": bool(teammates or teams),
        "public_links_on": selectors.sharing.public_links_on(),
        "public_links": selectors.sharing.public_link_list(conversation),
        "link_form": PublicLinkForm(),
    }


@login_required
@require_POST
def conversation_rename(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = conversation_or_404(request, conversation_id, Action.RENAME)
    form = RenameConversationForm(request.POST)
    if form.is_valid():
        services.conversations.conversation_rename(conversation=conversation, title=form.cleaned_data["title"])
    return redirect("conversation", conversation_id=conversation.id)


@login_required
@require_POST
def conversation_delete(request: HttpRequest, conversation_id) -> HttpResponse:
    """Delete for good; its running reply stops and open sockets close once the deletion commits (signals.py)."""
    conversation = conversation_or_404(request, conversation_id, Action.DELETE)
    services.conversations.conversation_delete(conversation=conversation)
    return redirect("home")


@login_required
@require_GET
def conversation_export(request: HttpRequest, conversation_id) -> HttpResponse:
    """The conversation as a download: Markdown (?format=md, the default: the branch the page shows) or JSON
    (?format=json: every message of every branch, with the current leaf)."""
    conversation = conversation_or_404(request, conversation_id, Action.EXPORT)
    rows = selectors.conversations.export_rows(conversation)
    download = exports.conversation_download(
        conversation, rows, request.GET.get("format", "md"), today=timezone.localdate()
    )
    response = HttpResponse(download.body, content_type=download.content_type)
    response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def conversation_message(request: HttpRequest, conversation_id, message_id: int) -> HttpResponse:
    """One message as the `message` frame carries it, for a page whose frame was too big to carry its text."""
    conversation = conversation_or_404(request, conversation_id)
    payload = selectors.conversations.message_payload_of(message_id, conversation_id=conversation.id)
    if payload is None:
        raise Http404("No such message.")
    response = JsonResponse(payload)
    response["Cache-Control"] = "private, no-store"
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    """200 while this process serves; 503 once it drains (a deploy), so a load balancer sends people elsewhere."""
    if lifecycle.is_draining():
        return HttpResponse("draining", content_type="text/plain", status=503)
    return HttpResponse("ok", content_type="text/plain")


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """Search the conversations this person may see: ?q= (words, "phrases", -excluded) and ?page=."""
    text = request.GET.get("q", "").strip()
    page = request.GET.get("page", "1")
    results = selectors.search.search(request.user, text, page=int(page) if page.isdigit() else 1) if text else None
    return render(
        request, "conversations/search.html", {**sidebar_context(request), "q": text, "results": results}
    )

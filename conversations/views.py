"""Pages. Thin: read through selectors, write through services, check access through visible_to."""

import json

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import selectors, services, streaming
from .exceptions import ConversationNotFound
from .forms import NewConversationForm, RenameConversationForm
from .llm import demo
from .models import Message


def _conversation_or_404(request: HttpRequest, conversation_id):
    try:
        return selectors.conversation_for(request.user, conversation_id)
    except ConversationNotFound:
        raise Http404("No such conversation.") from None


def _page_context(request: HttpRequest, *, model_id: int | None = None, **extra) -> dict:
    """What every chat page shows; the picker selects `model_id` if it is enabled, else the default."""
    choices = selectors.model_choices()
    enabled = {choice.id for choice in choices}
    default = next(choice.id for choice in choices if choice.is_default)
    return {
        "sidebar": selectors.conversation_list_for(request.user),
        "model_choices": choices,
        "current_model": model_id if model_id in enabled else default,
        "demo_only": choices[0].id is None,
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        **extra,
    }


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    context = _page_context(request, form=NewConversationForm())
    return render(request, "conversations/home.html", context)


@login_required
@require_POST
def conversation_new(request: HttpRequest) -> HttpResponse:
    form = NewConversationForm(request.POST)
    if not form.is_valid():
        context = _page_context(request, form=form)
        return render(request, "conversations/home.html", context, status=400)
    model = form.cleaned_data["model"]
    conversation = services.conversation_create(
        owner=request.user, model_config_id=model.id if model else None, content=form.cleaned_data["content"]
    )
    return redirect("conversation", conversation_id=conversation.id)


@login_required
@require_GET
def conversation_detail(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    messages = selectors.message_rows(conversation)
    context = _page_context(
        request, model_id=conversation.model_config_id, conversation=conversation, messages=messages
    )
    streaming_ids = [row["id"] for row in messages if row["status"] == Message.Status.STREAMING]
    # The socket asks for everything from here on, so nothing that changed since this render is missed.
    context["since"] = streaming_ids[0] if streaming_ids else (messages[-1]["id"] + 1 if messages else 0)
    context["awaiting_reply"] = bool(messages) and messages[-1]["role"] == Message.Role.USER
    return render(request, "conversations/detail.html", context)


@login_required
@require_POST
def conversation_rename(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    if conversation.owner_id != request.user.id:
        raise PermissionDenied("Only the owner can change this conversation.")
    form = RenameConversationForm(request.POST)
    if form.is_valid():
        services.conversation_rename(conversation=conversation, title=form.cleaned_data["title"])
    return redirect("conversation", conversation_id=conversation.id)


@login_required
@require_POST
def conversation_delete(request: HttpRequest, conversation_id) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    if conversation.owner_id != request.user.id:
        raise PermissionDenied("Only the owner can change this conversation.")
    deleted_id = conversation.id  # delete() sets the instance's pk to None
    async_to_sync(streaming.reply_stop)(deleted_id)
    services.conversation_delete(conversation=conversation)
    async_to_sync(streaming.announce_deleted)(deleted_id)
    return redirect("home")


# --- the offline demo model over HTTP ---------------------------------------


def _demo_refusal(request: HttpRequest) -> JsonResponse | None:
    if not request.user.is_authenticated:
        return JsonResponse({"error": {"message": "Log in to use the demo model.", "type": "auth"}}, status=401)
    return None


@csrf_exempt  # an API endpoint: it takes JSON, not a form, and only for a logged-in session
@require_POST
def demo_completions(request: HttpRequest) -> HttpResponse:
    """POST /demo/v1/chat/completions and /demo/v1/completions: the demo model, as the OpenAI API streams it."""
    if refusal := _demo_refusal(request):
        return refusal
    try:
        body = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": {"message": "The body is not JSON.", "type": "invalid_request_error"}}, status=400)
    if not isinstance(body, dict):
        return JsonResponse({"error": {"message": "The body must be an object.", "type": "invalid_request_error"}}, status=400)
    if request.path.endswith("/chat/completions"):
        body.setdefault("messages", [])
    response = StreamingHttpResponse(demo.event_stream(body, settings.CHAT_DEMO_DELAY), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def demo_models(request: HttpRequest) -> HttpResponse:
    if refusal := _demo_refusal(request):
        return refusal
    return JsonResponse(demo.models_list())


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")

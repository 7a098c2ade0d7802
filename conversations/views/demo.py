"""The offline demo model over HTTP, as the OpenAI API streams it (for trying clients against it)."""

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from ..llm import demo


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
    stream = demo.event_stream(body, settings.CHAT_DEMO_DELAY, gettext(demo.REPLY))  # worded now, in the request's language
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def demo_models(request: HttpRequest) -> HttpResponse:
    if refusal := _demo_refusal(request):
        return refusal
    return JsonResponse(demo.models_list())

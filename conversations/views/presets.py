"""A conversation's own settings and applying a preset to it, and the "My presets" page."""

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from .. import selectors, services
from ..exceptions import ChatError
from ..forms import ConversationSettingsForm, PresetForm
from ..models import Preset
from ..permissions import Action
from ._common import conversation_or_404, form_error_summary, preset_applied_message, sidebar_context


def _preset_or_404(queryset, preset_id) -> Preset:
    try:
        return queryset.get(pk=int(preset_id))
    except (Preset.DoesNotExist, TypeError, ValueError):
        raise Http404("No such preset.") from None


@login_required
@require_POST
def conversation_settings(request: HttpRequest, conversation_id) -> HttpResponse:
    """Save the conversation's own temperature and system prompt. Anyone who may send may do this."""
    conversation = conversation_or_404(request, conversation_id, Action.SEND)
    form = ConversationSettingsForm(request.POST)
    if not form.is_valid():
        flash.error(request, _("Settings not saved.") + " " + form_error_summary(form))
        return redirect("conversation", conversation_id=conversation.id)
    try:
        services.conversations.conversation_settings_update(
            conversation=conversation,
            user=request.user,
            temperature=form.cleaned_data["temperature"],
            system_prompt=form.cleaned_data["system_prompt"],
        )
    except ChatError as exc:
        flash.error(request, _("Settings not saved.") + " " + exc.message)
    else:
        flash.success(request, _("Settings saved; they apply from the next reply."))
    return redirect("conversation", conversation_id=conversation.id)


@login_required
@require_POST
def conversation_preset_apply(request: HttpRequest, conversation_id) -> HttpResponse:
    """Make the conversation start from a preset (its model and settings, where the model allows them)."""
    conversation = conversation_or_404(request, conversation_id, Action.SEND)
    preset = _preset_or_404(Preset.objects.available_to(request.user), request.POST.get("preset"))
    try:
        skipped = services.presets.conversation_preset_apply(conversation=conversation, user=request.user, preset=preset)
    except ChatError as exc:
        flash.error(request, exc.message)
    else:
        preset_applied_message(request, preset, skipped)
    return redirect("conversation", conversation_id=conversation.id)


@login_required
@require_GET
def preset_list(request: HttpRequest) -> HttpResponse:
    return _preset_page(request, PresetForm(user=request.user))


@login_required
@require_POST
def preset_create(request: HttpRequest) -> HttpResponse:
    form = PresetForm(request.POST, user=request.user)
    if form.is_valid():
        model = form.cleaned_data["model"]
        try:
            preset = services.presets.preset_create(
                owner=request.user,
                name=form.cleaned_data["name"],
                model_config_id=model.id if model else None,
                system_prompt=form.cleaned_data["system_prompt"],
                temperature=form.cleaned_data["temperature"],
            )
        except ChatError as exc:
            form.add_error(None, exc.message)
        else:
            flash.success(request, _("Preset “%(preset)s” saved.") % {"preset": preset})
            return redirect("presets")
    return _preset_page(request, form, status=400)


@login_required
@require_POST
def preset_delete(request: HttpRequest, preset_id: int) -> HttpResponse:
    """Delete one of your own presets; anyone else's (or a shared one) is 404."""
    preset = _preset_or_404(Preset.objects.filter(owner=request.user), preset_id)
    services.presets.preset_delete(preset=preset)
    flash.success(request, _("Preset “%(preset)s” deleted.") % {"preset": preset})
    return redirect("presets")


def _preset_page(request: HttpRequest, form: PresetForm, *, status: int = 200) -> HttpResponse:
    presets = selectors.presets.preset_list(request.user)
    context = {
        **sidebar_context(request),
        "shared_presets": [preset for preset in presets if preset.owner_id is None],
        "own_presets": [preset for preset in presets if preset.owner_id is not None],
        "form": form,
    }
    return render(request, "conversations/presets.html", context, status=status)

"""The admin for providers (write-only keys, Test connection, Import models) and model configs."""

import re
from urllib.parse import urlsplit, urlunsplit

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import selectors, services
from ..llm import UpstreamError, checks
from ..models import ModelConfig, Provider
from ..selectors.conversations import error_text


def key_destination(kind: str, base_url: str, extra_headers: dict) -> tuple:
    """What decides where a provider's key goes: the type (the path, and the header the key travels in),
    the base URL (scheme and host in any case, with or without a trailing slash) and the extra headers,
    by which some gateways route (Helicone-Target-URL, x-portkey-custom-host)."""
    parts = urlsplit(base_url.strip())
    url = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, parts.fragment))
    headers = sorted((name.lower(), value) for name, value in (extra_headers or {}).items())
    return kind, url, tuple(headers)


def mask_key(key: str) -> str:
    """Enough of a key to tell two apart, never enough to use: sk-…abcd."""
    if not key:
        return "—"
    if len(key) < 12:
        return "set"
    prefix = key[:3] if key.startswith("sk-") else ""
    return f"{prefix}…{key[-4:]}"


DESTINATION_FIELDS = ("kind", "base_url", "extra_headers")  # key_destination's arguments
INTERNAL_NEEDS_SUPERUSER = _(
    "This provider may reach internal servers, which only a superuser may allow: ask one to change its base URL, "
    "type or extra headers."
)
KEY_FOR_NEW_DESTINATION = _(
    "Enter the API key again: the base URL, type or extra headers changed, and the stored key is only ever sent "
    "where it was entered for. If the new server needs no key, tick 'Clear API key'."
)


class ProviderForm(forms.ModelForm):
    # Write-only: the stored key is never rendered back into the form, not even after a validation error.
    api_key = forms.CharField(
        label=_("API key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "Stored encrypted and never shown again. Sent as 'Authorization: Bearer …' (Azure: as the 'api-key' "
            "header). Leave empty to keep the current key, unless you change the base URL, type or extra headers: "
            "then enter it again."
        ),
    )
    clear_api_key = forms.BooleanField(required=False, label=_("Clear API key"), help_text=_("Remove the stored key."))

    class Meta:
        model = Provider
        fields = [
            "name",
            "kind",
            "base_url",
            "allow_internal",
            "api_key",
            "api_version",
            "organization",
            "project",
            "extra_headers",
            "connect_timeout",
            "timeout",
        ]
        widgets = {"extra_headers": forms.Textarea(attrs={"rows": 3})}

    # Whether the person editing may let providers reach internal servers (a superuser): ProviderAdmin.get_form
    # sets it. For anyone else the field is read-only, and a provider that has it keeps its destination.
    may_allow_internal = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["api_key"] = ""
        self._stored_key = self.instance.api_key if self.instance.pk else ""
        stored = self.instance
        self._stored_destination = (
            key_destination(stored.kind, stored.base_url, stored.extra_headers) if stored.pk else None
        )

    def clean_extra_headers(self):
        return self.cleaned_data.get("extra_headers") or {}

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_api_key"):
            cleaned["api_key"] = ""
        elif not cleaned.get("api_key"):
            # The stored key was entered for the stored destination and goes nowhere else: whoever may
            # edit providers could otherwise point one at their own server and press Test connection.
            if self._stored_key and self.destination_changed(cleaned):
                self.add_error("api_key", KEY_FOR_NEW_DESTINATION)
            cleaned["api_key"] = self._stored_key
        if self.instance.allow_internal and not self.may_allow_internal and self.destination_changed(cleaned):
            # Else the superuser's "this address is ours" would carry over to any address.
            self.add_error(None, INTERNAL_NEEDS_SUPERUSER)
        self._check_base_url(cleaned.get("kind"), cleaned.get("base_url"))
        return cleaned

    def destination_changed(self, cleaned: dict) -> bool:
        """Whether the form sends requests elsewhere than the stored provider does (see key_destination).

        False for a new provider, and while one of those fields is invalid (it has its own error).
        """
        if self._stored_destination is None or not all(name in cleaned for name in DESTINATION_FIELDS):
            return False
        return key_destination(*(cleaned[name] for name in DESTINATION_FIELDS)) != self._stored_destination

    def _check_base_url(self, kind: str | None, base_url: str | None) -> None:
        """The common mistake: pasting the full request URL where the root belongs."""
        if not base_url:
            return
        path = urlsplit(base_url).path.rstrip("/")
        if kind == Provider.Kind.AZURE and "/openai" in path:
            self.add_error(
                "base_url",
                "For Azure, enter only the resource endpoint, https://<resource>.openai.azure.com: the deployment "
                "goes in each model's 'model' field and the api-version in 'API version'.",
            )
        elif kind != Provider.Kind.AZURE and path.endswith(("/chat/completions", "/completions")):
            self.add_error(
                "base_url",
                "Enter the API root without /chat/completions, such as https://api.openai.com/v1: the app adds the path.",
            )


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "kind", "base_url", "allow_internal", "api_key_masked", "model_count", "from_env"]
    list_filter = ["kind"]
    search_fields = ["name", "base_url"]
    readonly_fields = ["api_key_masked", "from_env", "created", "updated"]
    actions = ["test_connection", "import_models"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "base_url", "allow_internal"]}),
        (
            _("API key"),
            {
                "description": _("Keys are encrypted in the database with CHAT_ENCRYPTION_KEYS and shown here only "
                "masked. Servers without keys (a local Ollama) need none."),
                "fields": ["api_key_masked", "api_key", "clear_api_key"],
            },
        ),
        ("Azure OpenAI", {"description": _("Only for the Azure OpenAI type."), "fields": ["api_version"]}),
        ("OpenAI", {"description": _("Only for the OpenAI type; both optional."), "fields": ["organization", "project"]}),
        (_("Headers and timeouts"), {"fields": ["extra_headers", "connect_timeout", "timeout"]}),
        (_("Record"), {"classes": ["collapse"], "fields": ["from_env", "created", "updated"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(model_count=Count("model_configs"))

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return fields if request.user.is_superuser else [*fields, "allow_internal"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.may_allow_internal = request.user.is_superuser  # a class made for this request: safe to set
        return form

    def get_urls(self):
        test_connection = self.admin_site.admin_view(self.test_connection_view)
        return [
            path("<path:object_id>/test-connection/", test_connection, name="conversations_provider_test_connection"),
            *super().get_urls(),
        ]

    @admin.display(description=_("Stored key"))
    def api_key_masked(self, obj: Provider) -> str:
        return mask_key(obj.api_key)

    @admin.display(description=_("Models"), ordering="model_count")
    def model_count(self, obj: Provider) -> int:
        return obj.model_count

    @admin.action(description=_("Test connection (list the models, ask for one token)"), permissions=["change"])
    def test_connection(self, request, queryset) -> None:
        providers = list(queryset)
        specs = [selectors.providers.provider_probe_spec(provider) for provider in providers]
        results = async_to_sync(checks.check_connections)(specs)
        for provider, spec, result in zip(providers, specs, results, strict=True):
            level = messages.SUCCESS if result.ok else messages.ERROR if result.reply_error else messages.WARNING
            self.message_user(request, connection_report(provider.name, result, picked=bool(spec.model)), level)

    @admin.action(description=_("Import models (added disabled)"), permissions=["import_models"])
    def import_models(self, request, queryset) -> None:
        providers = list(queryset)
        listed = async_to_sync(checks.list_models_of)([selectors.providers.provider_spec(provider) for provider in providers])
        for provider, model_ids in zip(providers, listed, strict=True):
            if isinstance(model_ids, UpstreamError):
                self.message_user(
                    request,
                    gettext("%(provider)s: listing the models failed: %(error)s")
                    % {"provider": provider.name, "error": error_text(model_ids.message)},
                    messages.ERROR,
                )
                continue
            if isinstance(model_ids, BaseException):
                raise model_ids
            created, skipped = services.providers.provider_import_models(provider=provider, model_ids=model_ids)
            self.message_user(request, import_report(provider, created, skipped), messages.SUCCESS)

    def has_import_models_permission(self, request) -> bool:
        return self.has_change_permission(request) and request.user.has_perm("conversations.add_modelconfig")

    def test_connection_view(self, request, object_id: str):
        """The change page's Test connection button: the action, for this provider."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        provider = self.get_object(request, object_id)
        if provider is None:
            raise Http404
        if not self.has_change_permission(request, provider):
            raise PermissionDenied
        self.test_connection(request, Provider.objects.filter(pk=provider.pk))
        return redirect("admin:conversations_provider_change", provider.pk)


def connection_report(name: str, result: checks.ConnectionCheck, *, picked: bool) -> str:
    """One line per provider: each step's time and outcome, or the provider's own error. Holds no key."""
    if result.models_error:
        models = gettext("listing the models failed after %(ms)s ms: %(error)s") % {
            "ms": result.models_ms,
            "error": error_text(result.models_error).rstrip("."),
        }
    else:
        count = len(result.models)
        models = ngettext("%(count)s model listed in %(ms)s ms", "%(count)s models listed in %(ms)s ms", count) % {
            "count": count,
            "ms": result.models_ms,
        }
    if not result.reply_model:
        reply = gettext("no model to ask for a token: the provider listed none, and none of its models is enabled here")
    else:
        asked = (
            result.reply_model
            if picked
            else gettext("%(model)s (the first listed: no model of this provider is enabled)") % {"model": result.reply_model}
        )
        if result.reply_error:
            reply = gettext("one token from %(model)s failed after %(ms)s ms: %(error)s") % {
                "model": asked,
                "ms": result.reply_ms,
                "error": error_text(result.reply_error).rstrip("."),
            }
        else:
            reply = gettext("one token from %(model)s in %(ms)s ms") % {"model": asked, "ms": result.reply_ms}
    return gettext("%(provider)s: %(models)s; %(reply)s.") % {"provider": name, "models": models, "reply": reply}


def import_report(provider: Provider, created: int, skipped: int) -> str:
    url = reverse("admin:conversations_modelconfig_changelist")
    text = ngettext(
        '%(provider)s: %(created)s model added, disabled (<a href="%(url)s">review and enable them</a>); '
        "%(skipped)s already configured.",
        '%(provider)s: %(created)s models added, disabled (<a href="%(url)s">review and enable them</a>); '
        "%(skipped)s already configured.",
        created,
    )
    # format_html escapes the values; it takes {name} fields where translators write %(name)s.
    return format_html(
        re.sub(r"%\((\w+)\)s", r"{\1}", text),
        provider=provider.name,
        created=created,
        url=f"{url}?provider__id__exact={provider.pk}&enabled__exact=0",
        skipped=skipped,
    )


class ModelConfigForm(forms.ModelForm):
    class Meta:
        model = ModelConfig
        fields = "__all__"  # noqa: DJ007 - ModelConfigAdmin.fieldsets choose and order them
        widgets = {
            "stop": forms.Textarea(attrs={"rows": 2}),
            "logit_bias": forms.Textarea(attrs={"rows": 2}),
            "response_format": forms.Textarea(attrs={"rows": 3}),
            "omit_parameters": forms.Textarea(attrs={"rows": 2}),
        }

    def clean_stop(self):
        return self.cleaned_data.get("stop") or []

    def clean_logit_bias(self):
        return self.cleaned_data.get("logit_bias") or {}

    def clean_response_format(self):
        return self.cleaned_data.get("response_format") or None

    def clean_omit_parameters(self):
        return self.cleaned_data.get("omit_parameters") or []


REASONING_PARAMETERS = ["max_completion_tokens", "reasoning_effort"]


@admin.register(ModelConfig)
class ModelConfigAdmin(admin.ModelAdmin):
    form = ModelConfigForm
    list_display = ["display_name", "provider", "model", "endpoint", "order", "enabled", "is_default"]
    list_editable = ["enabled", "order"]
    list_filter = ["enabled", "endpoint", "provider"]
    list_select_related = ["provider"]
    search_fields = ["display_name", "model"]
    filter_horizontal = ["allowed_teams"]
    fieldsets = [
        (
            _("Model"),
            {
                "fields": [
                    "display_name",
                    "provider",
                    "model",
                    "endpoint",
                    "description",
                    "order",
                    "enabled",
                    "is_default",
                    "allowed_teams",
                ]
            },
        ),
        (
            _("Request parameters"),
            {
                "description": _("Leave a parameter empty to use the server's default. Names and ranges are the API's."),
                # Every API parameter the model sends, but those only reasoning models take (next set).
                "fields": [name for name in ModelConfig.PARAMETERS if name not in REASONING_PARAMETERS],
            },
        ),
        (
            _("Reasoning models"),
            {
                "description": _("o1, o3, gpt-5 and other reasoning models take max_completion_tokens instead of "
                "max_tokens and refuse sampling parameters such as temperature and top_p: list those under "
                "omit parameters so they are never sent, even from a preset or a person's settings."),
                "fields": [*REASONING_PARAMETERS, "omit_parameters"],
            },
        ),
        (_("Prompt"), {"fields": ["system_prompt"]}),
        (
            _("People's own settings"),
            {
                "description": _("What people may change for their own conversations."),
                "fields": ["allow_custom_temperature", "temperature_min", "temperature_max", "allow_custom_system_prompt"],
            },
        ),
        (_("Context and prices"), {"fields": ["context_window", "input_price", "output_price"]}),
    ]

    def save_model(self, request, obj: ModelConfig, form, change: bool) -> None:
        with transaction.atomic():
            if obj.is_default:
                # Exactly one default: choosing this one unsets the previous.
                ModelConfig.objects.exclude(pk=obj.pk).filter(is_default=True).update(is_default=False)
            super().save_model(request, obj, form, change)

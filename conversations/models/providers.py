"""Providers (servers that speak the OpenAI Chat Completions API) and the models people pick, with their validators.

The parameter fields of ModelConfig carry the API's own names and ranges; the
validators below give the admin readable errors for the JSON ones.
"""

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.utils.translation import gettext_lazy as _

from ..encryption import EncryptedTextField


def validate_base_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValidationError(_("Enter an http:// or https:// URL, such as https://api.openai.com/v1."))


def validate_stop(value) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValidationError(_('Enter a JSON list of non-empty strings, such as ["\\nUser:"].'))
    if len(value) > 4:
        raise ValidationError(_("The API accepts at most 4 stop sequences."))


def validate_response_format(value) -> None:
    if value in (None, {}):
        return
    kinds = ("text", "json_object", "json_schema")
    if not isinstance(value, dict) or value.get("type") not in kinds:
        raise ValidationError(
            _('Enter {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", "json_schema": {…}}.')
        )
    if value["type"] == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str) or not schema["name"]:
            raise ValidationError(_('json_schema needs an object with a "name" (and a "schema"), as the API describes.'))


def validate_omit_parameters(value) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(_('Enter a JSON list of parameter names, such as ["temperature"].'))
    unknown = [item for item in value if item not in ModelConfig.OMITTABLE]
    if unknown:
        raise ValidationError(
            _("Unknown parameter %(name)r; choose from %(names)s.")
            % {"name": unknown[0], "names": ", ".join(ModelConfig.OMITTABLE)}
        )


def validate_logit_bias(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError(_('Enter a JSON object mapping token ids to a bias, such as {"50256": -100}.'))
    for token, bias in value.items():
        if not token.isdigit():
            raise ValidationError(_("%(token)r is not a token id (a whole number such as 50256).") % {"token": token})
        if isinstance(bias, bool) or not isinstance(bias, int | float) or not -100 <= bias <= 100:
            raise ValidationError(_("The bias for token %(token)s must be a number from -100 to 100.") % {"token": token})


def validate_extra_headers(value) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError(_('Enter a JSON object of header names to values, such as {"X-Team": "research"}.'))
    for name in value:
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
            raise ValidationError(_("%(name)r is not a valid header name.") % {"name": name})
        if name.lower() in RESERVED_HEADERS:
            raise ValidationError(
                _("%(name)s is set by the provider’s type and key; it cannot be overridden here.") % {"name": name}
            )
    for header_value in value.values():
        if "\n" in header_value or "\r" in header_value:
            raise ValidationError(_("Header values cannot contain line breaks."))


# Headers the app sets itself from the provider's type, key and request.
RESERVED_HEADERS = {"authorization", "api-key", "content-type", "accept", "content-length", "host"}


class Provider(models.Model):
    """A server that speaks the OpenAI Chat Completions API."""

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        AZURE = "azure", _("Azure OpenAI")
        OPENAI_COMPATIBLE = "openai_compatible", _("OpenAI-compatible (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter…)")

    name = models.CharField(max_length=100, unique=True, verbose_name=_("name"))
    kind = models.CharField(
        _("type"),
        max_length=32,
        choices=Kind.choices,
        default=Kind.OPENAI_COMPATIBLE,
        help_text=_("Decides the request URL and how the key is sent: OpenAI and compatible servers get "
        "'Authorization: Bearer KEY' at BASE_URL/chat/completions; Azure gets an 'api-key' header at "
        "ENDPOINT/openai/deployments/DEPLOYMENT/chat/completions?api-version=VERSION."),
    )
    base_url = models.CharField(
        _("base URL"),
        max_length=500,
        validators=[validate_base_url],
        help_text=_("OpenAI and compatible: the API root, ending before /chat/completions (https://api.openai.com/v1, "
        "http://localhost:11434/v1 for Ollama, http://localhost:8000/v1 for vLLM). "
        "Azure: the resource endpoint, https://RESOURCE.openai.azure.com."),
    )
    api_key = EncryptedTextField(
        _("API key"),
        blank=True,
        help_text=_("Stored encrypted. Leave empty for servers without keys."),
    )
    api_version = models.CharField(
        _("API version"),
        max_length=32,
        blank=True,
        help_text=_("Azure only: the api-version query parameter, such as 2024-10-21."),
    )
    organization = models.CharField(
        max_length=200,
        blank=True,
        help_text=_("OpenAI only, optional: sent as the OpenAI-Organization header."),
        verbose_name=_("organization"),
    )
    project = models.CharField(
        max_length=200,
        blank=True,
        help_text=_("OpenAI only, optional: sent as the OpenAI-Project header."),
        verbose_name=_("project"),
    )
    extra_headers = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_extra_headers],
        help_text=_('More headers for every request, as a JSON object: {"HTTP-Referer": "https://chat.example.com"} '
        "for OpenRouter, say."), verbose_name=_("extra headers"),
    )
    connect_timeout = models.FloatField(
        default=10.0,
        validators=[MinValueValidator(0.5), MaxValueValidator(300.0)],
        help_text=_("Seconds to wait for the connection to the server."), verbose_name=_("connect timeout"),
    )
    timeout = models.FloatField(
        _("read timeout"),
        default=60.0,
        validators=[MinValueValidator(1.0), MaxValueValidator(3600.0)],
        help_text=_("Seconds to wait for the next piece of a reply before giving up."),
    )
    allow_internal = models.BooleanField(
        _("internal server (localhost or private network)"),
        default=False,
        help_text=_(
            "Lets this provider reach this machine or a private network, such as Ollama or vLLM beside the app. "
            "Other providers are refused those addresses, so that nobody can use one to read internal pages. "
            "Only superusers may tick it, or change where a provider that has it sends requests."
        ),
    )
    from_env = models.BooleanField(
        default=False, editable=False, help_text=_("Created from OPENAI_API_KEY and OPENAI_BASE_URL."), verbose_name=_("from env")
    )
    created = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    updated = models.DateTimeField(auto_now=True, verbose_name=_("updated"))

    class Meta:
        verbose_name = _("provider")
        verbose_name_plural = _("providers")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["from_env"], condition=Q(from_env=True), name="one_provider_from_env"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == self.Kind.AZURE and not self.api_version:
            raise ValidationError({"api_version": _("Azure needs an API version, such as 2024-10-21.")})


class ModelConfigQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True).select_related("provider")

    def usable_by(self, user):
        """Models this person may pick: those open to everyone (no allowed teams) and those allowed to one of their teams."""
        restricted = ModelConfig.allowed_teams.through.objects.filter(modelconfig_id=OuterRef("pk"))
        return self.filter(~Exists(restricted) | Exists(restricted.filter(team__memberships__user=user)))


class ModelConfig(models.Model):
    """A model people can pick, with the request parameters sent for it.

    The parameter fields carry the API's own names and ranges; an empty field
    is left out of the request so the server's default applies.
    """

    class Endpoint(models.TextChoices):
        CHAT = "chat", _("Chat completions (/chat/completions)")
        COMPLETIONS = "completions", _("Legacy completions (/completions, base models)")

    display_name = models.CharField(
        max_length=100, help_text=_("What people see in the model picker."), verbose_name=_("display name")
    )
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="model_configs", verbose_name=_("provider"))
    model = models.CharField(
        max_length=200, help_text=_("The model id the API expects, such as gpt-4o-mini."), verbose_name=_("model")
    )
    endpoint = models.CharField(max_length=16, choices=Endpoint.choices, default=Endpoint.CHAT, verbose_name=_("endpoint"))
    temperature = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text=_("0 to 2. Higher values make replies more random, lower more focused."), verbose_name=_("temperature"),
    )
    top_p = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("0 to 1. Only tokens within this much probability mass are considered (nucleus sampling)."),
        verbose_name=_("top p"),
    )
    max_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("At least 1. The most tokens a reply may have; the prompt and reply together must fit the model."),
        verbose_name=_("max tokens"),
    )
    presence_penalty = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)],
        help_text=_("-2 to 2. Positive values push the model towards new topics."), verbose_name=_("presence penalty"),
    )
    frequency_penalty = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)],
        help_text=_("-2 to 2. Positive values make the model less likely to repeat itself word for word."),
        verbose_name=_("frequency penalty"),
    )
    stop = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_stop],
        help_text=_('Up to 4 sequences where the model stops, as a JSON list: ["\\nUser:"].'), verbose_name=_("stop"),
    )
    logit_bias = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_logit_bias],
        help_text=_('Token id to a bias from -100 (never) to 100 (always), as a JSON object: {"50256": -100}.'),
        verbose_name=_("logit bias"),
    )
    seed = models.BigIntegerField(
        null=True,
        blank=True,
        help_text=_("Any whole number. Asks the model to sample deterministically, so the same request gives "
        "the same reply as far as the provider can. Not every server supports it."), verbose_name=_("seed"),
    )
    response_format = models.JSONField(
        null=True,
        blank=True,
        validators=[validate_response_format],
        help_text=_('Empty for text. {"type": "json_object"} makes the model answer in JSON; '
        '{"type": "json_schema", "json_schema": {"name": "…", "schema": {…}}} to a schema. Not every server supports it.',),
        verbose_name=_("response format"),
    )
    max_completion_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("At least 1. For reasoning models (o1, o3, gpt-5…), in place of max_tokens: the most tokens the "
        "reply may use, its hidden reasoning included."), verbose_name=_("max completion tokens"),
    )
    reasoning_effort = models.CharField(
        max_length=16,
        blank=True,
        choices=[("minimal", "minimal"), ("low", "low"), ("medium", "medium"), ("high", "high")],
        help_text=_("Reasoning models only: how much they think before answering. Less is faster and cheaper."),
        verbose_name=_("reasoning effort"),
    )
    omit_parameters = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_omit_parameters],
        help_text=_("Parameters never to send to this model, even when set elsewhere (a preset, a person's "
        'conversation settings), as a JSON list: ["temperature", "top_p"] for reasoning models, which refuse them; '
        '"stream_options" or "user" for servers that reject those.'), verbose_name=_("omit parameters"),
    )
    system_prompt = models.TextField(
        blank=True, help_text=_("Sent first in every conversation with this model."), verbose_name=_("system prompt")
    )
    allow_custom_temperature = models.BooleanField(
        default=False,
        help_text=_("People may set their own temperature per conversation, within the bounds below."),
        verbose_name=_("allow custom temperature"),
    )
    temperature_min = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text=_("Lowest temperature people may choose."), verbose_name=_("temperature min"),
    )
    temperature_max = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text=_("Highest temperature people may choose."), verbose_name=_("temperature max"),
    )
    allow_custom_system_prompt = models.BooleanField(
        default=False,
        help_text=_("People may add their own system prompt per conversation; it is sent after this model's own."),
        verbose_name=_("allow custom system prompt"),
    )
    context_window = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(256)],
        help_text=_("The model's context window in tokens (128000 for gpt-4o). Older messages are left out of a "
        "request so it fits. Empty: nothing is left out."), verbose_name=_("context window"),
    )
    input_price = models.DecimalField(
        _("input price"),
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Price per million prompt tokens, in your billing currency. Used for usage costs."),
    )
    output_price = models.DecimalField(
        _("output price"),
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Price per million completion tokens."),
    )
    allowed_teams = models.ManyToManyField(
        "Team",
        blank=True,
        related_name="model_configs",
        help_text=_("Who may use it. None selected: everyone."),
        verbose_name=_("allowed teams"),
    )
    order = models.PositiveIntegerField(
        default=100, help_text=_("Position in the model picker; lower comes first."), verbose_name=_("order")
    )
    description = models.CharField(
        max_length=200, blank=True, help_text=_("A line shown in the picker."), verbose_name=_("description")
    )
    enabled = models.BooleanField(default=True, help_text=_("Offered in the model picker."), verbose_name=_("enabled"))
    is_default = models.BooleanField(
        default=False, help_text=_("Used for new conversations. Only one model can be."), verbose_name=_("is default")
    )
    created = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    updated = models.DateTimeField(auto_now=True, verbose_name=_("updated"))

    objects = ModelConfigQuerySet.as_manager()

    class Meta:
        verbose_name_plural = _("models")
        ordering = ["order", "display_name"]
        verbose_name = _("model")
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_model"),
            models.CheckConstraint(
                condition=Q(temperature__isnull=True) | Q(temperature__gte=0, temperature__lte=2),
                name="temperature_range",
            ),
            models.CheckConstraint(condition=Q(top_p__isnull=True) | Q(top_p__gte=0, top_p__lte=1), name="top_p_range"),
            models.CheckConstraint(condition=Q(max_tokens__isnull=True) | Q(max_tokens__gte=1), name="max_tokens_min"),
            models.CheckConstraint(
                condition=Q(presence_penalty__isnull=True) | Q(presence_penalty__gte=-2, presence_penalty__lte=2),
                name="presence_penalty_range",
            ),
            models.CheckConstraint(
                condition=Q(frequency_penalty__isnull=True) | Q(frequency_penalty__gte=-2, frequency_penalty__lte=2),
                name="frequency_penalty_range",
            ),
            models.CheckConstraint(
                condition=Q(max_completion_tokens__isnull=True) | Q(max_completion_tokens__gte=1),
                name="max_completion_tokens_min",
            ),
            models.CheckConstraint(
                condition=Q(temperature_min__gte=0, temperature_max__lte=2, temperature_min__lte=F("temperature_max")),
                name="custom_temperature_bounds",
            ),
        ]

    PARAMETERS = (
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "stop",
        "logit_bias",
        "seed",
        "response_format",
        "reasoning_effort",
    )
    # What omit_parameters may name: the parameters above and the fields the app adds itself.
    OMITTABLE = (*PARAMETERS, "stream_options", "user")

    def __str__(self) -> str:
        return self.display_name

    def validate_constraints(self, exclude=None) -> None:
        # Choosing a new default replaces the old one when saved (ModelConfigAdmin.save_model);
        # the database constraint still guarantees there is never more than one.
        super().validate_constraints(exclude={*(exclude or ()), "is_default"})

    def clean(self) -> None:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise ValidationError(
                {
                    "max_completion_tokens": _(
                        "Set max_tokens or max_completion_tokens, not both (reasoning models take the latter)."
                    )
                }
            )
        if self.temperature_min is not None and self.temperature_max is not None and self.temperature_min > self.temperature_max:
            raise ValidationError({"temperature_max": _("The highest temperature must not be below the lowest.")})

    def api_parameters(self) -> dict:
        """The request parameters this config sets, under their API names, without those it omits."""
        values = {name: getattr(self, name) for name in self.PARAMETERS if name not in self.omit_parameters}
        return {name: value for name, value in values.items() if value not in (None, [], {}, "")}

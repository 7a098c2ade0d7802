"""Conversations, their messages, and the providers and models that answer them."""

import re
import secrets
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from .encryption import EncryptedTextField


def validate_base_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValidationError("Enter an http:// or https:// URL, such as https://api.openai.com/v1.")


def validate_stop(value) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValidationError('Enter a JSON list of non-empty strings, such as ["\\nUser:"].')
    if len(value) > 4:
        raise ValidationError("The API accepts at most 4 stop sequences.")


def validate_response_format(value) -> None:
    if value in (None, {}):
        return
    kinds = ("text", "json_object", "json_schema")
    if not isinstance(value, dict) or value.get("type") not in kinds:
        raise ValidationError('Enter {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", "json_schema": {…}}.')
    if value["type"] == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str) or not schema["name"]:
            raise ValidationError('json_schema needs an object with a "name" (and a "schema"), as the API describes.')


def validate_omit_parameters(value) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError('Enter a JSON list of parameter names, such as ["temperature"].')
    unknown = [item for item in value if item not in ModelConfig.OMITTABLE]
    if unknown:
        raise ValidationError(f"Unknown parameter {unknown[0]!r}; choose from {', '.join(ModelConfig.OMITTABLE)}.")


def validate_logit_bias(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Enter a JSON object mapping token ids to a bias, such as {"50256": -100}.')
    for token, bias in value.items():
        if not token.isdigit():
            raise ValidationError(f"{token!r} is not a token id (a whole number such as 50256).")
        if isinstance(bias, bool) or not isinstance(bias, int | float) or not -100 <= bias <= 100:
            raise ValidationError(f"The bias for token {token} must be a number from -100 to 100.")


def validate_extra_headers(value) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError('Enter a JSON object of header names to values, such as {"X-Team": "research"}.')
    for name in value:
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
            raise ValidationError(f"{name!r} is not a valid header name.")
        if name.lower() in RESERVED_HEADERS:
            raise ValidationError(f"{name} is set by the provider's type and key; it cannot be overridden here.")
    for header_value in value.values():
        if "\n" in header_value or "\r" in header_value:
            raise ValidationError("Header values cannot contain line breaks.")


# Headers the app sets itself from the provider's type, key and request.
RESERVED_HEADERS = {"authorization", "api-key", "content-type", "accept", "content-length", "host"}


class Provider(models.Model):
    """A server that speaks the OpenAI Chat Completions API."""

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        AZURE = "azure", "Azure OpenAI"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter…)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(
        "type",
        max_length=32,
        choices=Kind.choices,
        default=Kind.OPENAI_COMPATIBLE,
        help_text="Decides the request URL and how the key is sent: OpenAI and compatible servers get "
        "'Authorization: Bearer KEY' at BASE_URL/chat/completions; Azure gets an 'api-key' header at "
        "ENDPOINT/openai/deployments/DEPLOYMENT/chat/completions?api-version=VERSION.",
    )
    base_url = models.CharField(
        "base URL",
        max_length=500,
        validators=[validate_base_url],
        help_text="OpenAI and compatible: the API root, ending before /chat/completions (https://api.openai.com/v1, "
        "http://localhost:11434/v1 for Ollama, http://localhost:8000/v1 for vLLM). "
        "Azure: the resource endpoint, https://RESOURCE.openai.azure.com.",
    )
    api_key = EncryptedTextField(
        "API key",
        blank=True,
        help_text="Stored encrypted. Leave empty for servers without keys.",
    )
    api_version = models.CharField(
        "API version",
        max_length=32,
        blank=True,
        help_text="Azure only: the api-version query parameter, such as 2024-10-21.",
    )
    organization = models.CharField(
        max_length=200, blank=True, help_text="OpenAI only, optional: sent as the OpenAI-Organization header."
    )
    project = models.CharField(
        max_length=200, blank=True, help_text="OpenAI only, optional: sent as the OpenAI-Project header."
    )
    extra_headers = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_extra_headers],
        help_text='More headers for every request, as a JSON object: {"HTTP-Referer": "https://chat.example.com"} '
        "for OpenRouter, say.",
    )
    connect_timeout = models.FloatField(
        default=10.0,
        validators=[MinValueValidator(0.5), MaxValueValidator(300.0)],
        help_text="Seconds to wait for the connection to the server.",
    )
    timeout = models.FloatField(
        "read timeout",
        default=60.0,
        validators=[MinValueValidator(1.0), MaxValueValidator(3600.0)],
        help_text="Seconds to wait for the next piece of a reply before giving up.",
    )
    from_env = models.BooleanField(
        default=False, editable=False, help_text="Created from OPENAI_API_KEY and OPENAI_BASE_URL."
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["from_env"], condition=Q(from_env=True), name="one_provider_from_env"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == self.Kind.AZURE and not self.api_version:
            raise ValidationError({"api_version": "Azure needs an API version, such as 2024-10-21."})


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
        CHAT = "chat", "Chat completions (/chat/completions)"
        COMPLETIONS = "completions", "Legacy completions (/completions, base models)"

    display_name = models.CharField(max_length=100, help_text="What people see in the model picker.")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="model_configs")
    model = models.CharField(max_length=200, help_text="The model id the API expects, such as gpt-4o-mini.")
    endpoint = models.CharField(max_length=16, choices=Endpoint.choices, default=Endpoint.CHAT)
    temperature = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text="0 to 2. Higher values make replies more random, lower more focused.",
    )
    top_p = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="0 to 1. Only tokens within this much probability mass are considered (nucleus sampling).",
    )
    max_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="At least 1. The most tokens a reply may have; the prompt and reply together must fit the model.",
    )
    presence_penalty = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)],
        help_text="-2 to 2. Positive values push the model towards new topics.",
    )
    frequency_penalty = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)],
        help_text="-2 to 2. Positive values make the model less likely to repeat itself word for word.",
    )
    stop = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_stop],
        help_text='Up to 4 sequences where the model stops, as a JSON list: ["\\nUser:"].',
    )
    logit_bias = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_logit_bias],
        help_text='Token id to a bias from -100 (never) to 100 (always), as a JSON object: {"50256": -100}.',
    )
    seed = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Any whole number. Asks the model to sample deterministically, so the same request gives "
        "the same reply as far as the provider can. Not every server supports it.",
    )
    response_format = models.JSONField(
        null=True,
        blank=True,
        validators=[validate_response_format],
        help_text='Empty for text. {"type": "json_object"} makes the model answer in JSON; '
        '{"type": "json_schema", "json_schema": {"name": "…", "schema": {…}}} to a schema. Not every server supports it.',
    )
    max_completion_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="At least 1. For reasoning models (o1, o3, gpt-5…), in place of max_tokens: the most tokens the "
        "reply may use, its hidden reasoning included.",
    )
    reasoning_effort = models.CharField(
        max_length=16,
        blank=True,
        choices=[("minimal", "minimal"), ("low", "low"), ("medium", "medium"), ("high", "high")],
        help_text="Reasoning models only: how much they think before answering. Less is faster and cheaper.",
    )
    omit_parameters = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_omit_parameters],
        help_text="Parameters never to send to this model, even when set elsewhere (a preset, a person's "
        'conversation settings), as a JSON list: ["temperature", "top_p"] for reasoning models, which refuse them; '
        '"stream_options" or "user" for servers that reject those.',
    )
    system_prompt = models.TextField(blank=True, help_text="Sent first in every conversation with this model.")
    allow_custom_temperature = models.BooleanField(
        default=False, help_text="People may set their own temperature per conversation, within the bounds below."
    )
    temperature_min = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)], help_text="Lowest temperature people may choose."
    )
    temperature_max = models.FloatField(
        default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)], help_text="Highest temperature people may choose."
    )
    allow_custom_system_prompt = models.BooleanField(
        default=False,
        help_text="People may add their own system prompt per conversation; it is sent after this model's own.",
    )
    context_window = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(256)],
        help_text="The model's context window in tokens (128000 for gpt-4o). Older messages are left out of a "
        "request so it fits. Empty: nothing is left out.",
    )
    input_price = models.DecimalField(
        "input price",
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Price per million prompt tokens, in your billing currency. Used for usage costs.",
    )
    output_price = models.DecimalField(
        "output price",
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Price per million completion tokens.",
    )
    allowed_teams = models.ManyToManyField(
        "Team", blank=True, related_name="model_configs", help_text="Who may use it. None selected: everyone."
    )
    order = models.PositiveIntegerField(default=100, help_text="Position in the model picker; lower comes first.")
    description = models.CharField(max_length=200, blank=True, help_text="A line shown in the picker.")
    enabled = models.BooleanField(default=True, help_text="Offered in the model picker.")
    is_default = models.BooleanField(default=False, help_text="Used for new conversations. Only one model can be.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ModelConfigQuerySet.as_manager()

    class Meta:
        ordering = ["order", "display_name"]
        verbose_name = "model"
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
                {"max_completion_tokens": "Set max_tokens or max_completion_tokens, not both (reasoning models take the latter)."}
            )
        if self.temperature_min is not None and self.temperature_max is not None and self.temperature_min > self.temperature_max:
            raise ValidationError({"temperature_max": "The highest temperature must not be below the lowest."})

    def api_parameters(self) -> dict:
        """The request parameters this config sets, under their API names, without those it omits."""
        values = {name: getattr(self, name) for name in self.PARAMETERS if name not in self.omit_parameters}
        return {name: value for name, value in values.items() if value not in (None, [], {}, "")}


class Team(models.Model):
    """People who work together. Teammates can share conversations with each other and with the team."""

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="TeamMembership", related_name="teams")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner (adds and removes people)"
        MEMBER = "member", "Member"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team", "user"]
        verbose_name = "team member"
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team")]
        indexes = [models.Index(fields=["user", "team"], name="membership_user_team")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class ConversationQuerySet(models.QuerySet):
    """Who may do what is decided here and in permissions.py, from the same Share rows."""

    def visible_to(self, user):
        """Conversations this person may read and watch: their own and those shared with them or their teams."""
        if not user.is_authenticated:
            return self.none()
        return self.visible_to_account(user)

    def visible_to_account(self, user):
        """visible_to for an account object whether or not it can log in now (a deactivated one, say)."""
        return self.filter(Q(owner=user) | Exists(Share.objects.granting(user).filter(conversation=OuterRef("pk"))))

    def writable_by(self, user):
        """Conversations this person may send to, stop and regenerate in: their own and those they collaborate on."""
        if not user.is_authenticated:
            return self.none()
        collaborating = Share.objects.granting(user).filter(conversation=OuterRef("pk"), role=Share.Role.COLLABORATOR)
        return self.filter(Q(owner=user) | Exists(collaborating))

    def with_access(self, user):
        """visible_to(user), each row annotated with `collaborating`, so permissions.role_of needs no query."""
        collaborating = Share.objects.granting(user).filter(conversation=OuterRef("pk"), role=Share.Role.COLLABORATOR)
        return self.visible_to(user).annotate(collaborating=Exists(collaborating))

    def shared_with(self, user):
        """Conversations others shared with this person, directly or through a team."""
        return self.visible_to(user).exclude(owner=user)


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by conversation_owner_recent (owner, -updated), which also serves lookups by owner.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations", db_index=False
    )
    title = models.CharField(max_length=200, blank=True)
    model_config = models.ForeignKey(
        ModelConfig,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
        help_text="Empty: the default model.",
    )
    # The person's own settings, used where the model config allows them (ModelConfig.allow_custom_*).
    temperature = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)], help_text="Empty: the model's."
    )
    system_prompt = models.TextField(blank=True, help_text="Sent after the model's own system prompt.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(default=timezone.now, help_text="When the last message was added.")

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated"]
        indexes = [models.Index(fields=["owner", "-updated"], name="conversation_owner_recent")]

    def __str__(self) -> str:
        return self.title or "New chat"


class Message(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        ERROR = "error"

    # Indexed by message_conversation_order (conversation, id), which also serves lookups by conversation.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False)
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    html = models.TextField(blank=True, help_text="The content rendered and sanitised, kept so pages need not re-render.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    finish_reason = models.CharField(max_length=32, blank=True, help_text="Why the model stopped, as the API said.")
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    model_name = models.CharField(max_length=200, blank=True, help_text="The model the API said answered.")
    context_start = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="A reply only: the first message sent with it, when older ones were left out to fit the context window.",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["conversation", "id"], name="message_conversation_order"),
        ]
        constraints = [
            # One generation at a time per conversation, whichever process runs it.
            models.UniqueConstraint(
                fields=["conversation"], condition=Q(status="streaming"), name="one_streaming_reply_per_conversation"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


class ShareQuerySet(models.QuerySet):
    def granting(self, user):
        """Shares that reach this person: made to them, or to a team they belong to."""
        teams = TeamMembership.objects.filter(user=user).values("team_id")
        return self.filter(Q(user=user) | Q(team__in=teams))


class Share(models.Model):
    """A conversation shared with one person or one team (exactly one of the two)."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer (reads and watches live)"
        COLLABORATOR = "collaborator", "Collaborator (also sends, stops and regenerates)"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="shares_received"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="shares")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created = models.DateTimeField(auto_now_add=True)

    objects = ShareQuerySet.as_manager()

    class Meta:
        ordering = ["created"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False),
                name="share_with_user_or_team",
            ),
            models.UniqueConstraint(
                fields=["conversation", "user"], condition=Q(user__isnull=False), name="one_share_per_user"
            ),
            models.UniqueConstraint(
                fields=["conversation", "team"], condition=Q(team__isnull=False), name="one_share_per_team"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "conversation"], name="share_user"),
            models.Index(fields=["team", "conversation"], name="share_team"),
        ]

    def __str__(self) -> str:
        return f"{self.conversation} with {self.user or self.team} ({self.role})"

    @property
    def target(self):
        return self.user or self.team


def new_link_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


class PublicLinkQuerySet(models.QuerySet):
    def usable(self):
        """Links that open now: not expired (deleted links no longer exist)."""
        now = timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class PublicLink(models.Model):
    """A read-only link to a conversation, opened at /s/<token>/ without an account (unless limited to users)."""

    class Kind(models.TextChoices):
        SNAPSHOT = "snapshot", "Snapshot (as it is now)"
        LIVE = "live", "Live (always the current conversation)"

    class Audience(models.TextChoices):
        ANYONE = "anyone", "Anyone with the link"
        USERS = "users", "Only people logged in to this site"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="public_links")
    token = models.CharField(max_length=64, unique=True, default=new_link_token, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SNAPSHOT)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.ANYONE)
    password = models.CharField(max_length=128, blank=True, help_text="A password hash; empty for none.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    title = models.CharField(max_length=200, blank=True, help_text="The conversation's title when the snapshot was taken.")
    snapshot = models.JSONField(default=list, blank=True, help_text="The messages as shown when the snapshot was taken.")
    snapshot_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = PublicLinkQuerySet.as_manager()

    class Meta:
        ordering = ["created"]
        verbose_name = "public link"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} link to {self.conversation}"

    @property
    def has_password(self) -> bool:
        return bool(self.password)

    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class SiteSettings(models.Model):
    """Site-wide switches, kept in the database so an admin can change them without a deploy. One row."""

    public_links_enabled = models.BooleanField(
        default=True, help_text="Let owners create public links, and let existing links open. Off: every /s/ link answers 404."
    )

    class Meta:
        verbose_name = verbose_name_plural = "site settings"

    def __str__(self) -> str:
        return "Site settings"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def current(cls) -> "SiteSettings":
        """The settings row; the defaults (unsaved) until an admin first saves it."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)


class PresetQuerySet(models.QuerySet):
    def available_to(self, user):
        """Admins' presets (no owner) and this person's own."""
        return self.filter(Q(owner__isnull=True) | Q(owner=user))


class Preset(models.Model):
    """A named starting point: a system prompt and settings, chosen when starting or changing a conversation."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="presets",
        help_text="Empty: offered to everyone (made by an admin).",
    )
    model_config = models.ForeignKey(
        ModelConfig, null=True, blank=True, on_delete=models.SET_NULL, related_name="presets", help_text="Empty: keep the conversation's model."
    )
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    created = models.DateTimeField(auto_now_add=True)

    objects = PresetQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="one_preset_name_per_owner"),
            models.UniqueConstraint(fields=["name"], condition=Q(owner__isnull=True), name="one_shared_preset_name"),
        ]

    def __str__(self) -> str:
        return self.name


class UsageRecord(models.Model):
    """One reply's use of a model: who, which team, how many tokens, what it cost.

    Created when the reply starts (so requests-per-minute limits see it at once) and completed when it ends.
    """

    message = models.OneToOneField(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="usage_records")
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records",
        help_text="The person's team when the reply was made (the first they joined), whose budget it counts against.",
    )
    model_config = models.ForeignKey(ModelConfig, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records")
    model_name = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    estimated = models.BooleanField(default=False, help_text="The server sent no usage; the tokens were estimated from the text.")
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["user", "created"], name="usage_user_created"),
            models.Index(fields=["team", "created"], name="usage_team_created"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.model_name or self.model_config} · {self.total_tokens} tokens"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Limit(models.Model):
    """Caps for one person or one team (exactly one): tokens per day and month, requests per minute."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="limit")
    team = models.OneToOneField(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="limit")
    daily_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per day (UTC). Empty: no cap.")
    monthly_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per calendar month (UTC). Empty: no cap.")
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="Replies started per minute. Empty: no cap.")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False),
                name="limit_for_user_or_team",
            ),
        ]

    def __str__(self) -> str:
        return f"Limits for {self.user or self.team}"

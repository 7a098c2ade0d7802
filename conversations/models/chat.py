"""Conversations and their messages, and who may see them (ConversationQuerySet: the one access rule's queries)."""

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connections, models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .providers import ModelConfig


def _shares_granting(user):
    # sharing.py imports this module for its foreign keys, so Share is looked up when first needed.
    from .sharing import Share

    return Share.objects.granting(user), Share.Role.COLLABORATOR


class ConversationQuerySet(models.QuerySet):
    """Who may do what is decided here and in permissions.py, from the same Share rows."""

    def visible_to(self, user):
        """Conversations this person may read and watch: their own and those shared with them or their teams."""
        if not user.is_authenticated:
            return self.none()
        return self.visible_to_account(user)

    def visible_to_account(self, user):
        """visible_to for an account object whether or not it can log in now (a deactivated one, say)."""
        shares, _ = _shares_granting(user)
        return self.filter(Q(owner=user) | Exists(shares.filter(conversation=OuterRef("pk"))))

    def writable_by(self, user):
        """Conversations this person may send to, stop and regenerate in: their own and those they collaborate on."""
        if not user.is_authenticated:
            return self.none()
        shares, collaborator = _shares_granting(user)
        collaborating = shares.filter(conversation=OuterRef("pk"), role=collaborator)
        return self.filter(Q(owner=user) | Exists(collaborating))

    def with_access(self, user):
        """visible_to(user), each row annotated with `collaborating`, so permissions.role_of needs no query."""
        shares, collaborator = _shares_granting(user)
        collaborating = shares.filter(conversation=OuterRef("pk"), role=collaborator)
        return self.visible_to(user).annotate(collaborating=Exists(collaborating))

    def shared_with(self, user):
        """Conversations others shared with this person, directly or through a team.

        visible_to(user) without the owner's own, written from the shares' side: the database looks up the few
        shares that reach this person instead of testing every conversation of every person (the sidebar's
        "Shared with me" on a large site)."""
        if not user.is_authenticated:
            return self.none()
        shares, _ = _shares_granting(user)
        return self.filter(pk__in=shares.values("conversation_id")).exclude(owner=user)


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, verbose_name=_("ID"))
    # Indexed by conversation_owner_recent (owner, -updated), which also serves lookups by owner.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations", db_index=False, verbose_name=_("owner")
    )
    class TitleSource(models.TextChoices):
        FIRST_LINE = "first_line", _("The first message's first line")
        MODEL = "model", _("Written by a model")
        PERSON = "person", _("Set by a person")

    title = models.CharField(max_length=200, blank=True, verbose_name=_("title"))
    # Who wrote the title: a model's title replaces only FIRST_LINE, so a person's rename is never overwritten.
    title_source = models.CharField(
        max_length=16, choices=TitleSource.choices, default=TitleSource.FIRST_LINE, editable=False, verbose_name=_("title source")
    )
    model_config = models.ForeignKey(
        ModelConfig,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
        help_text=_("Empty: the default model."), verbose_name=_("model config"),
    )
    # The person's own settings, used where the model config allows them (ModelConfig.allow_custom_*).
    temperature = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text=_("Empty: the model's."),
        verbose_name=_("temperature"),
    )
    system_prompt = models.TextField(
        blank=True, help_text=_("Sent after the model's own system prompt."), verbose_name=_("system prompt")
    )
    created = models.DateTimeField(
        default=timezone.now, editable=False, verbose_name=_("created")
    )  # not auto_now_add: imports keep theirs
    updated = models.DateTimeField(
        default=timezone.now, help_text=_("When the last message was added."), verbose_name=_("updated")
    )
    # The leaf of the branch the page shows, the next send answers and exports and links take (a
    # message's version is chosen by choosing a leaf below it). Empty: the newest message's branch.
    current_leaf = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        verbose_name=_("current leaf"),
    )
    # Where an imported conversation came from ("chatgpt:<its id>", "export:<our id>"): importing the
    # same file twice finds it and skips it. Empty for conversations started here.
    import_key = models.CharField(max_length=200, blank=True, editable=False, verbose_name=_("import key"))
    # When someone last pressed Stop here (when the stop arrived): a reply whose send arrived before
    # it stops as soon as it starts, even if it was not yet listening for stops (streaming.py).
    stop_requested_at = models.DateTimeField(null=True, blank=True, editable=False, verbose_name=_("stop requested at"))
    # The owner's sidebar: pinned conversations stay at its top (most recently pinned first); archived
    # ones leave it (still reachable by URL, and listed on the Archived page). The owner's state only:
    # a conversation shared with you is listed by its activity, whatever its owner pinned or archived.
    pinned_at = models.DateTimeField(null=True, blank=True, verbose_name=_("pinned at"))
    archived_at = models.DateTimeField(null=True, blank=True, verbose_name=_("archived at"))

    objects = ConversationQuerySet.as_manager()

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-updated"]
        indexes = [
            models.Index(fields=["owner", "-updated"], name="conversation_owner_recent"),
            # The sidebar's pages, keyset-paginated on (updated, id): each serves one list.
            models.Index(
                fields=["owner", "-updated", "-id"],
                condition=Q(archived_at__isnull=True, pinned_at__isnull=True),
                name="conversation_sidebar_recent",
            ),
            models.Index(
                fields=["owner", "-pinned_at"],
                condition=Q(pinned_at__isnull=False, archived_at__isnull=True),
                name="conversation_sidebar_pinned",
            ),
            models.Index(
                fields=["owner", "-updated", "-id"], condition=Q(archived_at__isnull=False), name="conversation_archived"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "import_key"], condition=~Q(import_key=""), name="conversation_imported_once"
            ),
        ]

    def __str__(self) -> str:
        return self.title or gettext("New chat")


class MessageQuerySet(models.QuerySet):
    def create(self, **fields):
        """A message; given no parent (not even None), it follows the conversation's newest message, as a
        message added to a conversation always did before it was a tree."""
        if "parent" not in fields and "parent_id" not in fields:
            conversation = fields.get("conversation_id") or fields["conversation"].pk
            newest = Message.objects.filter(conversation_id=conversation).order_by("-id").values_list("id", flat=True)
            fields["parent_id"] = newest.first()
        return super().create(**fields)

    def create_tree(self, messages: list, parents: list[int | None]) -> list:
        """Save `messages` (unsaved, of one conversation) where `parents[i]` is the index in `messages` of the
        message that messages[i] follows (None: a first message); each parent comes before its children.
        A few statements whatever the depth: the rows, then their parents' ids."""
        created = self.bulk_create(messages, batch_size=500)
        for message, parent in zip(created, parents, strict=True):
            message.parent_id = None if parent is None else created[parent].pk
        # One prepared UPDATE run for every row: bulk_update's CASE expressions cost more to build in Python
        # than the database takes to run them (half an import's time, measured with bench/import_load.py).
        pairs = [(message.parent_id, message.pk) for message in created if message.parent_id is not None]
        if pairs:
            connection = connections[self.db]
            quote = connection.ops.quote_name
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"UPDATE {quote(self.model._meta.db_table)} SET {quote('parent_id')} = %s WHERE {quote('id')} = %s", pairs
                )
        return created


class Message(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system", _("System")
        USER = "user", _("User")
        ASSISTANT = "assistant", _("Assistant")

    class Status(models.TextChoices):
        STREAMING = "streaming", _("Streaming")
        COMPLETE = "complete", _("Complete")
        STOPPED = "stopped", _("Stopped")
        ERROR = "error", _("Error")

    # Indexed by message_conversation_order (conversation, id), which also serves lookups by conversation.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False, verbose_name=_("conversation")
    )
    # The message this one follows (none for a first message). Messages with the same parent are
    # versions of one another (an edited question, a regenerated reply), oldest first.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children", editable=False, verbose_name=_("parent")
    )
    role = models.CharField(max_length=16, choices=Role.choices, verbose_name=_("role"))
    content = models.TextField(blank=True, verbose_name=_("content"))
    html = models.TextField(
        blank=True, help_text=_("The content rendered and sanitised, kept so pages need not re-render."), verbose_name=_("HTML")
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE, verbose_name=_("status"))
    finish_reason = models.CharField(
        max_length=32, blank=True, help_text=_("Why the model stopped, as the API said."), verbose_name=_("finish reason")
    )
    error = models.TextField(blank=True, verbose_name=_("error"))
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("prompt tokens"))
    completion_tokens = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("completion tokens"))
    model_name = models.CharField(
        max_length=200, blank=True, help_text=_("The model the API said answered."), verbose_name=_("model name")
    )
    context_start = models.BigIntegerField(
        null=True,
        blank=True,
        help_text=_("A reply only: the first message sent with it, when older ones were left out to fit the context window."),
        verbose_name=_("context start"),
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        verbose_name=_("author"),
    )
    created = models.DateTimeField(
        default=timezone.now, editable=False, verbose_name=_("created")
    )  # not auto_now_add: imports keep theirs
    updated = models.DateTimeField(auto_now=True, verbose_name=_("updated"))

    objects = MessageQuerySet.as_manager()

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
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
        return f"{self.get_role_display()}: {self.content[:60]}"

"""Writes to conversations: create, rename, delete, their own settings, copying one ("Continue in my own chat"),
and the html a message keeps (rendered from its content, whoever saves it)."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import fulltext, metering, permissions, selectors, throttle
from ..exceptions import InvalidChange, MessageNotFound, ModelNotAvailable
from ..llm import ModelSpec
from ..models import Conversation, Message
from ..rendering import render_markdown

TITLE_LENGTH = 60

def title_from(content: str) -> str:
    words = " ".join(content.split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1].rstrip() + "…"


def stored_html(*, role: str, content: str) -> str:
    """What Message.html keeps for a message: a reply's Markdown rendered and sanitised; nothing for a
    person's own words, which pages escape as they show them (selectors.conversations.message_html)."""
    return render_markdown(content) if role == Message.Role.ASSISTANT else ""


@transaction.atomic
def conversation_create(*, owner, model_config_id: int | None = None, content: str = "") -> Conversation:
    """A new conversation, optionally with the person's first message already in it.

    ModelNotAvailable if the model picked is disabled or not open to the owner.
    LimitExceeded if a first message is given and the owner is over a budget (its reply would be refused).
    """
    throttle.conversations_check(owner)
    if content:
        metering.limits_check(owner)
    # The conversation keeps the model it starts with (the owner's default unless one was picked).
    if model_config_id is not None:
        if selectors.providers.usable_model_spec(owner, model_config_id) is None:
            raise ModelNotAvailable()
    else:
        model_config_id = selectors.providers.default_model_id(owner)
    conversation = Conversation.objects.create(owner=owner, model_config_id=model_config_id, title=title_from(content))
    fulltext.index.title_index(conversation.id, conversation.title)
    if content:
        first = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=content, author=owner)
        fulltext.index.messages_index([(first.id, conversation.id, content)])
        Conversation.objects.filter(pk=conversation.pk).update(current_leaf=first)
    return conversation


def branch_select(*, conversation_id, message_id: int, save: bool) -> tuple[int | None, int, list[dict]]:
    """The branch through `message_id`, down to the newest message below it: the message's parent, the
    branch's leaf, and the branch's messages from `message_id` down (as `message` frames carry them).
    With `save` (those who may write), it becomes the conversation's current branch: a reload shows it,
    and a send that names no parent answers it. The caller has checked that this person may see it."""
    tree = selectors.conversations.conversation_tree(conversation_id)
    if message_id not in tree:
        raise MessageNotFound()
    leaf = tree.newest_leaf(message_id)
    if save:
        Conversation.objects.filter(pk=conversation_id).update(current_leaf_id=leaf)
    path = tree.path(leaf)
    below = path[path.index(message_id) :]
    return tree.parent[message_id], leaf, selectors.conversations.branch_payloads(conversation_id, tree, below)


@transaction.atomic
def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    """A person names the conversation: a model's title never replaces it (services.titles)."""
    conversation.title = title.strip()[:200]
    conversation.title_source = Conversation.TitleSource.PERSON
    conversation.save(update_fields=["title", "title_source"])
    fulltext.index.title_index(conversation.id, conversation.title)
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


def conversation_pin(*, conversation: Conversation, pinned: bool) -> Conversation:
    """Pin to the top of the owner's sidebar (unarchiving it: a pinned conversation is one in sight), or unpin."""
    conversation.pinned_at = timezone.now() if pinned else None
    fields = ["pinned_at"]
    if pinned and conversation.archived_at is not None:
        conversation.archived_at = None
        fields.append("archived_at")
    conversation.save(update_fields=fields)
    return conversation


def conversation_archive(*, conversation: Conversation, archived: bool) -> Conversation:
    """Take out of the owner's sidebar (and off the pinned list) into Archived, or bring it back."""
    conversation.archived_at = timezone.now() if archived else None
    conversation.pinned_at = None if archived else conversation.pinned_at
    conversation.save(update_fields=["archived_at", "pinned_at"])
    return conversation


BULK_ARCHIVE, BULK_UNARCHIVE, BULK_DELETE = "archive", "unarchive", "delete"
BULK_ACTIONS = (BULK_ARCHIVE, BULK_UNARCHIVE, BULK_DELETE)


@transaction.atomic
def conversations_bulk_change(*, user, conversation_ids: list, action: str) -> int:
    """Archive, unarchive or delete several conversations at once. Only those this person may do it to (the
    owner's: permissions.conversations_allowing) are changed; other ids are ignored. Returns how many changed."""
    required = permissions.Action.DELETE if action == BULK_DELETE else permissions.Action.ORGANISE
    chosen = permissions.conversations_allowing(user, required).filter(pk__in=conversation_ids)
    if action == BULK_DELETE:
        # One at a time, as a single delete does: each deletion closes its sockets and stops its reply (signals.py).
        conversations = list(chosen)
        for conversation in conversations:
            conversation_delete(conversation=conversation)
        return len(conversations)
    if action == BULK_ARCHIVE:
        return chosen.update(archived_at=timezone.now(), pinned_at=None)
    if action == BULK_UNARCHIVE:
        return chosen.update(archived_at=None)
    raise ValueError(action)

# --- per-conversation settings and presets ------------------------------------------------
# What is stored on a conversation is what its current model lets the person set; the send path
# (selectors.providers.conversation_spec) applies it only where the model still allows it, within its bounds now.


def check_own_settings(spec: ModelSpec, *, temperature: float | None, system_prompt: str) -> None:
    """InvalidChange unless the model lets a person set this temperature and system prompt."""
    if temperature is not None:
        if spec.temperature_range is None:
            raise InvalidChange(_("%(model)s does not let you set the temperature.") % {"model": spec.label})
        low, high = spec.temperature_range
        if not low <= temperature <= high:
            raise InvalidChange(
                _("Choose a temperature from %(low)s to %(high)s for %(model)s.")
                % {"low": f"{low:g}", "high": f"{high:g}", "model": spec.label}
            )
    if system_prompt.strip() and not spec.custom_system_prompt:
        raise InvalidChange(_("%(model)s does not take a system prompt of your own.") % {"model": spec.label})


@transaction.atomic
def conversation_settings_update(
    *, conversation: Conversation, user, temperature: float | None, system_prompt: str
) -> Conversation:
    """Set the conversation's own temperature (None: the model's) and system prompt, checked against the
    model the conversation uses for this person now. InvalidChange (nothing saved) when outside what it allows."""
    _, spec = selectors.providers.conversation_model_for(user, conversation)
    check_own_settings(spec, temperature=temperature, system_prompt=system_prompt)
    conversation.temperature = temperature
    conversation.system_prompt = system_prompt.strip()
    conversation.save(update_fields=["temperature", "system_prompt"])
    return conversation

@transaction.atomic
def conversation_copy(*, owner, title: str, rows: list[dict]) -> Conversation:
    """A new conversation owned by `owner` holding these messages (role and content): "Continue in my own chat"."""
    throttle.conversations_check(owner)
    conversation = Conversation.objects.create(
        owner=owner, title=title_from(title), model_config_id=selectors.providers.default_model_id(owner)
    )
    messages = []
    for row in rows:
        if not row["content"] or row["role"] not in (Message.Role.USER, Message.Role.ASSISTANT):
            continue
        assistant = row["role"] == Message.Role.ASSISTANT
        messages.append(
            Message(
                conversation=conversation,
                role=row["role"],
                content=row["content"],
                html=stored_html(role=row["role"], content=row["content"]),
                author=None if assistant else owner,
            )
        )
    created = Message.objects.create_tree(messages, [None, *range(len(messages) - 1)])  # one branch, in order
    fulltext.index.title_index(conversation.id, conversation.title)
    fulltext.index.messages_index((message.id, conversation.id, message.content) for message in created)
    return conversation

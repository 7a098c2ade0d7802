"""Writes: conversations, the reply lifecycle in the database, and the provider from the environment."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from conversations import selectors, services
from conversations.exceptions import ConversationNotFound, ModelNotAvailable, NothingToRegenerate, ReplyInProgress
from conversations.models import Conversation, Message, ModelConfig, Provider

pytestmark = pytest.mark.django_db


# --- the provider and model from OPENAI_* -----------------------------------------------------


@pytest.fixture
def openai_env(settings):
    settings.OPENAI_API_KEY = "sk-env-0123456789abcdef"
    settings.OPENAI_BASE_URL = "http://127.0.0.1:11434/v1"
    settings.OPENAI_MODEL = "llama3.2"
    return settings


def test_env_creates_a_default_provider_and_model(openai_env):
    config = services.providers.provider_sync_from_env()
    assert config.is_default and config.enabled
    assert (config.model, config.provider.base_url, config.provider.api_key) == (
        "llama3.2",
        "http://127.0.0.1:11434/v1",
        "sk-env-0123456789abcdef",
    )


def test_env_sync_is_idempotent(openai_env):
    for _ in range(3):
        services.providers.provider_sync_from_env()
    assert Provider.objects.count() == 1
    assert ModelConfig.objects.count() == 1


def test_env_changes_update_the_provider_and_make_the_new_model_default(openai_env):
    first = services.providers.provider_sync_from_env()
    openai_env.OPENAI_API_KEY = "sk-rotated-0123456789"
    openai_env.OPENAI_MODEL = "qwen2.5"
    second = services.providers.provider_sync_from_env()
    assert Provider.objects.get().api_key == "sk-rotated-0123456789"
    assert ModelConfig.objects.get(pk=second.pk).is_default
    assert not ModelConfig.objects.get(pk=first.pk).is_default


def test_env_model_does_not_take_the_default_from_an_admins_choice(openai_env):
    other = Provider.objects.create(name="Company vLLM", base_url="http://vllm:8000/v1")
    chosen = ModelConfig.objects.create(display_name="Chosen", provider=other, model="big", is_default=True)
    config = services.providers.provider_sync_from_env()
    assert not config.is_default
    assert ModelConfig.objects.get(is_default=True) == chosen


def test_without_a_key_nothing_is_created(settings):
    settings.OPENAI_API_KEY = ""
    assert services.providers.provider_sync_from_env() is None
    assert not Provider.objects.exists()


def test_migrate_applies_the_environment(openai_env):
    call_command("migrate", verbosity=0)
    assert ModelConfig.objects.filter(model="llama3.2", is_default=True).exists()


# --- first run ------------------------------------------------------------------------------------


def test_bootstrap_creates_an_admin_once_and_prints_its_password(settings):
    settings.OPENAI_API_KEY = ""
    out = StringIO()
    call_command("bootstrap", stdout=out)
    password = out.getvalue().split("password:")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    again = StringIO()
    call_command("bootstrap", stdout=again)
    assert "password" not in again.getvalue()
    assert get_user_model().objects.count() == 1


# --- conversations --------------------------------------------------------------------------------


def test_new_conversation_starts_with_the_default_model_and_the_first_message(user, model_config):
    conversation = services.conversations.conversation_create(owner=user, content="  What   is\na good title?  ")
    assert conversation.model_config == model_config
    assert conversation.title == "What is a good title?"
    assert list(conversation.messages.values_list("role", "content")) == [("user", "  What   is\na good title?  ")]


def test_long_first_message_makes_a_short_title(user):
    conversation = services.conversations.conversation_create(owner=user, content="word " * 50)
    assert len(conversation.title) == services.conversations.TITLE_LENGTH and conversation.title.endswith("…")


def test_reply_begin_saves_the_message_and_a_streaming_placeholder(user, conversation, model_config):
    Message.objects.create(conversation=conversation, role="user", content="Earlier", author=user)
    Message.objects.create(conversation=conversation, role="assistant", content="")  # an empty reply is not history
    plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="Now")
    saved = list(conversation.messages.order_by("id").values_list("role", "content", "status", "author_id"))
    assert saved[-2:] == [("user", "Now", "complete", user.id), ("assistant", "", "streaming", None)]
    assert plan.reply_id == conversation.messages.order_by("id").last().id
    assert plan.history == [{"role": "user", "content": "Earlier"}, {"role": "user", "content": "Now"}]
    assert plan.user_message["content"] == "Now" and plan.user_message["author"] == "alice"
    assert plan.spec.model == "fake-model"
    conversation.refresh_from_db()
    assert conversation.model_config_id == model_config.id


def test_reply_begin_refuses_while_a_reply_streams(user, conversation):
    services.replies.reply_begin(user=user, conversation_id=conversation.id, content="first")
    with pytest.raises(ReplyInProgress):
        services.replies.reply_begin(user=user, conversation_id=conversation.id, content="second")
    assert conversation.messages.count() == 2


def test_a_reply_orphaned_by_a_crash_is_closed_and_the_send_goes_ahead(user, conversation, settings):
    plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="first")
    services.replies.replies_checkpoint({plan.reply_id: "half a rep"})
    Message.objects.filter(pk=plan.reply_id).update(updated=timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER + 1))
    services.replies.reply_begin(user=user, conversation_id=conversation.id, content="second")
    orphan = Message.objects.get(pk=plan.reply_id)
    assert (orphan.status, orphan.content, orphan.error) == ("error", "half a rep", services.replies.INTERRUPTED)
    assert "half a rep" in orphan.html


def test_reply_begin_in_someone_elses_conversation_is_not_found(conversation, make_user):
    with pytest.raises(ConversationNotFound):
        services.replies.reply_begin(user=make_user("mallory"), conversation_id=conversation.id, content="hi")


def test_reply_begin_with_a_disabled_model_is_refused(user, conversation, model_config):
    model_config.enabled = False
    model_config.save()
    with pytest.raises(ModelNotAvailable):
        services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi", model_config_id=model_config.id)
    assert not conversation.messages.exists()


def test_conversation_whose_model_was_disabled_falls_back_to_the_default(user, conversation, model_config):
    other = ModelConfig.objects.create(display_name="Old", provider=model_config.provider, model="old", enabled=False)
    Conversation.objects.filter(pk=conversation.pk).update(model_config=other)
    plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
    assert plan.spec.model == "fake-model"


def test_without_any_model_the_demo_answers(user, conversation):
    plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
    assert plan.spec == selectors.providers.DEMO_SPEC


def test_regenerate_without_a_message_is_refused(user, conversation):
    with pytest.raises(NothingToRegenerate):
        services.replies.reply_regenerate_begin(user=user, conversation_id=conversation.id)


def test_checkpoint_never_overwrites_a_finished_reply(user, conversation):
    plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
    services.replies.reply_finish(reply_id=plan.reply_id, content="final text", status="complete", finish_reason="stop")
    services.replies.replies_checkpoint({plan.reply_id: "final"})  # a checkpoint that lost the race
    reply = Message.objects.get(pk=plan.reply_id)
    assert (reply.content, reply.status) == ("final text", "complete")


def test_finish_saves_the_rendered_html_usage_and_model(user, conversation):
    from conversations.llm import Usage

    plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="hi")
    services.replies.reply_finish(
        reply_id=plan.reply_id,
        content="**bold** <script>x</script>",
        status="stopped",
        usage=Usage(9, 12),
        model_name="gpt-4o-mini-2024-07-18",
    )
    reply = Message.objects.get(pk=plan.reply_id)
    assert "<strong>bold</strong>" in reply.html and "<script>" not in reply.html
    assert (reply.status, reply.prompt_tokens, reply.completion_tokens) == ("stopped", 9, 12)
    assert reply.model_name == "gpt-4o-mini-2024-07-18"


def test_model_settings_are_cached_until_saved(model_config):
    assert selectors.providers.enabled_model_spec(model_config.id).parameters == {}
    ModelConfig.objects.filter(pk=model_config.pk).update(temperature=0.5)  # no signal: still cached
    assert selectors.providers.enabled_model_spec(model_config.id).parameters == {}
    model_config.temperature = 0.7
    model_config.save()  # the admin saves like this: the cache is cleared
    assert selectors.providers.enabled_model_spec(model_config.id).parameters == {"temperature": 0.7}


def test_user_pseudonym_is_stable_and_says_nothing_about_the_person(user, settings):
    first = selectors.providers.user_pseudonym(user.pk)
    assert first == selectors.providers.user_pseudonym(user.pk)
    assert first != selectors.providers.user_pseudonym(user.pk + 1)
    assert user.username not in first


# --- public link passwords: guesses are counted per link and address ---------------------------


def test_a_links_password_guesses_lock_out_one_address_not_another(user, conversation):
    from conversations.exceptions import TooManyAttempts

    link = services.sharing.public_link_create(conversation=conversation, kind="snapshot", audience="anyone", password="s3same")
    attempts = services.sharing.PASSWORD_ATTEMPTS
    guesses = [services.sharing.public_link_unlock(link=link, password="guess", address="10.0.0.1") for _ in range(attempts)]
    assert guesses == [False] * attempts
    with pytest.raises(TooManyAttempts, match="Try again in 10 minutes"):
        services.sharing.public_link_unlock(link=link, password="s3same", address="10.0.0.1")
    assert services.sharing.public_link_unlock(link=link, password="s3same", address="10.0.0.2")

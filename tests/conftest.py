"""The suite's fixtures and hooks: the fake OpenAI server, settings and caches reset around each test,
and the people, models and conversations most tests start from (built with tests/factories.py).
Helpers that are not fixtures are in tests/helpers.py."""

import pytest
from channels.layers import channel_layers

from conversations import llm, streaming
from conversations.consumers import presence
from conversations.models import Conversation, ModelConfig, Provider
from tests import factories
from tests.fake_openai import FakeOpenAI
from tests.helpers import disconnect_open_sockets

# --- the fake server, and a clean slate around each test ---------------------------------------

@pytest.fixture(scope="session")
def fake_openai_server():
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(fake_openai_server):
    """The fake OpenAI server, with no scripts queued and no requests recorded."""
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()


@pytest.fixture(autouse=True)
def fast_settings(settings):
    # Tests run without `collectstatic`; the browser test's server runs the real storage.
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CHAT_DEMO_DELAY = 0.0
    # Most tests script each upstream request; the title tests (test_titles.py) turn titles on.
    settings.CHAT_TITLES_BY_MODEL = False
    settings.CHAT_FLUSH_INTERVAL = 0.02
    settings.CHAT_CHECKPOINT_INTERVAL = 0.2
    # One attempt per reply, so a scripted error is the answer; tests/test_retry.py turns retrying on.
    settings.CHAT_UPSTREAM_RETRIES = 0


@pytest.fixture(autouse=True)
async def finish_replies():
    """No socket or reply outlives its test, and the shared client is closed on the test's own loop."""
    yield
    await disconnect_open_sockets()
    await streaming.wait_for_replies(timeout=10)
    streaming.upkeep.forget()
    presence.forget()
    await llm.close_shared_client()
    # A server has one event loop; each test has its own. channels-redis keeps connections
    # bound to the loop that made them, so every test closes them and starts a fresh layer.
    for layer in list(channel_layers.backends.values()):
        await layer.flush()
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def english_to_start():
    """Each test starts in English: LocaleMiddleware leaves a page's language active in the thread after it."""
    from django.utils import translation

    translation.activate("en")
    yield
    translation.activate("en")


@pytest.fixture(autouse=True)
def fresh_cache():
    """Django's cache (password-guess counters, limits) starts empty: ids and addresses repeat from test to test."""
    from django.core.cache import cache

    from conversations.throttle import forget_penalties

    cache.clear()
    forget_penalties()
    yield
    cache.clear()
    forget_penalties()


@pytest.fixture(autouse=True)
def fresh_model_cache():
    """Model settings and who has limits are cached per process; each test starts from the database."""
    from conversations.metering import forget_limits
    from conversations.selectors.providers import forget_models

    forget_models()
    forget_limits()
    yield
    forget_models()
    forget_limits()


@pytest.fixture(scope="session", autouse=True)
def close_database_thread_connections(django_db_setup, django_db_blocker):
    """database_sync_to_async runs on one shared thread; close its connections so the test database can be dropped."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


# --- people --------------------------------------------------------------------------------------


@pytest.fixture
def make_user(db):
    """factories.make_user with the username first: make_user("bob", is_staff=True)."""

    def make(username: str = "alice", **fields):
        return factories.make_user(username=username, **fields)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def alice(user):
    """The same person as `user`, named for tests where several people meet."""
    return user


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def carol(make_user):
    return make_user("carol")


@pytest.fixture
def superuser(db):
    return factories.make_superuser()


@pytest.fixture
def logged_in(client, user):
    """pytest-django's client, logged in as `user`."""
    client.force_login(user)
    return client


# --- providers and models ------------------------------------------------------------------------


@pytest.fixture
def provider(db) -> Provider:
    """A provider nothing is sent to, with a key: for the admin's forms and the models' validation."""
    return factories.make_provider(
        name="Upstream", base_url="https://api.example.com/v1", api_key=factories.TEST_KEY, timeout=30
    )


@pytest.fixture
def fake_provider(db, upstream) -> Provider:
    """The provider on the fake OpenAI server."""
    return factories.make_provider(upstream=upstream)


@pytest.fixture
def model_config(fake_provider) -> ModelConfig:
    """The default model, "Fake model", answered by the fake server."""
    return factories.make_model_config(provider=fake_provider, is_default=True)


@pytest.fixture
def make_model(fake_provider):
    """More models on the fake server's provider (the one `model_config` is on, when a test has both):
    make_model("Otters only", teams=[otters], order=5)."""

    def make(display_name: str, **fields) -> ModelConfig:
        return factories.make_model_config(provider=fake_provider, display_name=display_name, **fields)

    return make


# --- conversations -------------------------------------------------------------------------------


@pytest.fixture
def conversation(user) -> Conversation:
    return factories.make_conversation(owner=user, title="Test chat")


@pytest.fixture
def make_conversation(user):
    """factories.make_conversation, owned by `user` unless `owner` says otherwise."""

    def make(*, owner=None, title: str = "A chat", **fields) -> Conversation:
        return factories.make_conversation(owner=owner or user, title=title, **fields)

    return make


@pytest.fixture
def checkpoints(monkeypatch) -> list[dict[int, str]]:
    """Every checkpoint this test's replies make, as the {reply id: text} each one saves (they still save)."""
    from conversations import services

    saved: list[dict[int, str]] = []
    original = services.replies.replies_checkpoint

    def recording(contents: dict[int, str]) -> None:
        saved.append(dict(contents))
        original(contents)

    monkeypatch.setattr(services.replies, "replies_checkpoint", recording)
    return saved


@pytest.fixture
def flaky_layer(settings):
    """The in-memory channel layer, made to fail on demand (tests/flaky_layer.py: `with layer_down(): ...`)."""
    from tests.flaky_layer import FlakyChannelLayer

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.flaky_layer.FlakyChannelLayer", "CONFIG": {"capacity": 1000}}}
    channel_layers.backends.clear()
    FlakyChannelLayer.failures = 0
    yield FlakyChannelLayer
    FlakyChannelLayer.down = False

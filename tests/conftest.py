import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from conversations import llm, streaming
from conversations.models import Conversation, ModelConfig, Provider
from tests.fake_openai import FakeOpenAI

TEST_KEY = "sk-test-0123456789abcdefWXYZ"

# What the app's client gets under fast_settings (streaming.upstream_options), for tests that call stream_reply
# themselves: llm reads no settings, so they pass it.
TEST_OPTIONS = llm.ClientOptions(retries=0, demo_delay=0.0)


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
    settings.CHAT_FLUSH_INTERVAL = 0.02
    settings.CHAT_CHECKPOINT_INTERVAL = 0.2
    # One attempt per reply, so a scripted error is the answer; tests/test_retry.py turns retrying on.
    settings.CHAT_UPSTREAM_RETRIES = 0


_open_communicators: list[WebsocketCommunicator] = []


@pytest.fixture(autouse=True)
async def finish_replies():
    """No socket or reply outlives its test, and the shared client is closed on the test's own loop."""
    yield
    while _open_communicators:
        communicator = _open_communicators.pop()
        if communicator.future.cancelled():
            continue  # a receive timed out and cancelled it: the test failed already; keep it one failure
        # A refused socket's consumer runs until it hears the disconnect; with Redis, a
        # consumer left waiting on the channel layer would hold the loop open at teardown.
        await communicator.disconnect()
    await streaming.wait_for_replies(timeout=10)
    await llm.close_shared_client()
    # A server has one event loop; each test has its own. channels-redis keeps connections
    # bound to the loop that made them, so every test closes them and starts a fresh layer.
    for layer in list(channel_layers.backends.values()):
        await layer.flush()
    channel_layers.backends.clear()


@pytest.fixture
def make_user(db):
    def make(username: str = "alice", **extra):
        return get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def model_config(db, upstream) -> ModelConfig:
    """The default model, answered by the fake server."""
    provider = Provider.objects.create(name="Fake", base_url=upstream.base_url, api_key=TEST_KEY, timeout=5)
    return ModelConfig.objects.create(display_name="Fake model", provider=provider, model="fake-model", is_default=True)


@pytest.fixture
def conversation(user) -> Conversation:
    return Conversation.objects.create(owner=user, title="Test chat")


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def connect(user, conversation_id, *, query: str = "", origin: str = "http://testserver") -> WebsocketCommunicator:
    """A websocket to the real ASGI application (origin check and auth included), connected."""
    from chatsite.asgi import application

    headers = [(b"origin", origin.encode()), (b"host", b"testserver")]
    if user is not None:
        cookie = await sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    path = f"/ws/conversations/{conversation_id}/" + (f"?{query}" if query else "")
    communicator = WebsocketCommunicator(application, path, headers=headers)
    _open_communicators.append(communicator)
    return communicator


async def receive_until(communicator: WebsocketCommunicator, predicate, timeout: float = 5.0) -> list[dict]:
    """Frames received up to and including the first one `predicate` accepts."""
    frames = []
    while True:
        frame = json.loads(await communicator.receive_from(timeout=timeout))
        frames.append(frame)
        if predicate(frame):
            return frames


def done(frame: dict) -> bool:
    return frame["type"] == "done"


def text_of(frames: list[dict], message_id: int) -> str:
    """The reply text a client would show, checking that offsets leave no gap and no overlap."""
    text = ""
    for frame in frames:
        if frame["type"] == "delta" and frame["message_id"] == message_id:
            assert frame["offset"] == len(text), f"gap or repeat at {frame['offset']} (have {len(text)})"
            text += frame["content"]
    return text


@pytest.fixture(autouse=True)
def fresh_cache():
    """Django's cache (password-guess counters) starts empty: ids repeat from test to test."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


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


def message_list_html(html: str) -> str:
    """The page's list of messages only: not the <template> the browser builds new messages from."""
    start = html.index('<ol class="messages" id="messages"')
    return html[start : html.index("</ol>", start) + len("</ol>")]

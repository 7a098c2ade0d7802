"""Pages and the demo endpoint, through Django's test client."""

import json
import re
import uuid
from datetime import timedelta

import pytest
from django.test import AsyncClient

from conversations.models import Conversation, Message
from tests.factories import TEST_KEY, make_history, make_message
from tests.helpers import login, message_list_html, page, picker, sidebar_titles

pytestmark = pytest.mark.django_db


# --- reading pages ---------------------------------------------------------------------


def picker_options(html: str) -> list[tuple[str, str, bool]]:
    """(value, label, selected) for each option of the page's model picker."""
    return [(option["value"], option["label"], option["selected"]) for option in picker(html)]


# --- logging in ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", f"/c/{uuid.uuid4()}/"])
def test_anonymous_visitor_is_sent_to_log_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_anonymous_visitor_cannot_create_a_conversation(client):
    response = client.post("/c/new/", {"content": "Hi"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not Conversation.objects.exists()


def test_login_page_shows_the_form(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert 'name="username"' in page(response)
    assert 'name="password"' in page(response)


def test_logging_in_goes_home(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_logging_in_with_a_wrong_password_stays_on_the_form(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert 'role="alert"' in page(response)
    assert client.get("/").status_code == 302


def test_logging_in_returns_to_the_page_asked_for(client, conversation):
    path = f"/c/{conversation.id}/"
    response = client.post(f"/accounts/login/?next={path}", {"username": "alice", "password": "pw-alice", "next": path})
    assert response["Location"] == path


def test_logout_refuses_get(logged_in):
    assert logged_in.get("/accounts/logout/").status_code == 405
    assert logged_in.get("/").status_code == 200


def test_logout_by_post_ends_the_session(logged_in):
    response = logged_in.post("/accounts/logout/")
    assert response.status_code == 302
    assert logged_in.get("/").status_code == 302


# --- the home page -----------------------------------------------------------------------


def test_home_lists_only_the_persons_own_conversations(logged_in, make_conversation, make_user):
    make_conversation(title="Mine")
    make_conversation(owner=make_user("mallory"), title="Not mine")
    assert sidebar_titles(page(logged_in.get("/"))) == ["Mine"]


def test_home_lists_conversations_most_recently_active_first(logged_in, make_conversation):
    make_conversation(title="Old", ago=timedelta(days=2))
    make_conversation(title="New", ago=timedelta(0))
    make_conversation(title="Middle", ago=timedelta(hours=1))
    assert sidebar_titles(page(logged_in.get("/"))) == ["New", "Middle", "Old"]


def test_home_escapes_conversation_titles(logged_in, make_conversation):
    make_conversation(title="<script>alert(1)</script>")
    html = page(logged_in.get("/"))
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_untitled_conversation_is_listed_as_new_chat(logged_in, make_conversation):
    make_conversation(title="")
    assert sidebar_titles(page(logged_in.get("/"))) == ["New chat"]


# --- creating a conversation -----------------------------------------------------------


def test_new_conversation_is_csrf_protected(user):
    client = login(user, enforce_csrf_checks=True)
    response = client.post("/c/new/", {"content": "Hi"})
    assert response.status_code == 403
    assert not Conversation.objects.exists()


def test_new_conversation_with_the_csrf_token_is_accepted(user):
    client = login(user, enforce_csrf_checks=True)
    client.get("/")
    response = client.post("/c/new/", {"content": "Hi", "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert response.status_code == 302
    assert Conversation.objects.count() == 1


def test_new_conversation_belongs_to_the_poster_and_opens_it(logged_in, user):
    response = logged_in.post("/c/new/", {"content": ""})
    conversation = Conversation.objects.get()
    assert conversation.owner == user
    assert response.status_code == 302
    assert response["Location"] == f"/c/{conversation.id}/"


def test_new_conversation_without_content_has_no_messages_and_awaits_nothing(logged_in):
    logged_in.post("/c/new/", {"content": "   "})
    conversation = Conversation.objects.get()
    assert conversation.title == ""
    assert not conversation.messages.exists()
    assert 'data-awaiting-reply="false"' in page(logged_in.get(f"/c/{conversation.id}/"))


def test_new_conversation_with_content_saves_the_first_message_and_title(logged_in, user):
    logged_in.post("/c/new/", {"content": "How do  otters\nsleep?"})
    conversation = Conversation.objects.get()
    (message,) = conversation.messages.all()
    assert (message.role, message.content, message.author) == ("user", "How do  otters\nsleep?", user)
    assert conversation.title == "How do otters sleep?"


def test_page_of_a_new_conversation_with_content_awaits_the_reply(logged_in):
    response = logged_in.post("/c/new/", {"content": "Hi"}, follow=True)
    assert 'data-awaiting-reply="true"' in page(response)


def test_new_conversation_remembers_the_chosen_model(logged_in, make_model):
    chosen = make_model("Second")
    make_model("First", is_default=True)
    logged_in.post("/c/new/", {"content": "Hi", "model": chosen.id})
    assert Conversation.objects.get().model_config == chosen


@pytest.mark.parametrize("which", ["unknown", "disabled"])
def test_new_conversation_with_an_unavailable_model_is_refused(logged_in, make_model, which):
    model_id = make_model("Off", enabled=False).id if which == "disabled" else 9999
    response = logged_in.post("/c/new/", {"content": "Hi", "model": model_id})
    assert response.status_code == 400
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


def test_new_conversation_with_a_nul_byte_is_refused(logged_in):
    response = logged_in.post("/c/new/", {"content": "a\x00b"})
    assert response.status_code == 400
    assert not Conversation.objects.exists()


def test_new_conversation_with_too_long_content_is_refused(logged_in, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    response = logged_in.post("/c/new/", {"content": "x" * 11})
    assert response.status_code == 400
    assert not Conversation.objects.exists()


def test_refused_form_keeps_what_was_typed(logged_in):
    response = logged_in.post("/c/new/", {"content": "keep <me>", "model": 9999})
    assert "keep &lt;me&gt;</textarea>" in page(response)


def test_new_conversation_refuses_get(logged_in):
    assert logged_in.get("/c/new/").status_code == 405


# --- the conversation page --------------------------------------------------------------


def test_conversation_page_shows_the_history(logged_in, conversation):
    make_message(conversation=conversation, content="Is <b>this</b> bold?")
    make_message(
        conversation=conversation, role=Message.Role.ASSISTANT, content="*stored*", html="<p><em>stored reply</em></p>"
    )
    html = page(logged_in.get(f"/c/{conversation.id}/"))
    assert "Is &lt;b&gt;this&lt;/b&gt; bold?" in html
    assert "<b>this</b>" not in html
    assert "<p><em>stored reply</em></p>" in html
    assert html.index("Is &lt;b&gt;") < html.index("stored reply")


def test_conversation_page_awaits_a_reply_after_a_user_message(logged_in, conversation):
    make_message(conversation=conversation)
    assert 'data-awaiting-reply="true"' in page(logged_in.get(f"/c/{conversation.id}/"))


def test_conversation_page_awaits_nothing_after_a_reply(logged_in, conversation):
    make_message(conversation=conversation)
    make_message(conversation=conversation, role=Message.Role.ASSISTANT, content="Hi", html="<p>Hi</p>")
    assert 'data-awaiting-reply="false"' in page(logged_in.get(f"/c/{conversation.id}/"))


def test_streaming_reply_is_rendered_as_escaped_text(logged_in, conversation):
    make_message(conversation=conversation)
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="<b>x</b>",
        html="<b>x</b>",
        status=Message.Status.STREAMING,
    )
    html = page(logged_in.get(f"/c/{conversation.id}/"))
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_page_asks_the_socket_for_everything_from_the_streaming_reply(logged_in, conversation):
    make_message(conversation=conversation)
    reply = make_message(
        conversation=conversation, role=Message.Role.ASSISTANT, content="par", status=Message.Status.STREAMING
    )
    assert f'data-since="{reply.id}"' in page(logged_in.get(f"/c/{conversation.id}/"))


def test_page_asks_the_socket_for_what_comes_after_the_last_message(logged_in, conversation):
    make_message(conversation=conversation)
    last = make_message(conversation=conversation, role=Message.Role.ASSISTANT, content="Hi", html="<p>Hi</p>")
    assert f'data-since="{last.id + 1}"' in page(logged_in.get(f"/c/{conversation.id}/"))


def test_reply_error_is_shown_escaped(logged_in, conversation):
    make_message(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.ERROR, error="<i>upstream</i> down"
    )
    html = page(logged_in.get(f"/c/{conversation.id}/"))
    assert "&lt;i&gt;upstream&lt;/i&gt; down" in html


def test_unknown_conversation_is_404(logged_in):
    assert logged_in.get(f"/c/{uuid.uuid4()}/").status_code == 404


def test_another_persons_conversation_page_is_404(client, conversation, make_user):
    client.force_login(make_user("mallory"))
    assert client.get(f"/c/{conversation.id}/").status_code == 404


def test_another_persons_conversation_cannot_be_renamed(client, conversation, make_user):
    client.force_login(make_user("mallory"))
    response = client.post(f"/c/{conversation.id}/rename/", {"title": "Pwned"})
    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.title == "Test chat"


def test_another_persons_conversation_cannot_be_deleted(client, conversation, make_user):
    make_message(conversation=conversation)
    client.force_login(make_user("mallory"))
    assert client.post(f"/c/{conversation.id}/delete/").status_code == 404
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    assert conversation.messages.count() == 1


def test_owner_renames_a_conversation(logged_in, conversation):
    response = logged_in.post(f"/c/{conversation.id}/rename/", {"title": "  Otters  "})
    assert response["Location"] == f"/c/{conversation.id}/"
    conversation.refresh_from_db()
    assert conversation.title == "Otters"


def test_rename_to_an_empty_title_changes_nothing(logged_in, conversation):
    logged_in.post(f"/c/{conversation.id}/rename/", {"title": ""})
    conversation.refresh_from_db()
    assert conversation.title == "Test chat"


def test_owner_deletes_a_conversation_and_its_messages(logged_in, conversation):
    make_message(conversation=conversation)
    make_message(conversation=conversation, role=Message.Role.ASSISTANT, content="Hi", html="<p>Hi</p>")
    response = logged_in.post(f"/c/{conversation.id}/delete/")
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


@pytest.mark.parametrize("action", ["rename", "delete"])
def test_rename_and_delete_refuse_get(logged_in, conversation, action):
    assert logged_in.get(f"/c/{conversation.id}/{action}/").status_code == 405
    conversation.refresh_from_db()
    assert conversation.title == "Test chat"


# --- models: the demo notice and the picker ---------------------------------------------


def test_demo_notice_shows_when_no_model_is_configured(logged_in):
    assert "offline demo model" in page(logged_in.get("/"))


def test_demo_notice_shows_when_every_model_is_disabled(logged_in, make_model):
    make_model("Off", enabled=False)
    assert "offline demo model" in page(logged_in.get("/"))


def test_demo_notice_is_hidden_once_a_model_is_enabled(logged_in, model_config, conversation):
    assert "offline demo model" not in page(logged_in.get("/"))
    assert "offline demo model" not in page(logged_in.get(f"/c/{conversation.id}/"))


def test_picker_offers_only_the_demo_when_no_model_is_configured(logged_in):
    assert picker_options(page(logged_in.get("/"))) == [("", "Demo model (offline)", True)]


def test_picker_lists_enabled_models_with_the_default_selected_on_home(logged_in, make_model):
    first = make_model("Alpha")
    second = make_model("Beta", is_default=True)
    make_model("Gamma", enabled=False)
    assert picker_options(page(logged_in.get("/"))) == [
        (str(first.id), "Alpha", False),
        (str(second.id), "Beta", True),
    ]


def test_picker_selects_the_conversations_model(logged_in, make_model, make_conversation):
    first = make_model("Alpha", is_default=True)
    second = make_model("Beta")
    make_model("Gamma", enabled=False)
    conversation = make_conversation(model_config=second)
    assert picker_options(page(logged_in.get(f"/c/{conversation.id}/"))) == [
        (str(first.id), "Alpha", False),
        (str(second.id), "Beta", True),
    ]


def test_picker_falls_back_to_the_default_when_the_conversations_model_is_disabled(
    logged_in, make_model, make_conversation
):
    default = make_model("Alpha", is_default=True)
    conversation = make_conversation(model_config=make_model("Off", enabled=False))
    assert picker_options(page(logged_in.get(f"/c/{conversation.id}/"))) == [(str(default.id), "Alpha", True)]


# --- secrets and headers -----------------------------------------------------------------


KEY_PIECES = sorted({TEST_KEY[start : start + 8] for start in range(len(TEST_KEY) - 7)})


def assert_no_key(html: str) -> None:
    leaked = [piece for piece in KEY_PIECES if piece in html]
    assert not leaked, f"pieces of the API key in the page: {leaked}"


@pytest.mark.parametrize("path", ["/", "conversation"])
def test_api_key_is_in_no_chat_page(logged_in, model_config, conversation, path):
    conversation.model_config = model_config
    conversation.save()
    make_message(conversation=conversation)
    response = logged_in.get(f"/c/{conversation.id}/" if path == "conversation" else path)
    assert response.status_code == 200
    assert_no_key(page(response))


def test_api_key_is_not_on_the_login_page(client, model_config):
    assert_no_key(page(client.get("/accounts/login/")))


@pytest.mark.parametrize("which", ["changelist", "change"])
def test_api_key_is_in_no_admin_provider_page(client, superuser, model_config, which):
    client.force_login(superuser)
    provider_id = model_config.provider_id
    path = "/admin/conversations/provider/" + (f"{provider_id}/change/" if which == "change" else "")
    response = client.get(path)
    assert response.status_code == 200
    assert "Fake" in page(response)
    assert_no_key(page(response))


@pytest.mark.parametrize("name", ["home", "conversation", "login", "not_found"])
def test_html_pages_carry_a_content_security_policy(client, user, conversation, name):
    if name != "login":
        client.force_login(user)
    path = {
        "home": "/",
        "conversation": f"/c/{conversation.id}/",
        "login": "/accounts/login/",
        "not_found": f"/c/{uuid.uuid4()}/",
    }[name]
    response = client.get(path)
    directives = [part.strip() for part in response["Content-Security-Policy"].split(";")]
    assert "script-src 'self'" in directives
    assert "style-src 'self'" in directives
    assert "frame-ancestors 'none'" in directives


def test_admin_pages_have_no_content_security_policy(client, superuser):
    client.force_login(superuser)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response


# --- query counts ----------------------------------------------------------------------


# session, user, their profile (language, theme, name), model choices, presets, the sidebar's pinned conversations
# and its first page (two queries: pinned ones stay at the top whatever their date), shared with me, invitations waiting
HOME_QUERIES = 9


@pytest.mark.parametrize("count", [3, 30])
def test_home_query_count_does_not_grow_with_conversations(
    logged_in, make_conversation, model_config, django_assert_num_queries, count
):
    for number in range(count):
        make_conversation(title=f"Chat {number}", ago=timedelta(minutes=number))
    with django_assert_num_queries(HOME_QUERIES):
        response = logged_in.get("/")
    assert len(sidebar_titles(page(response))) == count


# session, user, profile, conversation, the tree, its branch, model choices, presets (Settings), sidebar (pinned, first page),
# shared with me, invitations waiting, and for the owner the Share dialog: shares, teammates, teams, site settings, public links
CONVERSATION_QUERIES = 17


@pytest.mark.parametrize("count", [2, 200])
def test_conversation_page_query_count_does_not_grow_with_messages(
    logged_in, conversation, make_user, model_config, django_assert_num_queries, count
):
    bob = make_user("bob")
    make_history(conversation=conversation, count=count, authors=[conversation.owner, bob])
    conversation.model_config = model_config
    conversation.save()
    with django_assert_num_queries(CONVERSATION_QUERIES):
        response = logged_in.get(f"/c/{conversation.id}/")
    assert page(response).count('class="message message--') == count


# --- the demo model over HTTP ------------------------------------------------------------


def test_demo_models_lists_demo(logged_in):
    response = logged_in.get("/demo/v1/models")
    assert response.status_code == 200
    assert [model["id"] for model in response.json()["data"]] == ["demo"]


def test_demo_models_refuses_anonymous(client):
    response = client.get("/demo/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "auth"


def test_demo_completions_refuses_anonymous(client):
    response = client.post("/demo/v1/chat/completions", {"messages": []}, content_type="application/json")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["message"]


@pytest.mark.parametrize("body", ["not json", "[1, 2]"])
def test_demo_completions_refuses_a_body_that_is_not_an_object(logged_in, body):
    response = logged_in.post("/demo/v1/chat/completions", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def read_events(response) -> list[str]:
    body = b"".join([chunk async for chunk in response.streaming_content])
    return [event.removeprefix("data: ") for event in body.decode().split("\n\n") if event]


@pytest.mark.django_db(transaction=True)
async def test_demo_completions_streams_a_reply_quoting_the_last_user_message(user):
    client = AsyncClient()
    await client.aforce_login(user)
    body = {
        "model": "demo",
        "stream": True,
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "Do otters hold hands?"},
        ],
    }
    response = await client.post("/demo/v1/chat/completions", body, content_type="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    events = await read_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(choice["delta"].get("content", "") for chunk in chunks for choice in chunk["choices"])
    assert "> Do otters hold hands?" in text
    assert "first question" not in text
    assert chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.django_db(transaction=True)
async def test_demo_legacy_completions_streams_text(user):
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.post(
        "/demo/v1/completions", {"prompt": "User: hello there\nAssistant:"}, content_type="application/json"
    )
    events = await read_events(response)
    assert events[-1] == "[DONE]"
    text = "".join(choice["text"] for event in events[:-1] for choice in json.loads(event)["choices"])
    assert "> hello there" in text


def test_healthz_is_ok_without_logging_in(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"


@pytest.mark.parametrize(
    "fields, note",
    [
        ({"finish_reason": "length"}, '<p class="message-note">Cut off: the reply reached its length limit.</p>'),
        ({"finish_reason": "content_filter"}, '<p class="message-note">Cut off by the provider&#x27;s content filter.</p>'),
        (
            {"status": "error", "error": "The model server failed (500)."},
            '<p class="message-error">The model server failed (500).</p>',
        ),
    ],
)
def test_the_line_under_a_reply_is_the_servers(logged_in, conversation, fields, note):
    make_message(conversation=conversation, role=Message.Role.ASSISTANT, content="Partly", html="<p>Partly</p>", **fields)
    listed = message_list_html(page(logged_in.get(f"/c/{conversation.id}/")))
    assert note in listed


def test_the_page_carries_the_template_new_messages_are_built_from(logged_in, conversation):
    html = page(logged_in.get(f"/c/{conversation.id}/"))
    template = re.search(r'<template id="message-template">(.*?)</template>', html, re.S).group(1)
    assert '<li class="context-marker" role="separator">Older messages above were not sent' in template
    assert '<li class="message"><p class="message-author" hidden></p><div class="message-body"></div>' in template
    assert '<p class="message-note" hidden></p>' in template
    # Every message gets a copy of these (chat.js); a viewer's have no Edit or Regenerate.
    actions = re.search(r'<div class="message-actions">(.*?)</div>', template, re.S).group(1)
    for part in ("version-previous", "version-next", "message-copy", "message-edit", "message-regenerate", "message-meta"):
        assert f'class="{part}"' in actions


def test_the_javascript_catalog_is_served_to_everyone_and_every_page_loads_it(client):
    response = client.get("/jsi18n/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    assert b"django.gettext" in response.content
    assert '<script src="/jsi18n/?l=en" defer></script>' in client.get("/accounts/login/").content.decode()
    # The address names the language, so a browser that cached one catalog fetches the other after a switch.
    chinese = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert '<script src="/jsi18n/?l=zh-hans" defer></script>' in chinese


def test_a_logged_in_persons_pages_are_never_cached(logged_in, conversation, client):
    for url in ("/", f"/c/{conversation.id}/", "/usage/", "/teams/", "/presets/"):
        assert logged_in.get(url)["Cache-Control"] == "private, no-store", url
    client.logout()
    assert not client.get("/healthz").has_header("Cache-Control")  # nothing personal: left alone

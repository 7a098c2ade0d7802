"""The admin: a write-only provider key, validated model parameters, and usable changelists."""

import re

import pytest
from django.db import IntegrityError, transaction

from conversations.admin.providers import mask_key
from conversations.models import Conversation, Message, ModelConfig, Provider
from tests.factories import TEST_KEY
from tests.helpers import MODELS, PROVIDERS, add_model_errors, listed, model_form, provider_form

pytestmark = pytest.mark.django_db


def save_provider(admin_client, provider: Provider, **changes):
    response = admin_client.post(f"{PROVIDERS}{provider.pk}/change/", provider_form(provider, **changes))
    assert response.status_code == 302, response.context["adminform"].form.errors
    provider.refresh_from_db()
    return response


# --- the provider key ---------------------------------------------------------------


def test_provider_change_page_never_renders_the_stored_key(admin_client, provider):
    html = admin_client.get(f"{PROVIDERS}{provider.pk}/change/").content.decode()
    assert TEST_KEY not in html
    assert TEST_KEY[3:-4] not in html
    (field,) = re.findall(r'<input[^>]*name="api_key"[^>]*>', html)
    assert 'type="password"' in field
    assert "value=" not in field


def test_provider_change_page_shows_the_masked_key(admin_client, provider):
    assert "sk-…WXYZ" in admin_client.get(f"{PROVIDERS}{provider.pk}/change/").content.decode()


def test_saving_with_an_empty_key_keeps_the_stored_key(admin_client, provider):
    save_provider(admin_client, provider, name="Renamed")
    assert (provider.name, provider.api_key) == ("Renamed", TEST_KEY)


def test_saving_with_a_new_key_replaces_it(admin_client, provider):
    save_provider(admin_client, provider, api_key="  sk-new-key-0000000000NEWK  ")
    assert provider.api_key == "sk-new-key-0000000000NEWK"


def test_clear_api_key_removes_the_stored_key(admin_client, provider):
    save_provider(admin_client, provider, clear_api_key="on")
    assert provider.api_key == ""


def test_clear_api_key_wins_over_a_typed_key(admin_client, provider):
    save_provider(admin_client, provider, api_key="sk-typed-000000000000TYPE", clear_api_key="on")
    assert provider.api_key == ""


def test_adding_a_provider_saves_its_key(admin_client):
    response = admin_client.post(
        f"{PROVIDERS}add/",
        {"name": "New", "kind": "openai_compatible", "base_url": "http://localhost:11434/v1", "api_key": TEST_KEY,
         "connect_timeout": 10, "timeout": 60},
    )
    assert response.status_code == 302
    assert Provider.objects.get(name="New").api_key == TEST_KEY


def test_adding_a_provider_without_a_key_leaves_it_empty(admin_client):
    admin_client.post(
        f"{PROVIDERS}add/",
        {
            "name": "Ollama",
            "kind": "openai_compatible",
            "base_url": "http://localhost:11434/v1",
            "connect_timeout": 10,
            "timeout": 60,
        },
    )
    assert Provider.objects.get(name="Ollama").api_key == ""


@pytest.mark.parametrize("base_url", ["ftp://api.example.com/v1", "api.example.com/v1", "http://"])
def test_provider_base_url_must_be_http(admin_client, provider, base_url):
    response = admin_client.post(f"{PROVIDERS}{provider.pk}/change/", provider_form(provider, base_url=base_url))
    assert "base_url" in response.context["adminform"].form.errors


def test_changelist_shows_the_masked_key_and_never_the_key(admin_client, provider):
    Provider.objects.create(name="Keyless", base_url="http://localhost:8000/v1")
    Provider.objects.create(name="Short", base_url="http://localhost:8001/v1", api_key="abc123")
    html = admin_client.get(PROVIDERS).content.decode()
    assert "sk-…WXYZ" in html
    assert TEST_KEY not in html
    assert "abc123" not in html
    assert TEST_KEY[3:11] not in html


@pytest.mark.parametrize(
    ("key", "masked"),
    [("", "—"), ("short", "set"), ("abcdefghijk", "set"), (TEST_KEY, "sk-…WXYZ"), ("key-0123456789abcd", "…abcd")],
)
def test_mask_key_shows_too_little_to_use(key, masked):
    assert mask_key(key) == masked


# --- model parameters: every bound, through the add form ----------------------------------


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("temperature", "-0.01", False),
        ("temperature", "0", True),
        ("temperature", "2", True),
        ("temperature", "2.01", False),
        ("top_p", "-0.01", False),
        ("top_p", "0", True),
        ("top_p", "1", True),
        ("top_p", "1.01", False),
        ("presence_penalty", "-2.01", False),
        ("presence_penalty", "-2", True),
        ("presence_penalty", "2", True),
        ("presence_penalty", "2.01", False),
        ("frequency_penalty", "-2.01", False),
        ("frequency_penalty", "-2", True),
        ("frequency_penalty", "2", True),
        ("frequency_penalty", "2.01", False),
        ("max_tokens", "0", False),
        ("max_tokens", "1", True),
        ("max_tokens", "-1", False),
    ],
)
def test_numeric_parameter_bounds(admin_client, provider, field, value, accepted):
    errors = add_model_errors(admin_client, provider, **{field: value})
    if accepted:
        assert errors == {}
        assert getattr(ModelConfig.objects.get(), field) == float(value)
    else:
        assert field in errors
        assert not ModelConfig.objects.exists()


@pytest.mark.parametrize(
    ("stop", "saved"),
    [
        ('["a", "b", "c", "d"]', ["a", "b", "c", "d"]),
        ('["\\nUser:"]', ["\nUser:"]),
        ("", []),
        ("[]", []),
    ],
)
def test_stop_accepted(admin_client, provider, stop, saved):
    assert add_model_errors(admin_client, provider, stop=stop) == {}
    assert ModelConfig.objects.get().stop == saved


@pytest.mark.parametrize(
    "stop",
    ['["a", "b", "c", "d", "e"]', '"END"', '{"a": 1}', "42", '["a", 1]', '["a", null]', '[""]', "[not json"],
)
def test_stop_rejected(admin_client, provider, stop):
    assert "stop" in add_model_errors(admin_client, provider, stop=stop)
    assert not ModelConfig.objects.exists()


@pytest.mark.parametrize(
    ("logit_bias", "saved"),
    [
        ('{"50256": -100, "1": 100}', {"50256": -100, "1": 100}),
        ('{"7": 0.5}', {"7": 0.5}),
        ("", {}),
        ("{}", {}),
    ],
)
def test_logit_bias_accepted(admin_client, provider, logit_bias, saved):
    assert add_model_errors(admin_client, provider, logit_bias=logit_bias) == {}
    assert ModelConfig.objects.get().logit_bias == saved


@pytest.mark.parametrize(
    "logit_bias",
    [
        '{"50256": -101}',
        '{"50256": 100.5}',
        '{"abc": 1}',
        '{"-1": 1}',
        '{"1.5": 1}',
        '{"1": true}',
        '{"1": "5"}',
        '{"1": null}',
        "[1, 2]",
        '"50256"',
        "5",
    ],
)
def test_logit_bias_rejected(admin_client, provider, logit_bias):
    assert "logit_bias" in add_model_errors(admin_client, provider, logit_bias=logit_bias)
    assert not ModelConfig.objects.exists()


def test_empty_parameters_are_saved_as_unset(admin_client, provider):
    assert add_model_errors(admin_client, provider) == {}
    config = ModelConfig.objects.get()
    assert config.api_parameters() == {}
    assert (config.temperature, config.max_tokens, config.stop, config.logit_bias) == (None, None, [], {})


def test_marking_a_second_model_default_unsets_the_first(admin_client, provider):
    first = ModelConfig.objects.create(display_name="First", provider=provider, model="m1", is_default=True)
    assert add_model_errors(admin_client, provider, display_name="Second", is_default="on") == {}
    first.refresh_from_db()
    assert not first.is_default
    assert list(ModelConfig.objects.filter(is_default=True).values_list("display_name", flat=True)) == ["Second"]


def test_making_an_existing_model_default_through_its_change_page_unsets_the_other(admin_client, provider):
    first = ModelConfig.objects.create(display_name="First", provider=provider, model="m1", is_default=True)
    second = ModelConfig.objects.create(display_name="Second", provider=provider, model="m2")
    form = model_form(provider, display_name="Second", model="m2", is_default="on")
    response = admin_client.post(f"{MODELS}{second.pk}/change/", form)
    assert response.status_code == 302
    assert list(ModelConfig.objects.filter(is_default=True)) == [second]
    first.refresh_from_db()
    assert not first.is_default


def test_api_parameters_returns_only_what_is_set_under_the_api_names(provider):
    config = ModelConfig(
        display_name="M",
        provider=provider,
        model="m",
        temperature=0.0,
        max_tokens=256,
        frequency_penalty=-0.5,
        stop=["\nUser:"],
        logit_bias={"50256": -100},
    )
    assert config.api_parameters() == {
        "temperature": 0.0,
        "max_tokens": 256,
        "frequency_penalty": -0.5,
        "stop": ["\nUser:"],
        "logit_bias": {"50256": -100},
    }


def test_api_parameters_are_empty_when_nothing_is_set(provider):
    assert ModelConfig(display_name="M", provider=provider, model="m").api_parameters() == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 3),
        ("temperature", -0.5),
        ("top_p", 1.5),
        ("max_tokens", 0),
        ("presence_penalty", -2.5),
        ("frequency_penalty", 2.5),
    ],
)
def test_database_refuses_out_of_range_parameters(provider, field, value):
    config = ModelConfig(display_name="M", provider=provider, model="m", **{field: value})
    with pytest.raises(IntegrityError), transaction.atomic():
        config.save()
    assert not ModelConfig.objects.exists()


def test_database_refuses_a_second_default(provider):
    ModelConfig.objects.create(display_name="A", provider=provider, model="a", is_default=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelConfig.objects.create(display_name="B", provider=provider, model="b", is_default=True)


# --- conversation and message changelists -----------------------------------------------


@pytest.fixture
def chats(alice, bob, provider):
    config = ModelConfig.objects.create(display_name="Picked", provider=provider, model="p")
    otters = Conversation.objects.create(owner=alice, title="About otters", model_config=config)
    beavers = Conversation.objects.create(owner=bob, title="About beavers")
    Message.objects.create(conversation=otters, role="user", content="Do otters hold hands?", author=alice)
    Message.objects.create(
        conversation=otters, role="assistant", content="Sometimes.", status="error", error="upstream down"
    )
    Message.objects.create(conversation=beavers, role="user", content="Dams?", author=bob)
    return {"otters": otters, "beavers": beavers, "config": config}


def test_conversation_changelist_lists_every_conversation_with_message_counts(admin_client, chats):
    rows = listed(admin_client.get("/admin/conversations/conversation/"))
    assert {row.title: row.message_count for row in rows} == {"About otters": 2, "About beavers": 1}


@pytest.mark.parametrize(("query", "expected"), [("otters", ["About otters"]), ("bob", ["About beavers"])])
def test_conversation_changelist_search(admin_client, chats, query, expected):
    rows = listed(admin_client.get("/admin/conversations/conversation/", {"q": query}))
    assert [row.title for row in rows] == expected


def test_conversation_changelist_filters_by_model(admin_client, chats):
    response = admin_client.get("/admin/conversations/conversation/", {"model_config__id__exact": chats["config"].pk})
    assert [row.title for row in listed(response)] == ["About otters"]


def test_conversation_change_page_shows_its_messages(admin_client, chats):
    response = admin_client.get(f"/admin/conversations/conversation/{chats['otters'].pk}/change/")
    assert response.status_code == 200
    assert "Do otters hold hands?" in response.content.decode()


def test_message_changelist_search(admin_client, chats):
    rows = listed(admin_client.get("/admin/conversations/message/", {"q": "otters"}))
    # Found by content, or by the title "About otters".
    assert sorted(row.content for row in rows) == ["Do otters hold hands?", "Sometimes."]


def test_message_changelist_filters_by_status(admin_client, chats):
    rows = listed(admin_client.get("/admin/conversations/message/", {"status__exact": "error"}))
    assert [row.content for row in rows] == ["Sometimes."]


def test_message_changelist_filters_by_role(admin_client, chats):
    rows = listed(admin_client.get("/admin/conversations/message/", {"role__exact": "user"}))
    assert sorted(row.content for row in rows) == ["Dams?", "Do otters hold hands?"]


def test_message_changelist_shows_rows(admin_client, chats):
    html = admin_client.get("/admin/conversations/message/", {"role__exact": "assistant"}).content.decode()
    assert "About otters" in html
    assert "About beavers" not in html


def test_model_changelist_renders(admin_client, chats):
    rows = listed(admin_client.get(MODELS, {"q": "Picked"}))
    assert [row.display_name for row in rows] == ["Picked"]

"""Providers: what each type sends, keys encrypted at rest and never shown, and the admin's provider tools."""

import importlib
import io
import logging
import re

import pytest
from channels.db import database_sync_to_async
from cryptography.fernet import Fernet, InvalidToken
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from conversations import encryption
from conversations.llm import UpstreamError, stream_reply
from conversations.llm.checks import check_connection
from conversations.models import ModelConfig, Provider
from conversations.selectors.providers import model_spec, provider_probe_spec
from conversations.services.providers import provider_sync_from_env
from tests.factories import TEST_KEY, UNREACHABLE_URL, make_model_config, make_provider
from tests.fake_openai import Script, answer, error
from tests.helpers import MODELS, PROVIDERS, add_provider_errors, provider_form

pytestmark = pytest.mark.django_db

HISTORY = [{"role": "user", "content": "Hi"}]
AZURE_KEY = "0123456789abcdef0123456789abcdef"  # Azure keys are 32 hex digits, with no sk- to spot them by
DEPLOYMENT = "my-gpt4o-deployment"
ECHOED_401 = "Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."


@pytest.fixture(autouse=True)
def fresh_encryption_keys():
    """encryption._box is cached per process; tests that change CHAT_ENCRYPTION_KEYS need it rebuilt."""
    encryption._box.cache_clear()
    yield
    encryption._box.cache_clear()


def use_keys(settings, keys: list[str]) -> None:
    settings.CHAT_ENCRYPTION_KEYS = keys
    encryption._box.cache_clear()


def raw_key(provider: Provider) -> str:
    """The api_key column as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM conversations_provider WHERE id = %s", [provider.pk])
        return cursor.fetchone()[0]


def key_fragments(key: str) -> list[str]:
    return [key, key[3:-4], key[:12], key[-12:]]


def stored_spec(upstream, kind: str, model: str = "fake-model", **provider_fields):
    """A provider and model saved and read back, as a reply would see them."""
    config = make_model_config(provider=make_provider(upstream=upstream, kind=kind, **provider_fields), model=model)
    return model_spec(ModelConfig.objects.select_related("provider").get(pk=config.pk))


async def reply_request(upstream, kind: str, model: str = "fake-model", **provider_fields):
    spec = await database_sync_to_async(stored_spec)(upstream, kind, model, **provider_fields)
    text = "".join([chunk.text async for chunk in stream_reply(spec, HISTORY)])
    assert text == "Hello from the fake model."
    (request,) = upstream.requests
    return request


def streamed_body(model: str) -> dict:
    return {"model": model, "messages": HISTORY, "stream": True, "stream_options": {"include_usage": True}}


# --- what each provider type sends -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_openai_sends_bearer_key_organization_project_and_extra_headers(upstream):
    request = await reply_request(
        upstream, "openai", organization="org-123", project="proj_456", extra_headers={"X-Team": "research"}
    )
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert request.headers["openai-organization"] == "org-123"
    assert request.headers["openai-project"] == "proj_456"
    assert request.headers["x-team"] == "research"
    assert request.headers["content-type"] == "application/json"
    assert "api-key" not in request.headers
    assert request.body == streamed_body("fake-model")


@pytest.mark.django_db(transaction=True)
async def test_openai_without_organization_or_project_sends_neither(upstream):
    request = await reply_request(upstream, "openai")
    assert "openai-organization" not in request.headers
    assert "openai-project" not in request.headers


@pytest.mark.django_db(transaction=True)
async def test_azure_posts_to_the_deployment_with_the_api_version_and_an_api_key_header(upstream):
    request = await reply_request(upstream, "azure", DEPLOYMENT, api_key=AZURE_KEY)
    assert request.method == "POST"
    assert request.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2024-10-21"
    assert request.headers["api-key"] == AZURE_KEY
    assert "authorization" not in request.headers
    assert request.body == streamed_body(DEPLOYMENT)


@pytest.mark.django_db(transaction=True)
async def test_azure_sends_extra_headers_too(upstream):
    request = await reply_request(upstream, "azure", DEPLOYMENT, extra_headers={"X-Ms-Client": "chat"})
    assert request.headers["x-ms-client"] == "chat"


@pytest.mark.django_db(transaction=True)
async def test_openai_compatible_sends_a_bearer_key(upstream):
    request = await reply_request(upstream, "openai_compatible", extra_headers={"HTTP-Referer": "https://chat.example.com"})
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert request.headers["http-referer"] == "https://chat.example.com"
    assert request.body == streamed_body("fake-model")


@pytest.mark.django_db(transaction=True)
async def test_openai_compatible_without_a_key_sends_no_auth_header(upstream):
    request = await reply_request(upstream, "openai_compatible", api_key="")
    assert "authorization" not in request.headers
    assert "api-key" not in request.headers


@pytest.mark.django_db(transaction=True)
async def test_a_failing_reply_never_shows_the_key_the_server_echoes(upstream, caplog):
    caplog.set_level(logging.DEBUG)
    spec = await database_sync_to_async(stored_spec)(upstream, "openai")
    upstream.push(error(401, ECHOED_401.format(key=TEST_KEY), code="invalid_api_key"))
    with pytest.raises(UpstreamError) as raised:
        async for _ in stream_reply(spec, HISTORY):
            pass
    assert raised.value.status == 401
    assert "Incorrect API key provided" in raised.value.message
    assert TEST_KEY not in raised.value.message
    assert TEST_KEY[3:-4] not in raised.value.message
    assert TEST_KEY not in caplog.text


@pytest.mark.django_db(transaction=True)
async def test_an_azure_key_echoed_in_an_error_is_taken_out(upstream):
    spec = await database_sync_to_async(stored_spec)(upstream, "azure", DEPLOYMENT, api_key=AZURE_KEY)
    upstream.push(error(401, f"Access denied due to invalid subscription key {AZURE_KEY}."))
    with pytest.raises(UpstreamError) as raised:
        async for _ in stream_reply(spec, HISTORY):
            pass
    assert AZURE_KEY not in raised.value.message
    assert "invalid subscription key" in raised.value.message


def test_a_spec_repr_never_holds_the_key(upstream):
    spec = stored_spec(upstream, "openai")
    assert TEST_KEY not in repr(spec)
    assert spec.api_key == TEST_KEY


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Authorization", "authorization", "api-key", "API-Key", "Content-Type", "Host"])
def test_extra_headers_cannot_override_the_key_or_content_headers(name):
    provider = Provider(name="P", base_url="https://api.example.com/v1", extra_headers={name: "Bearer sk-other"})
    with pytest.raises(ValidationError) as raised:
        provider.full_clean()
    assert "cannot be overridden" in str(raised.value.message_dict["extra_headers"])


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"extra_headers": '{"Authorization": "Bearer x"}'}, "extra_headers", "cannot be overridden"),
        ({"extra_headers": '{"api-key": "x"}'}, "extra_headers", "cannot be overridden"),
        ({"extra_headers": '{"Bad Name": "x"}'}, "extra_headers", "not a valid header name"),
        ({"extra_headers": '{"X-A": "one\\ntwo"}'}, "extra_headers", "line breaks"),
        ({"extra_headers": '["X-A"]'}, "extra_headers", "JSON object"),
        ({"kind": "azure", "base_url": "https://res.openai.azure.com"}, "api_version", "Azure needs an API version"),
        (
            {"kind": "azure", "api_version": "2024-10-21", "base_url": "https://res.openai.azure.com/openai/deployments/d"},
            "base_url",
            "only the resource endpoint",
        ),
        ({"base_url": "https://api.example.com/v1/chat/completions"}, "base_url", "without /chat/completions"),
        ({"connect_timeout": "0"}, "connect_timeout", "greater than or equal to 0.5"),
        ({"timeout": "0.5"}, "timeout", "greater than or equal to 1"),
    ],
)
def test_provider_form_errors_say_what_to_fix(admin_client, changes, field, words):
    errors = add_provider_errors(admin_client, **changes)
    assert words in " ".join(errors.get(field, [])), errors
    assert not Provider.objects.exists()


def test_a_valid_azure_provider_is_saved_with_every_field(admin_client):
    errors = add_provider_errors(
        admin_client,
        name="Azure",
        kind="azure",
        base_url="https://res.openai.azure.com",
        api_key=AZURE_KEY,
        api_version="2024-10-21",
        extra_headers='{"X-Team": "research"}',
        connect_timeout="5",
        timeout="120",
    )
    assert errors == {}
    provider = Provider.objects.get()
    assert (provider.kind, provider.api_version, provider.api_key) == ("azure", "2024-10-21", AZURE_KEY)
    assert (provider.extra_headers, provider.connect_timeout, provider.timeout) == ({"X-Team": "research"}, 5, 120)


def test_empty_extra_headers_are_saved_as_an_empty_object(admin_client):
    assert add_provider_errors(admin_client, extra_headers="") == {}
    assert Provider.objects.get().extra_headers == {}


def test_a_rejected_form_does_not_echo_the_typed_key(admin_client):
    response = admin_client.post(f"{PROVIDERS}add/", provider_form(api_key=TEST_KEY, base_url="ftp://nope"))
    assert response.status_code == 200
    assert TEST_KEY not in response.content.decode()


# --- keys at rest ----------------------------------------------------------------------------------


def test_the_key_is_stored_encrypted_and_read_back_decrypted(upstream):
    provider = make_provider(upstream=upstream, kind="openai")
    stored = raw_key(provider)
    assert stored.startswith("fernet:")
    assert TEST_KEY not in stored
    assert TEST_KEY[3:-4] not in stored
    assert Provider.objects.get(pk=provider.pk).api_key == TEST_KEY


def test_an_empty_key_is_stored_empty(upstream):
    assert raw_key(make_provider(upstream=upstream, api_key="")) == ""


def test_a_key_saved_before_encryption_still_reads_and_the_migration_encrypts_it(upstream):
    provider = make_provider(upstream=upstream, kind="openai")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE conversations_provider SET api_key = %s WHERE id = %s", [TEST_KEY, provider.pk])
    assert raw_key(provider) == TEST_KEY
    assert Provider.objects.get(pk=provider.pk).api_key == TEST_KEY

    migration = importlib.import_module("conversations.migrations.0003_providers_models_usage_limits")
    historical = MigrationLoader(connection).project_state(("conversations", "0003_providers_models_usage_limits")).apps
    migration.encrypt_stored_keys(historical, None)

    assert raw_key(provider).startswith("fernet:")
    assert TEST_KEY not in raw_key(provider)
    assert Provider.objects.get(pk=provider.pk).api_key == TEST_KEY


@pytest.mark.parametrize("format", ["json", "xml", "jsonl"])
def test_dumpdata_writes_the_key_encrypted_and_loaddata_reads_it_back(upstream, tmp_path, format):
    make_provider(upstream=upstream, kind="openai")
    dumped = io.StringIO()
    call_command("dumpdata", "conversations.provider", format=format, stdout=dumped)
    for fragment in key_fragments(TEST_KEY):
        assert fragment not in dumped.getvalue()
    assert encryption.PREFIX in dumped.getvalue()

    Provider.objects.all().delete()
    fixture = tmp_path / f"providers.{format}"
    fixture.write_text(dumped.getvalue())
    call_command("loaddata", str(fixture), verbosity=0)

    provider = Provider.objects.get()
    assert provider.api_key == TEST_KEY
    assert encryption.decrypt(raw_key(provider)) == TEST_KEY  # encrypted once, not the dump's ciphertext again


def test_rotate_provider_keys_re_encrypts_every_key_with_the_first_key(settings, upstream):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    use_keys(settings, [old])
    first = make_provider(upstream=upstream, kind="openai")
    second = make_provider(upstream=upstream, kind="azure", api_key=AZURE_KEY)
    keyless = make_provider(upstream=upstream, name="Keyless", api_key="")
    before = raw_key(first)

    use_keys(settings, [new, old])
    out = io.StringIO()
    call_command("rotate_provider_keys", stdout=out)

    assert "Re-encrypted 2 provider API keys" in out.getvalue()
    after = raw_key(first)
    assert after != before and after.startswith("fernet:")
    assert Fernet(new.encode()).decrypt(after.removeprefix("fernet:").encode()).decode() == TEST_KEY
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(after.removeprefix("fernet:").encode())
    assert raw_key(keyless) == ""
    use_keys(settings, [new])  # the old key can go now
    assert Provider.objects.get(pk=first.pk).api_key == TEST_KEY
    assert Provider.objects.get(pk=second.pk).api_key == AZURE_KEY


def test_rotate_provider_keys_encrypts_a_key_saved_before_encryption(upstream):
    provider = make_provider(upstream=upstream, kind="openai")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE conversations_provider SET api_key = %s WHERE id = %s", [TEST_KEY, provider.pk])
    call_command("rotate_provider_keys", stdout=io.StringIO())
    assert raw_key(provider).startswith("fernet:")
    assert Provider.objects.get(pk=provider.pk).api_key == TEST_KEY


def test_rotate_provider_keys_without_the_old_key_fails_and_changes_nothing(settings, upstream):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    use_keys(settings, [old])
    provider = make_provider(upstream=upstream, kind="openai")
    before = raw_key(provider)
    use_keys(settings, [new])
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_provider_keys", stdout=io.StringIO())
    assert raw_key(provider) == before


# --- the key on admin pages ------------------------------------------------------------------------


def test_the_key_appears_on_no_admin_page(admin_client, upstream):
    provider = make_provider(upstream=upstream, kind="openai")
    config = make_model_config(provider=provider)
    # A key change through the admin writes the history entry the history page shows.
    response = admin_client.post(
        f"{PROVIDERS}{provider.pk}/change/",
        provider_form(provider, api_key=TEST_KEY + "2"),
    )
    assert response.status_code == 302
    pages = [
        PROVIDERS,
        f"{PROVIDERS}?q=Fake",
        f"{PROVIDERS}add/",
        f"{PROVIDERS}{provider.pk}/change/",
        f"{PROVIDERS}{provider.pk}/history/",
        f"{PROVIDERS}{provider.pk}/delete/",
        MODELS,
        f"{MODELS}add/",
        f"{MODELS}{config.pk}/change/",
        f"{MODELS}{config.pk}/history/",
    ]
    for page in pages:
        html = admin_client.get(page).content.decode()
        for fragment in [*key_fragments(TEST_KEY), TEST_KEY + "2"]:
            assert fragment not in html, page
    assert "Changed API key" in admin_client.get(f"{PROVIDERS}{provider.pk}/history/").content.decode()


def test_changelist_lists_type_masked_key_and_model_count(admin_client, upstream):
    provider = make_provider(upstream=upstream, kind="azure", name="Azure", api_key=AZURE_KEY)
    make_model_config(provider=provider, model=DEPLOYMENT)
    html = admin_client.get(PROVIDERS).content.decode()
    assert "Azure OpenAI" in html
    assert "…cdef" in html
    assert AZURE_KEY not in html
    row = admin_client.get(PROVIDERS).context["cl"].result_list[0]
    assert row.model_count == 1


def test_change_form_groups_the_fields_with_their_help(admin_client, upstream):
    provider = make_provider(upstream=upstream, kind="openai")
    html = admin_client.get(f"{PROVIDERS}{provider.pk}/change/").content.decode()
    headings = re.findall(r'class="fieldset-heading">([^<]+)</h2>', html)
    assert headings == ["API key", "Azure OpenAI", "OpenAI", "Headers and timeouts", "Record"]
    for name in ("kind", "base_url", "api_key", "api_version", "organization", "project", "extra_headers",
                 "connect_timeout", "timeout"):
        assert f'name="{name}"' in html
    assert "sk-…WXYZ" in html
    assert "OpenAI-Organization" in html  # a help text


# --- Test connection -------------------------------------------------------------------------------


def run_action(admin_client, action: str, *providers: Provider):
    """POST the changelist action; the page it redirects to, and its messages as (level tag, text)."""
    response = admin_client.post(
        PROVIDERS, {"action": action, "_selected_action": [provider.pk for provider in providers]}, follow=True
    )
    assert response.status_code == 200
    return response, [(message.level_tag, str(message)) for message in response.context["messages"]]


def test_test_connection_reports_each_steps_latency_and_the_model_count(admin_client, upstream):
    upstream.model_ids = ["fake-model", "fake-model-2", "fake-embedding"]
    provider = make_provider(upstream=upstream, kind="openai", name="OpenAI")
    make_model_config(provider=provider, model="fake-model-2", order=1)
    make_model_config(provider=provider, model="fake-model", order=2)
    _, messages = run_action(admin_client, "test_connection", provider)
    ((level, text),) = messages
    assert level == "success"
    assert re.fullmatch(r"OpenAI: 3 models listed in \d+ ms; one token from fake-model-2 in \d+ ms\.", text), text
    models, reply = upstream.requests
    assert (models.method, models.path) == ("GET", "/v1/models")
    assert models.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert (reply.method, reply.path) == ("POST", "/v1/chat/completions")
    assert reply.body["model"] == "fake-model-2"
    assert reply.body["max_tokens"] == 1
    assert "max_completion_tokens" not in reply.body


def test_test_connection_uses_max_completion_tokens_when_the_model_does(admin_client, upstream):
    provider = make_provider(upstream=upstream, kind="openai")
    make_model_config(provider=provider, model="o3-mini", max_completion_tokens=4000, temperature=0.2)
    run_action(admin_client, "test_connection", provider)
    reply = upstream.requests[-1]
    assert reply.body["max_completion_tokens"] == 1
    assert "max_tokens" not in reply.body
    assert "temperature" not in reply.body  # only the token cap: a reasoning model refuses the rest


def test_test_connection_skips_disabled_models_and_asks_the_first_listed_without_one(admin_client, upstream):
    upstream.model_ids = ["listed-first", "listed-second"]
    provider = make_provider(upstream=upstream)
    make_model_config(provider=provider, model="disabled-one", enabled=False)
    _, [(level, text)] = run_action(admin_client, "test_connection", provider)
    assert level == "success"
    assert "one token from listed-first (the first listed: no model of this provider is enabled)" in text
    assert upstream.requests[-1].body["model"] == "listed-first"


def test_test_connection_shows_the_providers_own_error_and_never_the_key(admin_client, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    provider = make_provider(upstream=upstream, kind="openai", name="OpenAI")
    make_model_config(provider=provider)
    echoed = error(401, ECHOED_401.format(key=TEST_KEY), code="invalid_api_key")
    upstream.push_models(echoed)
    upstream.push(echoed)
    response, [(level, text)] = run_action(admin_client, "test_connection", provider)
    assert level == "error"
    assert "listing the models failed after" in text
    assert "one token from fake-model failed after" in text
    assert text.count("did not accept the API key (401): Incorrect API key provided") == 2
    html = response.content.decode()
    for fragment in key_fragments(TEST_KEY):
        assert fragment not in text
        assert fragment not in html
        assert fragment not in caplog.text


def test_test_connection_warns_when_only_the_model_list_fails(admin_client, upstream):
    provider = make_provider(upstream=upstream)
    make_model_config(provider=provider)
    upstream.push_models(error(404, "Not found: /v1/models"))
    _, [(level, text)] = run_action(admin_client, "test_connection", provider)
    assert level == "warning"
    assert "listing the models failed" in text and "(404): Not found: /v1/models" in text
    assert re.search(r"one token from fake-model in \d+ ms\.$", text)


def test_test_connection_says_so_when_there_is_no_model_to_ask(admin_client, upstream):
    upstream.model_ids = []
    provider = make_provider(upstream=upstream, name="Empty")
    _, [(level, text)] = run_action(admin_client, "test_connection", provider)
    assert level == "error"
    assert re.fullmatch(r"Empty: 0 models listed in \d+ ms; no model to ask for a token: .*\.", text), text
    assert [request.method for request in upstream.requests] == ["GET"]


def test_test_connection_reports_an_unreachable_server(admin_client, upstream):
    provider = make_provider(upstream=upstream, base_url="http://127.0.0.1:9/v1", connect_timeout=2)
    make_model_config(provider=provider)
    _, [(level, text)] = run_action(admin_client, "test_connection", provider)
    assert level == "error"
    assert "Could not connect to the model server at 127.0.0.1" in text


def test_test_connection_checks_azure_at_its_own_paths(admin_client, upstream):
    provider = make_provider(upstream=upstream, kind="azure", name="Azure", api_key=AZURE_KEY)
    make_model_config(provider=provider, model=DEPLOYMENT)
    _, [(level, text)] = run_action(admin_client, "test_connection", provider)
    assert level == "success", text
    models, reply = upstream.requests
    assert models.path == "/openai/models?api-version=2024-10-21"
    assert reply.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2024-10-21"
    for request in (models, reply):
        assert request.headers["api-key"] == AZURE_KEY
        assert "authorization" not in request.headers


def test_test_connection_reports_every_selected_provider(admin_client, upstream):
    good = make_provider(upstream=upstream, name="Good")
    make_model_config(provider=good)
    bad = make_provider(upstream=upstream, name="Unreachable", base_url="http://127.0.0.1:9/v1")
    make_model_config(provider=bad)
    _, messages = run_action(admin_client, "test_connection", good, bad)
    assert [(level, text.split(":")[0]) for level, text in messages] == [("success", "Good"), ("error", "Unreachable")]


def test_change_page_has_a_test_connection_button_that_runs_the_check(admin_client, upstream):
    provider = make_provider(upstream=upstream, name="Local")
    make_model_config(provider=provider)
    url = f"{PROVIDERS}{provider.pk}/test-connection/"
    assert f'action="{url}"' in admin_client.get(f"{PROVIDERS}{provider.pk}/change/").content.decode()
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == f"{PROVIDERS}{provider.pk}/change/"
    [message] = response.context["messages"]
    assert str(message).startswith("Local: 1 model listed in")


def test_check_connection_times_out_with_the_providers_read_timeout(upstream):
    from asgiref.sync import async_to_sync

    from tests.fake_openai import Script

    provider = make_provider(upstream=upstream, timeout=1)
    make_model_config(provider=provider)
    upstream.push(Script([2.0, b"late"]))
    result = async_to_sync(check_connection)(provider_probe_spec(provider))
    assert not result.ok
    assert "sent nothing for 1 s" in result.reply_error


def test_check_connection_reports_a_page_in_place_of_the_reply(upstream):
    from asgiref.sync import async_to_sync

    from tests.fake_openai import answer

    provider = make_provider(upstream=upstream)
    make_model_config(provider=provider)
    upstream.push(answer(b"<html><title>Sign in</title></html>", content_type="text/html"))
    result = async_to_sync(check_connection)(provider_probe_spec(provider))
    assert not result.ok
    assert result.reply_error == (
        "The model server answered with an HTML page instead of a stream (text/html); the page is not shown."
    )


# --- Import models ---------------------------------------------------------------------------------


def test_import_models_adds_disabled_models_once(admin_client, upstream):
    upstream.model_ids = ["fake-model", "new-a", "new-b"]
    provider = make_provider(upstream=upstream, name="Local")
    make_model_config(provider=provider, model="fake-model", display_name="Already here")
    other = make_provider(upstream=upstream, name="Other")
    make_model_config(provider=other, model="new-a")  # configured for another provider: does not count

    _, [(level, text)] = run_action(admin_client, "import_models", provider)
    assert level == "success"
    assert text.startswith("Local: 2 models added, disabled")
    assert text.endswith("1 already configured.")
    added = ModelConfig.objects.filter(provider=provider).exclude(model="fake-model").order_by("model")
    assert [(config.model, config.display_name, config.enabled, config.is_default) for config in added] == [
        ("new-a", "new-a", False, False),
        ("new-b", "new-b", False, False),
    ]

    _, [(_, again)] = run_action(admin_client, "import_models", provider)
    assert again.startswith("Local: 0 models added") and again.endswith("3 already configured.")
    assert ModelConfig.objects.filter(provider=provider).count() == 3


def test_import_models_reports_the_providers_error(admin_client, upstream):
    provider = make_provider(upstream=upstream, name="Local")
    upstream.push_models(error(401, ECHOED_401.format(key=TEST_KEY)))
    _, [(level, text)] = run_action(admin_client, "import_models", provider)
    assert level == "error"
    assert "Local: listing the models failed: The model server did not accept the API key (401)" in text
    assert TEST_KEY not in text
    assert not ModelConfig.objects.exists()


def test_import_models_is_offered_only_to_staff_who_may_add_models(client, make_user, upstream):
    staff = make_user("staff", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_provider", "change_provider"]))
    client.force_login(staff)
    make_provider(upstream=upstream)
    actions = dict(client.get(PROVIDERS).context["action_form"].fields["action"].choices)
    assert "test_connection" in actions
    assert "import_models" not in actions
    staff.user_permissions.add(Permission.objects.get(codename="add_modelconfig"))
    actions = dict(client.get(PROVIDERS).context["action_form"].fields["action"].choices)
    assert "import_models" in actions


# --- the key goes only where it was entered for ----------------------------------------------------


def change_provider(admin_client, provider: Provider, **changes) -> dict:
    """POST the provider's change form with `changes`: its errors by field, empty when it was saved."""
    response = admin_client.post(f"{PROVIDERS}{provider.pk}/change/", provider_form(provider, **changes))
    if response.status_code == 302:
        return {}
    return {field: list(messages) for field, messages in response.context["adminform"].form.errors.items()}


def press_test_connection(admin_client, provider: Provider, **posted) -> None:
    """The change page's Test connection button, with whatever else a browser might post along."""
    response = admin_client.post(f"{PROVIDERS}{provider.pk}/test-connection/", posted, follow=True)
    assert response.status_code == 200


KEY_AGAIN = "Enter the API key again: the base URL, type or extra headers changed"


def test_moving_a_provider_without_its_key_is_refused_and_the_key_never_reaches_the_new_server(admin_client, upstream):
    # The attack: point a provider whose key you cannot read at your own server, then test it.
    provider = make_provider(upstream=upstream, base_url=UNREACHABLE_URL, connect_timeout=1)
    make_model_config(provider=provider)

    errors = change_provider(admin_client, provider, base_url=upstream.base_url)
    press_test_connection(admin_client, provider, base_url=upstream.base_url)
    run_action(admin_client, "test_connection", provider)
    run_action(admin_client, "import_models", provider)

    assert [request for request in upstream.requests if TEST_KEY in str(request.headers)] == []
    assert upstream.requests == []
    assert KEY_AGAIN in " ".join(errors.get("api_key", []))
    provider.refresh_from_db()
    assert (provider.base_url, provider.api_key) == (UNREACHABLE_URL, TEST_KEY)


@pytest.mark.parametrize(
    "changes",
    [
        {"base_url": "https://elsewhere.example.com/v1"},
        {"base_url": "https://api.example.com/other/v1"},  # a gateway's path can name another account
        {"base_url": "http://api.example.com/v1"},
        {"kind": "azure", "base_url": "https://api.example.com", "api_version": "2024-10-21"},
        {"extra_headers": '{"Helicone-Target-URL": "https://elsewhere.example.com"}'},
    ],
    ids=["host", "path", "scheme", "type", "extra-headers"],
)
def test_a_new_destination_needs_the_key_again(admin_client, provider, changes):
    errors = change_provider(admin_client, provider, **changes)
    assert list(errors) == ["api_key"] and KEY_AGAIN in errors["api_key"][0], errors
    provider.refresh_from_db()
    assert (provider.base_url, provider.kind, provider.extra_headers) == ("https://api.example.com/v1", "openai_compatible", {})


@pytest.mark.parametrize(
    "changes",
    [
        {"base_url": "https://API.example.com/v1/"},  # the same address written differently
        {"name": "Renamed", "timeout": "90", "connect_timeout": "3"},
        {"organization": "org-1", "project": "proj-1"},
    ],
    ids=["same-address", "name-and-timeouts", "organization"],
)
def test_changes_that_keep_the_destination_keep_the_key(admin_client, provider, changes):
    assert change_provider(admin_client, provider, **changes) == {}
    provider.refresh_from_db()
    assert provider.api_key == TEST_KEY


def test_a_moved_provider_with_its_key_entered_again_sends_only_that_key(admin_client, upstream):
    provider = make_provider(upstream=upstream, base_url=UNREACHABLE_URL)
    make_model_config(provider=provider)

    assert change_provider(admin_client, provider, base_url=upstream.base_url, api_key="sk-entered-again-0000AGAIN") == {}
    press_test_connection(admin_client, provider)

    assert [request.headers["authorization"] for request in upstream.requests] == ["Bearer sk-entered-again-0000AGAIN"] * 2


def test_a_moved_provider_with_its_key_cleared_sends_none(admin_client, upstream):
    provider = make_provider(upstream=upstream, base_url=UNREACHABLE_URL)
    make_model_config(provider=provider)

    assert change_provider(admin_client, provider, base_url=upstream.base_url, clear_api_key="on") == {}
    press_test_connection(admin_client, provider)

    assert len(upstream.requests) == 2
    assert all("authorization" not in request.headers for request in upstream.requests)


# --- internal addresses ----------------------------------------------------------------------------

REFUSED = "Refused to connect to the model server: "
INTERNAL_NEEDS_SUPERUSER = "This provider may reach internal servers, which only a superuser may allow"


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("127.0.0.1:{port}", "127.0.0.1 is a loopback address"),
        ("localhost:{port}", "localhost resolves to "),  # to 127.0.0.1 or ::1, whichever the system lists first
        ("0.0.0.0:{port}", "0.0.0.0 is the unspecified address"),  # on Linux, connecting to it reaches this machine
        ("2130706433:{port}", "2130706433 resolves to 127.0.0.1, a loopback address"),  # 127.0.0.1 as one number
        ("[::ffff:127.0.0.1]:{port}", "::ffff:127.0.0.1 is a loopback address"),
        ("[::1]", "::1 is a loopback address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address (where clouds serve instance metadata)"),
        ("[fe80::1]", "fe80::1 is a link-local address"),
        ("10.0.0.7", "10.0.0.7 is a private network address"),
        ("172.16.5.4", "172.16.5.4 is a private network address"),
        ("192.168.1.1", "192.168.1.1 is a private network address"),
        ("[fc00::1]", "fc00::1 is a private network address"),
        ("[fd12:3456::1]", "fd12:3456::1 is a private network address"),
        ("100.64.0.1", "100.64.0.1 is a shared (carrier-grade NAT) address"),
        ("224.0.0.1", "224.0.0.1 is a multicast address"),
    ],
)
def test_test_connection_refuses_an_internal_address(admin_client, upstream, host, said):
    base_url = f"http://{host.format(port=upstream.port)}/v1"
    provider = make_provider(upstream=upstream, name="Inside", base_url=base_url, allow_internal=False, connect_timeout=1)
    make_model_config(provider=provider)

    _, [(level, text)] = run_action(admin_client, "test_connection", provider)

    assert level == "error"
    assert f"{REFUSED}{said}" in text, text
    assert text.count(REFUSED) == 2  # the model list and the token: neither went out
    assert "marked as an internal server" in text
    assert upstream.requests == []


def test_import_models_refuses_a_name_that_resolves_to_this_machine(admin_client, upstream):
    provider = make_provider(upstream=upstream, name="Inside", base_url=f"http://localhost:{upstream.port}/v1",
                             allow_internal=False)

    _, [(level, text)] = run_action(admin_client, "import_models", provider)

    assert level == "error"
    assert text.startswith(f"Inside: listing the models failed: {REFUSED}localhost resolves to ")
    assert upstream.requests == [] and not ModelConfig.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_a_reply_from_a_provider_not_allowed_inside_is_refused_before_it_is_sent(upstream):
    spec = await database_sync_to_async(stored_spec)(upstream, "openai_compatible", allow_internal=False)

    with pytest.raises(UpstreamError) as raised:
        async for _ in stream_reply(spec, HISTORY):
            pass

    assert raised.value.code == "internal_address"
    assert raised.value.message.startswith(f"{REFUSED}127.0.0.1 is a loopback address")
    assert upstream.requests == []


def test_test_connection_follows_no_redirect_and_says_where_it_pointed(admin_client, upstream):
    inside = f"http://127.0.0.1:{upstream.port}/latest/meta-data"
    upstream.push_models(Script([b""], status=302, headers={"location": inside}))
    upstream.push(Script([b""], status=307, headers={"location": inside}))
    provider = make_provider(upstream=upstream, name="Moved")
    make_model_config(provider=provider)

    _, [(level, text)] = run_action(admin_client, "test_connection", provider)

    assert level == "error"
    assert f"redirected the request (302) to {inside}; redirects are not followed" in text
    assert f"redirected the request (307) to {inside}; redirects are not followed" in text
    assert [request.path for request in upstream.requests] == ["/v1/models", "/v1/chat/completions"]


def test_test_connection_describes_an_html_page_without_showing_it(admin_client, upstream):
    page = b"<!doctype html><title>Router admin</title><form>password: <input name=pw value=hunter2></form>"
    upstream.push_models(answer(page, content_type="text/html", status=403))
    upstream.push(answer(page, content_type="text/html"))
    provider = make_provider(upstream=upstream, name="Gateway")
    make_model_config(provider=provider)

    response, [(level, text)] = run_action(admin_client, "test_connection", provider)

    assert level == "error"
    assert "The model server refused access (403): an HTML page (text/html), not shown" in text
    assert "instead of a stream (text/html); the page is not shown" in text
    assert "<" not in text
    for shown in ("Router admin", "hunter2"):
        assert shown not in text and shown not in response.content.decode()


def test_a_superuser_marks_a_provider_internal_and_test_connection_reaches_it(admin_client, upstream):
    provider = make_provider(upstream=upstream, name="Ollama", allow_internal=False)
    make_model_config(provider=provider)
    assert "allow_internal" in admin_client.get(f"{PROVIDERS}{provider.pk}/change/").context["adminform"].form.fields

    assert change_provider(admin_client, provider, allow_internal="on") == {}
    _, [_saved, (level, text)] = run_action(admin_client, "test_connection", provider)

    provider.refresh_from_db()
    assert provider.allow_internal
    assert level == "success", text
    assert len(upstream.requests) == 2


@pytest.fixture
def staff_client(client, make_user):
    """A staff member who may add, change and test providers, but is no superuser."""
    staff = make_user("staff", is_staff=True)
    codenames = ["view_provider", "add_provider", "change_provider", "view_modelconfig", "add_modelconfig"]
    staff.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(staff)
    return client


def test_staff_who_are_not_superusers_cannot_mark_a_provider_internal(staff_client, upstream):
    provider = make_provider(upstream=upstream, name="Ollama", allow_internal=False)
    page = staff_client.get(f"{PROVIDERS}{provider.pk}/change/")
    assert "allow_internal" not in page.context["adminform"].form.fields
    assert 'name="allow_internal"' not in page.content.decode()

    assert change_provider(staff_client, provider, allow_internal="on") == {}
    assert add_provider_errors(staff_client, name="Added", base_url=upstream.base_url, allow_internal="on") == {}

    assert list(Provider.objects.order_by("name").values_list("name", "allow_internal")) == [
        ("Added", False), ("Ollama", False)
    ]
    run_action(staff_client, "test_connection", provider)
    assert upstream.requests == []


def test_staff_who_are_not_superusers_cannot_move_an_internal_provider(staff_client, upstream):
    provider = make_provider(upstream=upstream, name="Ollama")  # marked internal by a superuser

    moved = change_provider(staff_client, provider, base_url="http://169.254.169.254/latest", api_key="sk-any-00000000")
    renamed = change_provider(staff_client, provider, name="Ollama here")
    run_action(staff_client, "test_connection", provider)  # staff may still test it where it is

    assert INTERNAL_NEEDS_SUPERUSER in " ".join(moved["__all__"])
    assert renamed == {}
    provider.refresh_from_db()
    assert (provider.name, provider.base_url, provider.api_key, provider.allow_internal) == (
        "Ollama here", upstream.base_url, TEST_KEY, True
    )
    assert [request.path for request in upstream.requests] == ["/v1/models", "/v1/chat/completions"]


def test_a_superuser_may_move_an_internal_provider_with_its_key(admin_client, upstream):
    provider = make_provider(upstream=upstream, name="Ollama", base_url=UNREACHABLE_URL)
    assert change_provider(admin_client, provider, base_url=upstream.base_url, api_key="sk-new-000000000NEW") == {}
    provider.refresh_from_db()
    assert (provider.base_url, provider.allow_internal) == (upstream.base_url, True)


def test_the_migration_marks_providers_already_at_local_addresses_internal(upstream):
    migration = importlib.import_module("conversations.migrations.0006_provider_allow_internal")
    urls = {
        "Ollama": "http://localhost:11434/v1",
        "vLLM": "http://127.0.0.1:8000/v1",
        "LAN": "http://192.168.1.20:8000/v1",
        "IPv6": "http://[::1]:8080/v1",
        "OpenAI": "https://api.openai.com/v1",
        "By name": "http://vllm:8000/v1",  # not looked up: a superuser ticks it
        "Metadata": "http://169.254.169.254/v1",
    }
    for name, base_url in urls.items():
        make_provider(name=name, base_url=base_url, allow_internal=False)

    historical = MigrationLoader(connection).project_state(("conversations", "0006_provider_allow_internal")).apps
    migration.allow_servers_already_local(historical, None)

    assert set(Provider.objects.filter(allow_internal=True).values_list("name", flat=True)) == {"Ollama", "vLLM", "LAN", "IPv6"}


# --- the provider from the environment -------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "kind"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://openrouter.ai/api/v1", "openai_compatible"),
        ("http://localhost:11434/v1", "openai_compatible"),
    ],
)
def test_provider_from_env_gets_its_type_from_the_base_url(settings, base_url, kind):
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_MODEL = TEST_KEY, base_url, "m"
    config = provider_sync_from_env()
    assert config.provider.kind == kind
    assert Provider.objects.get(from_env=True).kind == kind


def test_provider_from_env_changes_type_with_the_base_url(settings):
    settings.OPENAI_API_KEY, settings.OPENAI_MODEL = TEST_KEY, "m"
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    provider_sync_from_env()
    settings.OPENAI_BASE_URL = "http://localhost:8000/v1"
    provider_sync_from_env()
    provider = Provider.objects.get(from_env=True)
    assert (provider.kind, provider.base_url, provider.api_key) == ("openai_compatible", "http://localhost:8000/v1", TEST_KEY)


def test_provider_from_env_may_reach_a_server_on_this_machine(settings, admin_client, upstream):
    # `OPENAI_BASE_URL=http://127.0.0.1:11434/v1 make run` for Ollama: whoever sets the environment runs the server.
    settings.OPENAI_API_KEY, settings.OPENAI_MODEL = TEST_KEY, "fake-model"
    settings.OPENAI_BASE_URL = f"http://localhost:{upstream.port}/v1"
    provider = provider_sync_from_env().provider

    _, [(level, text)] = run_action(admin_client, "test_connection", provider)

    assert provider.allow_internal
    assert level == "success", text
    assert [request.headers["authorization"] for request in upstream.requests] == [f"Bearer {TEST_KEY}"] * 2

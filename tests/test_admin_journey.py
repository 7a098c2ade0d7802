"""Issue 4's "done when", as an admin and a person would do it, through the real admin and a real socket.

An admin adds an Azure provider and an OpenAI-compatible one, tests both, imports their models,
enables one of each with its own temperature and prices; a person's requests carry exactly those
settings; their usage shows with its cost; over a budget they get a clear refusal and nothing goes
upstream.
"""

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.contrib.messages import get_messages
from django.test import Client

from conversations.models import ModelConfig, Provider, UsageRecord
from tests.factories import make_conversation, make_superuser
from tests.fake_openai import reply
from tests.helpers import PROVIDERS, login, model_form, open_socket, page, provider_form, send_and_receive

pytestmark = pytest.mark.django_db(transaction=True)

AZURE_KEY = "azure-key-0123456789abcdef0123"
LOCAL_KEY = "sk-local-0123456789abcdefLOCAL"


def admin_sets_up(upstream) -> tuple[Client, ModelConfig, ModelConfig]:
    client = login(make_superuser())
    azure_endpoint = f"http://127.0.0.1:{upstream.port}"  # the resource endpoint; paths are Azure's
    # Both on 127.0.0.1: the superuser marks them internal servers, as for a model server beside the app.
    for post in (
        provider_form(name="Azure", kind="azure", base_url=azure_endpoint, api_key=AZURE_KEY, api_version="2024-10-21",
                      allow_internal="on"),
        provider_form(name="Local vLLM", kind="openai_compatible", base_url=upstream.base_url, api_key=LOCAL_KEY,
                      allow_internal="on"),
    ):
        assert client.post(f"{PROVIDERS}add/", post).status_code == 302
    azure, local = Provider.objects.get(name="Azure"), Provider.objects.get(name="Local vLLM")
    selected = {"_selected_action": [azure.pk, local.pk]}

    response = client.post(PROVIDERS, {"action": "test_connection", **selected}, follow=True)
    tested = [str(message) for message in get_messages(response.wsgi_request) if "listed in" in str(message)]
    assert len(tested) == 2 and all("one token from" in message for message in tested), tested

    client.post(PROVIDERS, {"action": "import_models", **selected}, follow=True)
    imported = ModelConfig.objects.filter(provider__in=[azure, local])
    assert imported.count() >= 2 and not imported.filter(enabled=True).exists()

    configs = []
    for provider, name, temperature in ((azure, "GPT on Azure", "0.9"), (local, "Local model", "0.2")):
        config = imported.filter(provider=provider).order_by("id").first()
        form = model_form(
            provider,
            display_name=name,
            model=config.model,
            temperature=temperature,
            input_price="2.50",
            output_price="10.00",
        )
        response = client.post(f"/admin/conversations/modelconfig/{config.pk}/change/", form)
        assert response.status_code == 302, response.content[:2000]
        configs.append(ModelConfig.objects.get(pk=config.pk))
    return client, *configs


async def test_admin_sets_up_providers_and_a_persons_requests_usage_and_budget_follow(upstream, make_user):
    admin, on_azure, local = await sync_to_async(admin_sets_up)(upstream)
    upstream.reset()
    person = await sync_to_async(make_user)("pia")
    conversation = await sync_to_async(make_conversation)(owner=person, title="Budget")
    socket = await open_socket(person, conversation)

    upstream.push(reply("From Azure.", usage=(1000, 200)), reply("From the local model.", usage=(3000, 400)))
    assert (await send_and_receive(socket, "Hello Azure", model=on_azure.pk))[-1]["status"] == "complete"
    assert (await send_and_receive(socket, "Hello local", model=local.pk))[-1]["status"] == "complete"

    to_azure, to_local = [request for request in upstream.requests if request.method == "POST"]
    assert to_azure.path == "/openai/deployments/fake-model/chat/completions?api-version=2024-10-21"
    assert to_azure.headers["api-key"] == AZURE_KEY and "authorization" not in to_azure.headers
    assert to_azure.body["temperature"] == 0.9
    assert to_azure.body["messages"] == [{"role": "user", "content": "Hello Azure"}]
    assert to_local.path == "/v1/chat/completions"
    assert to_local.headers["authorization"] == f"Bearer {LOCAL_KEY}" and "api-key" not in to_local.headers
    assert to_local.body["temperature"] == 0.2
    for request in (to_azure, to_local):
        assert request.body["stream"] is True and request.body["stream_options"] == {"include_usage": True}
        assert set(request.body) == {"model", "messages", "temperature", "stream", "stream_options", "user"}

    records = await sync_to_async(list)(UsageRecord.objects.filter(user=person).order_by("id"))
    assert [(r.prompt_tokens, r.completion_tokens, r.estimated) for r in records] == [(1000, 200, False), (3000, 400, False)]
    # 1,000 × 2.50 / 1M + 200 × 10 / 1M, then 3,000 × 2.50 / 1M + 400 × 10 / 1M
    assert [r.cost for r in records] == [Decimal("0.004500"), Decimal("0.011500")]

    def usage_pages() -> tuple[str, str]:
        return page(login(person).get("/usage/")), page(admin.get("/admin/conversations/usagerecord/"))

    my_usage, admin_usage = await sync_to_async(usage_pages)()
    assert "4,600" in my_usage and "0.016" in my_usage  # tokens and cost this month
    assert "pia" in admin_usage and "0.016" in admin_usage

    def admin_sets_a_daily_budget() -> int:
        form = {"user": person.pk, "team": "", "daily_tokens": "4600", "monthly_tokens": "", "requests_per_minute": ""}
        return admin.post("/admin/conversations/limit/add/", form).status_code

    assert await sync_to_async(admin_sets_a_daily_budget)() == 302
    requests_before = len(upstream.requests)
    refused = await send_and_receive(socket, "One more?", model=local.pk)
    assert refused[-1]["type"] == "error" and refused[-1]["code"] == "limit_exceeded"
    assert "daily budget" in refused[-1]["message"] and "resets" in refused[-1]["message"]
    assert len(upstream.requests) == requests_before  # nothing went upstream
    assert await sync_to_async(conversation.messages.count)() == 4  # and nothing was saved

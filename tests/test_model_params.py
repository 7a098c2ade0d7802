"""Model parameters: every bound checked by the admin form, by full_clean and by the database;
and the JSON body each one produces."""

import dataclasses
import json

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from conversations.llm import stream_reply
from conversations.models import ModelConfig, Provider, Team
from conversations.selectors.providers import model_spec
from tests.helpers import MODELS, add_model_errors, done, model_form, open_socket, receive_until

HISTORY = [{"role": "user", "content": "Hi"}]


def full_clean_errors(provider: Provider, **values) -> dict:
    """Model-level validation of a config with these values (already Python objects); its errors by field."""
    config = ModelConfig(display_name="M", provider=provider, model="m", **values)
    try:
        config.full_clean()
    except ValidationError as exc:
        return exc.message_dict
    return {}


# --- every bound, through the admin form and full_clean ------------------------------------------

# (field, form value, Python value, accepted)
BOUNDS = [
    ("temperature", "0", 0.0, True),
    ("temperature", "2", 2.0, True),
    ("temperature", "-0.01", -0.01, False),
    ("temperature", "2.01", 2.01, False),
    ("top_p", "0", 0.0, True),
    ("top_p", "1", 1.0, True),
    ("top_p", "-0.01", -0.01, False),
    ("top_p", "1.01", 1.01, False),
    ("presence_penalty", "-2", -2.0, True),
    ("presence_penalty", "2", 2.0, True),
    ("presence_penalty", "-2.01", -2.01, False),
    ("presence_penalty", "2.01", 2.01, False),
    ("frequency_penalty", "-2", -2.0, True),
    ("frequency_penalty", "2", 2.0, True),
    ("frequency_penalty", "-2.01", -2.01, False),
    ("frequency_penalty", "2.01", 2.01, False),
    ("max_tokens", "1", 1, True),
    ("max_tokens", "0", 0, False),
    ("max_completion_tokens", "1", 1, True),
    ("max_completion_tokens", "0", 0, False),
    ("seed", "0", 0, True),
    ("seed", "-42", -42, True),
    ("seed", "9223372036854775807", 9223372036854775807, True),
    ("context_window", "256", 256, True),
    ("context_window", "255", 255, False),
    ("temperature_min", "0", 0.0, True),
    ("temperature_min", "-0.1", -0.1, False),
    ("temperature_max", "2", 2.0, True),
    ("temperature_max", "2.1", 2.1, False),
]


@pytest.mark.parametrize(("field", "form_value", "value", "accepted"), BOUNDS)
def test_numeric_bound_in_the_admin_form(admin_client, provider, field, form_value, value, accepted):
    errors = add_model_errors(admin_client, provider, **{field: form_value})
    if accepted:
        assert errors == {}
        assert getattr(ModelConfig.objects.get(), field) == value
    else:
        assert field in errors
        assert not ModelConfig.objects.exists()


@pytest.mark.parametrize(("field", "form_value", "value", "accepted"), BOUNDS)
def test_numeric_bound_in_full_clean(provider, field, form_value, value, accepted):
    errors = full_clean_errors(provider, **{field: value})
    assert (field not in errors) if accepted else (field in errors)


@pytest.mark.parametrize("seed", ["1.5", "abc"])
def test_seed_must_be_a_whole_number(admin_client, provider, seed):
    assert "seed" in add_model_errors(admin_client, provider, seed=seed)


# (field, form JSON, accepted)
JSON_VALUES = [
    ("stop", '["a", "b", "c", "d"]', True),
    ("stop", '["a", "b", "c", "d", "e"]', False),
    ("stop", '[""]', False),
    ("stop", '"END"', False),
    ("logit_bias", '{"50256": -100}', True),
    ("logit_bias", '{"50256": 100}', True),
    ("logit_bias", '{"50256": 101}', False),
    ("logit_bias", '{"50256": -101}', False),
    ("logit_bias", '{"1.5": 1}', False),
    ("logit_bias", '{"abc": 1}', False),
    ("response_format", '{"type": "text"}', True),
    ("response_format", '{"type": "json_object"}', True),
    ("response_format", '{"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}', True),
    ("response_format", '{"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}', False),
    ("response_format", '{"type": "json_schema"}', False),
    ("response_format", '{"type": "xml"}', False),
    ("response_format", '["json_object"]', False),
    ("response_format", '"json_object"', False),
    ("omit_parameters", '["temperature", "top_p", "user", "stream_options"]', True),
    ("omit_parameters", '["temprature"]', False),
    ("omit_parameters", '["model"]', False),
    ("omit_parameters", '"temperature"', False),
]


@pytest.mark.parametrize(("field", "raw", "accepted"), JSON_VALUES)
def test_json_parameter_in_the_admin_form(admin_client, provider, field, raw, accepted):
    errors = add_model_errors(admin_client, provider, **{field: raw})
    if accepted:
        assert errors == {}
        assert getattr(ModelConfig.objects.get(), field) == json.loads(raw)
    else:
        assert field in errors
        assert not ModelConfig.objects.exists()


@pytest.mark.parametrize(("field", "raw", "accepted"), JSON_VALUES)
def test_json_parameter_in_full_clean(provider, field, raw, accepted):
    errors = full_clean_errors(provider, **{field: json.loads(raw)})
    assert (field not in errors) if accepted else (field in errors)


def test_empty_response_format_and_omit_parameters_are_saved_as_unset(admin_client, provider):
    assert add_model_errors(admin_client, provider) == {}
    config = ModelConfig.objects.get()
    assert (config.response_format, config.omit_parameters, config.seed, config.reasoning_effort) == (None, [], None, "")
    assert config.api_parameters() == {}


@pytest.mark.parametrize(
    ("effort", "accepted"), [("minimal", True), ("low", True), ("medium", True), ("high", True), ("extreme", False)]
)
def test_reasoning_effort_choices(admin_client, provider, effort, accepted):
    errors = add_model_errors(admin_client, provider, reasoning_effort=effort)
    assert (errors == {}) if accepted else ("reasoning_effort" in errors)
    assert ("reasoning_effort" in full_clean_errors(provider, reasoning_effort=effort)) is not accepted


def test_lowest_temperature_above_the_highest_is_refused(admin_client, provider):
    assert "temperature_max" in add_model_errors(admin_client, provider, temperature_min="1.5", temperature_max="1")
    assert "temperature_max" in full_clean_errors(provider, temperature_min=1.5, temperature_max=1.0)


def test_equal_temperature_bounds_are_accepted(admin_client, provider):
    assert add_model_errors(admin_client, provider, temperature_min="0.7", temperature_max="0.7") == {}


def test_max_tokens_and_max_completion_tokens_together_are_refused(admin_client, provider):
    errors = add_model_errors(admin_client, provider, max_tokens="100", max_completion_tokens="100")
    assert "max_completion_tokens" in errors
    assert not ModelConfig.objects.exists()
    assert "max_completion_tokens" in full_clean_errors(provider, max_tokens=100, max_completion_tokens=100)


def test_every_parameter_set_through_the_admin_reaches_api_parameters(admin_client, provider):
    errors = add_model_errors(
        admin_client,
        provider,
        temperature="0.5",
        top_p="0.9",
        presence_penalty="0.1",
        frequency_penalty="-0.1",
        stop='["END"]',
        logit_bias='{"50256": -100}',
        seed="7",
        response_format='{"type": "json_object"}',
        max_completion_tokens="300",
        reasoning_effort="high",
    )
    assert errors == {}
    assert ModelConfig.objects.get().api_parameters() == {
        "temperature": 0.5,
        "top_p": 0.9,
        "presence_penalty": 0.1,
        "frequency_penalty": -0.1,
        "stop": ["END"],
        "logit_bias": {"50256": -100},
        "seed": 7,
        "response_format": {"type": "json_object"},
        "max_completion_tokens": 300,
        "reasoning_effort": "high",
    }


# --- the database refuses what validation would have --------------------------------------------


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"temperature": 2.5}, "temperature_range"),
        ({"temperature": -0.5}, "temperature_range"),
        ({"top_p": 1.5}, "top_p_range"),
        ({"top_p": -0.1}, "top_p_range"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"presence_penalty": 2.5}, "presence_penalty_range"),
        ({"presence_penalty": -2.5}, "presence_penalty_range"),
        ({"frequency_penalty": 2.5}, "frequency_penalty_range"),
        ({"frequency_penalty": -2.5}, "frequency_penalty_range"),
        ({"temperature_min": 1.5, "temperature_max": 1.0}, "custom_temperature_bounds"),
        ({"temperature_max": 2.5}, "custom_temperature_bounds"),
        ({"temperature_min": -1.0}, "custom_temperature_bounds"),
    ],
)
def test_database_refuses_an_out_of_range_update(provider, changes, constraint):
    config = ModelConfig.objects.create(display_name="M", provider=provider, model="m")
    before = {field: getattr(config, field) for field in changes}
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelConfig.objects.filter(pk=config.pk).update(**changes)
    config.refresh_from_db()
    assert {field: getattr(config, field) for field in changes} == before


def test_database_keeps_in_range_values(provider):
    config = ModelConfig.objects.create(display_name="M", provider=provider, model="m")
    ModelConfig.objects.filter(pk=config.pk).update(
        temperature=2, top_p=0, max_tokens=1, presence_penalty=-2, frequency_penalty=2, max_completion_tokens=1
    )
    config.refresh_from_db()
    assert (config.temperature, config.top_p, config.max_tokens) == (2, 0, 1)


# --- the admin pages ------------------------------------------------------------------------------


def test_change_page_groups_the_fields_in_fieldsets(admin_client, provider):
    config = ModelConfig.objects.create(display_name="M", provider=provider, model="m")
    response = admin_client.get(f"{MODELS}{config.pk}/change/")
    assert response.status_code == 200
    names = [fieldset.name for fieldset in response.context["adminform"]]
    assert names == ["Model", "Request parameters", "Reasoning models", "Prompt", "People's own settings", "Context and prices"]
    html = response.content.decode()
    for field in ("seed", "response_format", "max_completion_tokens", "reasoning_effort", "omit_parameters",
                  "allow_custom_temperature", "context_window", "input_price", "allowed_teams"):
        assert f'name="{field}"' in html
    assert "0 to 2." in html  # the API's ranges are in the help texts


def test_allowed_teams_are_saved_from_the_form(admin_client, provider):
    team = Team.objects.create(name="Research")
    assert add_model_errors(admin_client, provider, allowed_teams=[team.pk]) == {}
    assert list(ModelConfig.objects.get().allowed_teams.all()) == [team]


def test_changelist_edits_order_and_enabled_in_place(admin_client, provider):
    first = ModelConfig.objects.create(display_name="First", provider=provider, model="a", order=10)
    second = ModelConfig.objects.create(display_name="Second", provider=provider, model="b", order=20, enabled=False)
    response = admin_client.get(MODELS)
    assert response.status_code == 200
    data = {
        "form-TOTAL_FORMS": "2",
        "form-INITIAL_FORMS": "2",
        "form-0-id": str(first.pk),
        "form-0-order": "30",
        "form-0-enabled": "on",
        "form-1-id": str(second.pk),
        "form-1-order": "5",
        "form-1-enabled": "on",
        "_save": "Save",
    }
    response = admin_client.post(MODELS, data)
    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.order, second.order, second.enabled) == (30, 5, True)


def test_changing_a_model_is_in_its_history(admin_client, provider):
    config = ModelConfig.objects.create(display_name="M", provider=provider, model="m")
    form = model_form(provider, display_name="M", model="m", temperature="0.3")
    assert admin_client.post(f"{MODELS}{config.pk}/change/", form).status_code == 302
    response = admin_client.get(f"{MODELS}{config.pk}/history/")
    assert response.status_code == 200
    assert "Changed Temperature" in response.content.decode()


def test_choosing_a_default_keeps_one_default(admin_client, provider):
    first = ModelConfig.objects.create(display_name="First", provider=provider, model="a", is_default=True)
    assert add_model_errors(admin_client, provider, display_name="Second", is_default="on") == {}
    first.refresh_from_db()
    assert not first.is_default
    assert ModelConfig.objects.filter(is_default=True).get().display_name == "Second"


# --- the JSON body each parameter produces, against the fake server -------------------------------
# Async tests reach the database from another thread: they need real transactions.
body_test = pytest.mark.django_db(transaction=True)


def config_for(provider: Provider, **fields) -> ModelConfig:
    config = ModelConfig(display_name="Fake model", provider=provider, model=fields.pop("model", "fake-model"), **fields)
    config.full_clean()
    config.save()
    return config


create_config = sync_to_async(config_for)


async def body_sent(upstream, spec, *, user: str = "u-1") -> dict:
    """The JSON body the fake server received for one reply."""
    async for _ in stream_reply(spec, HISTORY, user=user):
        pass
    return upstream.requests[-1].body


@body_test
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"seed": 42}, {"seed": 42}),
        ({"seed": -1}, {"seed": -1}),
        ({"response_format": {"type": "json_object"}}, {"response_format": {"type": "json_object"}}),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}},
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}},
        ),
        ({"max_completion_tokens": 500}, {"max_completion_tokens": 500}),
        ({"reasoning_effort": "low"}, {"reasoning_effort": "low"}),
    ],
)
async def test_new_parameter_is_sent_under_its_api_name(upstream, fake_provider, fields, expected):
    config = await create_config(fake_provider, **fields)
    body = await body_sent(upstream, model_spec(config))
    assert body == {
        "model": "fake-model",
        "messages": HISTORY,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
        **expected,
    }


@body_test
async def test_reasoning_model_body_is_exact(upstream, fake_provider):
    config = await create_config(
        fake_provider,
        model="o3-mini",
        temperature=0.7,
        top_p=0.9,
        max_completion_tokens=2000,
        reasoning_effort="high",
        seed=7,
        response_format={"type": "json_object"},
        system_prompt="Answer in JSON.",
        omit_parameters=["temperature", "top_p"],
    )
    body = await body_sent(upstream, model_spec(config))
    assert body == {
        "model": "o3-mini",
        "messages": [{"role": "system", "content": "Answer in JSON."}, *HISTORY],
        "max_completion_tokens": 2000,
        "reasoning_effort": "high",
        "seed": 7,
        "response_format": {"type": "json_object"},
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
    }


@body_test
async def test_omitted_parameter_is_not_sent_even_when_added_elsewhere(upstream, fake_provider):
    config = await create_config(fake_provider, temperature=0.7, omit_parameters=["temperature"])
    spec = model_spec(config)
    # What a preset or a person's own settings would add on top of the model's parameters.
    with_temperature = dataclasses.replace(spec, parameters={**spec.parameters, "temperature": 1.0})
    body = await body_sent(upstream, with_temperature)
    assert "temperature" not in body


@body_test
async def test_omitting_user_and_stream_options_leaves_them_out(upstream, fake_provider):
    config = await create_config(fake_provider, omit_parameters=["user", "stream_options"])
    body = await body_sent(upstream, model_spec(config), user="u-1")
    assert body == {"model": "fake-model", "messages": HISTORY, "stream": True}


@body_test
async def test_without_omissions_user_and_stream_options_are_sent(upstream, fake_provider):
    config = await create_config(fake_provider)
    body = await body_sent(upstream, model_spec(config), user="u-1")
    assert body["user"] == "u-1" and body["stream_options"] == {"include_usage": True}


@body_test
async def test_a_send_over_the_socket_carries_the_models_parameters(user, conversation, upstream, fake_provider):
    config = await create_config(
        fake_provider, is_default=True, seed=3, max_completion_tokens=64, reasoning_effort="minimal",
        temperature=0.2, omit_parameters=["temperature"],
    )
    communicator = await open_socket(user, conversation)
    await communicator.send_json_to({"type": "send", "content": "Hello?", "model": config.pk})
    frames = await receive_until(communicator, done)
    assert frames[-1]["status"] == "complete"
    body = upstream.requests[-1].body
    assert (body["seed"], body["max_completion_tokens"], body["reasoning_effort"]) == (3, 64, "minimal")
    assert "temperature" not in body and "max_tokens" not in body
    await communicator.disconnect()

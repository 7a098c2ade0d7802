"""Per-conversation choices: the model picker (allowed teams, order, description), a conversation's own
temperature and system prompt within the model's bounds, and presets. Upstream requests are read from the
fake server, over the real socket."""

import html as htmllib
import json
import re

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from conversations import selectors, services
from conversations.exceptions import InvalidChange, ModelNotAvailable
from conversations.models import Conversation, Message, ModelConfig, Preset, Share, Team, TeamMembership
from tests.factories import make_conversation, make_team
from tests.helpers import exchange, flashes, login, open_socket, page, picker

pytestmark = pytest.mark.django_db
over_the_socket = pytest.mark.django_db(transaction=True)


# --- people, teams, models ------------------------------------------------------------------


@pytest.fixture
def otters(alice) -> Team:
    """alice's team; bob is not in it."""
    return make_team(name="Otters", owner=alice)


@pytest.fixture
def tunable(model_config) -> ModelConfig:
    """The default model, letting people set a temperature from 0.2 to 1.2 and a system prompt of their own."""
    model_config.system_prompt = "You are the house model."
    model_config.temperature = 0.5
    model_config.allow_custom_temperature = True
    model_config.temperature_min = 0.2
    model_config.temperature_max = 1.2
    model_config.allow_custom_system_prompt = True
    model_config.save()
    return model_config


@pytest.fixture
def chat(alice, model_config) -> Conversation:
    return make_conversation(owner=alice, title="Settings", model_config=model_config)


def save_settings(client, conversation, **data):
    return client.post(f"/c/{conversation.id}/settings/", data, follow=True)


# --- over the socket: what goes upstream ------------------------------------------------------


def set_own(conversation, *, temperature=None, system_prompt="") -> None:
    Conversation.objects.filter(pk=conversation.pk).update(temperature=temperature, system_prompt=system_prompt)


@over_the_socket
async def test_request_carries_the_conversations_temperature_and_combined_system_prompt(alice, chat, tunable, upstream):
    await sync_to_async(set_own)(chat, temperature=0.9, system_prompt="Answer in French.")
    frames = await exchange(alice, chat, "Bonjour", model=tunable.id)
    assert frames[-1]["type"] == "done" and frames[-1]["status"] == "complete"
    body = upstream.requests[-1].body
    assert body["temperature"] == 0.9
    assert body["messages"][0] == {"role": "system", "content": "You are the house model.\n\nAnswer in French."}
    assert body["messages"][1:] == [{"role": "user", "content": "Bonjour"}]


@over_the_socket
async def test_request_keeps_the_models_values_when_the_model_does_not_allow_its_own(alice, chat, model_config, upstream):
    model_config.system_prompt = "You are the house model."
    model_config.temperature = 0.5
    await sync_to_async(model_config.save)()  # allow_custom_* stay off
    await sync_to_async(set_own)(chat, temperature=0.9, system_prompt="Ignore the house rules.")
    await exchange(alice, chat, model=model_config.id)
    body = upstream.requests[-1].body
    assert body["temperature"] == 0.5
    assert body["messages"][0] == {"role": "system", "content": "You are the house model."}


@over_the_socket
async def test_own_system_prompt_alone_when_the_model_has_none(alice, chat, tunable, upstream):
    tunable.system_prompt = ""
    await sync_to_async(tunable.save)()
    await sync_to_async(set_own)(chat, system_prompt="Be terse.")
    await exchange(alice, chat)
    assert upstream.requests[-1].body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert upstream.requests[-1].body["temperature"] == 0.5  # no own temperature: the model's


@over_the_socket
async def test_omitted_temperature_wins_over_the_persons(alice, chat, tunable, upstream):
    tunable.omit_parameters = ["temperature"]
    await sync_to_async(tunable.save)()
    await sync_to_async(set_own)(chat, temperature=0.9)
    await exchange(alice, chat)
    assert "temperature" not in upstream.requests[-1].body


@over_the_socket
async def test_temperature_outside_bounds_narrowed_later_is_kept_within_them(alice, chat, tunable, upstream):
    await sync_to_async(set_own)(chat, temperature=1.1)
    tunable.temperature_max = 0.8  # the admin narrowed the bounds after the person chose
    await sync_to_async(tunable.save)()
    await exchange(alice, chat)
    assert upstream.requests[-1].body["temperature"] == 0.8


@over_the_socket
async def test_changing_model_mid_conversation_uses_the_new_model_from_the_next_request(
    alice, chat, model_config, make_model, upstream
):
    other = await sync_to_async(make_model)("Other model")
    await exchange(alice, chat, "first", model=model_config.id)
    await exchange(alice, chat, "second", model=other.id)
    await exchange(alice, chat, "third")  # no pick: the conversation's model, now the other
    assert [request.body["model"] for request in upstream.requests] == ["fake-model", "other-model", "other-model"]
    assert (await Conversation.objects.aget(pk=chat.pk)).model_config_id == other.id


@over_the_socket
async def test_forged_send_with_a_model_limited_to_another_team_is_refused(alice, bob, chat, otters, make_model, upstream):
    private = await sync_to_async(make_model)("Otters only", teams=[otters])
    bobs = await Conversation.objects.acreate(owner=bob, title="Bob's")
    frames = await exchange(bob, bobs, "let me in", model=private.id)
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "model_unavailable"
    assert await Message.objects.filter(conversation=bobs).acount() == 0
    assert upstream.requests == []


@over_the_socket
async def test_team_member_may_use_a_model_limited_to_their_team(alice, chat, otters, make_model, upstream):
    private = await sync_to_async(make_model)("Otters only", teams=[otters])
    frames = await exchange(alice, chat, "hello", model=private.id)
    assert frames[-1]["type"] == "done" and frames[-1]["status"] == "complete"
    assert upstream.requests[-1].body["model"] == "otters-only"


@over_the_socket
async def test_regenerate_with_a_model_not_open_to_the_person_is_refused(
    alice, bob, otters, model_config, make_model, upstream
):
    private = await sync_to_async(make_model)("Otters only", teams=[otters])
    bobs = await Conversation.objects.acreate(owner=bob, title="Bob's")
    await Message.objects.acreate(conversation=bobs, role="user", content="hi", author=bob)
    communicator = await open_socket(bob, bobs)
    await communicator.send_to(text_data=json.dumps({"type": "regenerate", "model": private.id}))
    frame = await communicator.receive_json_from()
    assert frame["type"] == "error" and frame["code"] == "model_unavailable"
    await communicator.disconnect()


@over_the_socket
async def test_stored_model_no_longer_open_falls_back_to_the_persons_default(
    alice, bob, otters, model_config, make_model, upstream
):
    private = await sync_to_async(make_model)("Otters only", teams=[otters])
    # bob's conversation kept a model he has since lost access to (or that was limited after he picked it).
    bobs = await Conversation.objects.acreate(owner=bob, title="Bob's", model_config=private)
    frames = await exchange(bob, bobs, "still there?")
    assert frames[-1]["type"] == "done"
    assert upstream.requests[-1].body["model"] == "fake-model"
    assert (await Conversation.objects.aget(pk=bobs.pk)).model_config_id == model_config.id


# --- the send path's spec, directly ------------------------------------------------------------


def test_conversation_spec_is_a_new_spec_and_the_cached_one_is_untouched(chat, tunable):
    cached = selectors.providers.enabled_model_spec(tunable.id)
    chat.temperature, chat.system_prompt = 3.0, "  Mine.  "
    spec = selectors.providers.conversation_spec(cached, chat)
    assert spec is not cached
    assert spec.parameters["temperature"] == 1.2  # kept within the bounds
    assert spec.system_prompt == "You are the house model.\n\nMine."
    assert cached.parameters == {"temperature": 0.5} and cached.system_prompt == "You are the house model."
    assert selectors.providers.enabled_model_spec(tunable.id) is cached


def test_conversation_without_settings_uses_the_cached_spec_as_is(chat, tunable):
    cached = selectors.providers.enabled_model_spec(tunable.id)
    assert selectors.providers.conversation_spec(cached, chat) is cached


def test_demo_spec_takes_no_settings(chat):
    chat.temperature, chat.system_prompt = 0.7, "Mine"
    assert selectors.providers.conversation_spec(selectors.providers.DEMO_SPEC, chat) is selectors.providers.DEMO_SPEC


def test_reply_begin_without_a_pick_uses_the_stored_model_only_if_open(alice, bob, otters, model_config, make_model):
    private = make_model("Otters only", teams=[otters])
    mine = Conversation.objects.create(owner=alice, model_config=private)
    assert services.replies.reply_begin(user=alice, conversation_id=mine.id, content="hi").spec.model == "otters-only"
    bobs = Conversation.objects.create(owner=bob, model_config=private)
    assert services.replies.reply_begin(user=bob, conversation_id=bobs.id, content="hi").spec.model == "fake-model"


def test_default_is_the_first_open_model_when_the_default_is_limited(bob, otters, model_config, make_model):
    model_config.allowed_teams.set([otters])
    fallback = make_model("Everyone's", order=5)
    assert selectors.providers.default_model_for(bob) == (fallback.id, selectors.providers.enabled_model_spec(fallback.id))


def test_models_enabled_but_none_open_refuses_rather_than_using_the_demo(bob, chat, otters, model_config):
    model_config.allowed_teams.set([otters])
    bobs = Conversation.objects.create(owner=bob)
    with pytest.raises(ModelNotAvailable):
        services.replies.reply_begin(user=bob, conversation_id=bobs.id, content="hi")
    html = page(login(bob).get("/"))
    assert "No model is open to you yet" in html
    assert picker(html) == []


def test_demo_answers_when_no_model_is_enabled(alice):
    options = picker(page(login(alice).get("/")))
    assert [(option["value"], option["label"]) for option in options] == [("", "Demo model (offline)")]
    conversation = Conversation.objects.create(owner=alice)
    plan = services.replies.reply_begin(user=alice, conversation_id=conversation.id, content="hi")
    assert plan.spec == selectors.providers.DEMO_SPEC


# --- the picker --------------------------------------------------------------------------------


def test_picker_offers_only_models_open_to_the_person(alice, bob, otters, model_config, make_model):
    make_model("Otters only", teams=[otters])
    assert [option["label"] for option in picker(page(login(alice).get("/")))] == ["Fake model", "Otters only"]
    assert [option["label"] for option in picker(page(login(bob).get("/")))] == ["Fake model"]
    TeamMembership.objects.create(team=otters, user=bob)
    assert [option["label"] for option in picker(page(login(bob).get("/")))] == ["Fake model", "Otters only"]


def test_picker_is_ordered_by_order_then_name_and_shows_descriptions(alice, model_config, make_model):
    model_config.order, model_config.description = 50, "Quick and cheap"
    model_config.save()
    make_model("Zeta", order=10, description="Thinks hard")
    make_model("Alpha", order=50)
    make_model("Last", order=900)
    options = picker(page(login(alice).get("/")))
    assert [option["label"] for option in options] == ["Zeta", "Alpha", "Fake model", "Last"]
    assert [option["title"] for option in options] == ["Thinks hard", "", "Quick and cheap", ""]
    assert [option["selected"] for option in options] == [False, False, True, False]  # the default
    # The description of the model selected is written under the picker too.
    assert re.search(r'class="model-description[^"]*"[^>]*>Quick and cheap<', page(login(alice).get("/")))


def test_conversation_page_picker_falls_back_when_the_stored_model_is_not_open(bob, otters, model_config, make_model):
    private = make_model("Otters only", teams=[otters])
    bobs = Conversation.objects.create(owner=bob, model_config=private)
    options = picker(page(login(bob).get(f"/c/{bobs.id}/")))
    assert [(option["label"], option["selected"]) for option in options] == [("Fake model", True)]


def test_new_conversation_with_a_model_not_open_to_the_person_is_refused(bob, otters, model_config, make_model):
    private = make_model("Otters only", teams=[otters])
    response = login(bob).post("/c/new/", {"content": "hi", "model": private.id})
    assert response.status_code == 400
    assert "That model is not available" in page(response)
    assert not Conversation.objects.filter(owner=bob).exists()
    with pytest.raises(ModelNotAvailable):
        services.conversations.conversation_create(owner=bob, model_config_id=private.id)


def test_new_conversation_starts_with_the_persons_default(bob, otters, model_config, make_model):
    model_config.allowed_teams.set([otters])
    fallback = make_model("Everyone's")
    response = login(bob).post("/c/new/", {"content": "hi"})
    assert response.status_code == 302
    assert Conversation.objects.get(owner=bob).model_config_id == fallback.id


# --- the Settings panel ------------------------------------------------------------------------


def test_settings_panel_shows_what_the_model_allows(alice, chat, tunable):
    html = page(login(alice).get(f"/c/{chat.id}/"))
    assert 'id="conversation-settings"' in html
    field = re.search(r'<input type="number" id="settings-temperature"[^>]*>', html, re.S).group(0)
    assert 'min="0.2"' in field and 'max="1.2"' in field and 'value=""' in field
    assert 'id="settings-system-prompt"' in html


@pytest.mark.parametrize("allow_temperature, allow_prompt", [(True, False), (False, True), (False, False)])
def test_settings_panel_hides_what_the_model_does_not_allow(alice, chat, tunable, allow_temperature, allow_prompt):
    tunable.allow_custom_temperature, tunable.allow_custom_system_prompt = allow_temperature, allow_prompt
    tunable.save()
    html = page(login(alice).get(f"/c/{chat.id}/"))
    assert ('id="settings-temperature"' in html) == allow_temperature
    assert ('id="settings-system-prompt"' in html) == allow_prompt


def test_settings_panel_hides_the_temperature_when_the_model_omits_it(alice, chat, tunable):
    tunable.omit_parameters = ["temperature"]
    tunable.save()
    assert 'id="settings-temperature"' not in page(login(alice).get(f"/c/{chat.id}/"))


def test_saving_settings_within_bounds(alice, chat, tunable):
    response = save_settings(login(alice), chat, temperature="0.7", system_prompt="  Answer in French.  ")
    assert ("success", "Settings saved; they apply from the next reply.") in flashes(response)
    chat.refresh_from_db()
    assert (chat.temperature, chat.system_prompt) == (0.7, "Answer in French.")
    html = page(login(alice).get(f"/c/{chat.id}/"))
    assert 'value="0.7"' in html and "Answer in French.</textarea>" in html


def test_empty_temperature_means_the_models(alice, chat, tunable):
    Conversation.objects.filter(pk=chat.pk).update(temperature=0.9)
    save_settings(login(alice), chat, temperature="", system_prompt="")
    chat.refresh_from_db()
    assert chat.temperature is None


@pytest.mark.parametrize("temperature", ["0.1", "1.25", "2"])
def test_temperature_outside_the_models_bounds_is_refused_and_nothing_changes(alice, chat, tunable, temperature):
    Conversation.objects.filter(pk=chat.pk).update(temperature=0.4, system_prompt="Old")
    response = save_settings(login(alice), chat, temperature=temperature, system_prompt="New")
    assert ("error", "Settings not saved. Choose a temperature from 0.2 to 1.2 for Fake model.") in flashes(response)
    chat.refresh_from_db()
    assert (chat.temperature, chat.system_prompt) == (0.4, "Old")


@pytest.mark.parametrize("temperature", ["-1", "2.5", "nan", "warm"])
def test_temperature_that_is_no_temperature_is_refused(alice, chat, tunable, temperature):
    response = save_settings(login(alice), chat, temperature=temperature)
    assert [level for level, _ in flashes(response)] == ["error"]
    chat.refresh_from_db()
    assert chat.temperature is None


def test_settings_the_model_does_not_allow_are_refused(alice, chat, model_config):
    response = save_settings(login(alice), chat, temperature="0.5")
    assert ("error", "Settings not saved. Fake model does not let you set the temperature.") in flashes(response)
    response = save_settings(login(alice), chat, system_prompt="Be someone else.")
    assert ("error", "Settings not saved. Fake model does not take a system prompt of your own.") in flashes(response)
    chat.refresh_from_db()
    assert (chat.temperature, chat.system_prompt) == (None, "")


def test_settings_need_a_csrf_token(alice, chat, tunable):
    client = login(alice, enforce_csrf_checks=True)
    response = client.post(f"/c/{chat.id}/settings/", {"temperature": "0.7"})
    assert response.status_code == 403
    chat.refresh_from_db()
    assert chat.temperature is None


def test_settings_need_a_login(chat, tunable):
    response = Client().post(f"/c/{chat.id}/settings/", {"temperature": "0.7"})
    assert response.status_code == 302 and "/login" in response["Location"]


def test_settings_are_post_only(alice, chat):
    assert login(alice).get(f"/c/{chat.id}/settings/").status_code == 405


@pytest.mark.parametrize("role, status", [(Share.Role.VIEWER, 403), (None, 404)])
def test_viewer_and_stranger_cannot_change_settings(bob, chat, tunable, role, status):
    if role:
        Share.objects.create(conversation=chat, user=bob, role=role)
    response = login(bob).post(f"/c/{chat.id}/settings/", {"temperature": "0.7"})
    assert response.status_code == status
    chat.refresh_from_db()
    assert chat.temperature is None


def test_viewer_sees_no_settings_panel(bob, chat, tunable):
    Share.objects.create(conversation=chat, user=bob, role=Share.Role.VIEWER)
    assert 'id="conversation-settings"' not in page(login(bob).get(f"/c/{chat.id}/"))


def test_collaborator_may_change_settings(bob, chat, tunable):
    Share.objects.create(conversation=chat, user=bob, role=Share.Role.COLLABORATOR)
    assert 'id="conversation-settings"' in page(login(bob).get(f"/c/{chat.id}/"))
    save_settings(login(bob), chat, temperature="1.0", system_prompt="")
    chat.refresh_from_db()
    assert chat.temperature == 1.0


def test_settings_service_checks_against_the_conversations_model(alice, chat, tunable):
    services.conversations.conversation_settings_update(conversation=chat, user=alice, temperature=0.2, system_prompt="x")
    with pytest.raises(InvalidChange):
        services.conversations.conversation_settings_update(conversation=chat, user=alice, temperature=1.3, system_prompt="x")
    assert Conversation.objects.get(pk=chat.pk).temperature == 0.2


# --- presets -----------------------------------------------------------------------------------


@pytest.fixture
def shared_preset(db) -> Preset:
    return Preset.objects.create(name="Translator", system_prompt="Translate to French.", temperature=0.3)


@pytest.fixture
def bobs_preset(bob) -> Preset:
    return Preset.objects.create(name="Bob's pirate", owner=bob, system_prompt="Talk like a pirate.", temperature=1.0)


def preset_labels(html: str, name: str = "preset") -> list[str]:
    return [option["label"] for option in picker(html, name) if option["value"]]


def test_shared_preset_is_offered_to_everyone_and_a_personal_one_only_to_its_owner(
    alice, bob, chat, model_config, shared_preset, bobs_preset
):
    assert preset_labels(page(login(alice).get("/"))) == ["Translator"]
    assert preset_labels(page(login(bob).get("/"))) == ["Translator", "Bob's pirate"]
    assert preset_labels(page(login(alice).get(f"/c/{chat.id}/"))) == ["Translator"]
    presets_page = page(login(alice).get("/presets/"))
    assert "Translator" in presets_page and "pirate" not in presets_page
    assert "Bob&#x27;s pirate" in page(login(bob).get("/presets/"))


def test_applying_a_preset_sets_model_temperature_and_system_prompt(alice, chat, tunable, make_model):
    other = make_model(
        "Creative", allow_custom_temperature=True, temperature_max=2.0, allow_custom_system_prompt=True
    )
    preset = Preset.objects.create(name="Poet", model_config=other, system_prompt="Write verse.", temperature=1.5)
    response = login(alice).post(f"/c/{chat.id}/preset/", {"preset": preset.id}, follow=True)
    assert ("success", "Preset “Poet” applied.") in flashes(response)
    chat.refresh_from_db()
    assert (chat.model_config_id, chat.temperature, chat.system_prompt) == (other.id, 1.5, "Write verse.")
    html = page(response)
    assert [option["label"] for option in picker(html) if option["selected"]] == ["Creative"]


def test_preset_without_a_model_keeps_the_conversations_and_is_kept_within_its_bounds(alice, chat, tunable):
    preset = Preset.objects.create(name="Hot", system_prompt="Be bold.", temperature=1.9)
    response = login(alice).post(f"/c/{chat.id}/preset/", {"preset": preset.id}, follow=True)
    chat.refresh_from_db()
    assert (chat.model_config_id, chat.temperature, chat.system_prompt) == (tunable.id, 1.2, "Be bold.")
    [(level, text)] = flashes(response)
    assert level == "warning" and "its temperature 1.9: Fake model allows 0.2 to 1.2, so 1.2" in text


def test_preset_parts_the_model_does_not_allow_are_left_out_and_said(alice, chat, model_config, shared_preset):
    Conversation.objects.filter(pk=chat.pk).update(temperature=0.9, system_prompt="Old")
    response = login(alice).post(f"/c/{chat.id}/preset/", {"preset": shared_preset.id}, follow=True)
    chat.refresh_from_db()
    assert (chat.temperature, chat.system_prompt) == (None, "")
    [(level, text)] = flashes(response)
    assert level == "warning"
    assert "its temperature: Fake model does not let you set one" in text
    assert "its system prompt: Fake model does not take one of yours" in text


def test_preset_with_a_model_not_open_to_the_person_keeps_the_model(bob, otters, tunable, make_model):
    private = make_model("Otters only", teams=[otters])
    preset = Preset.objects.create(name="Secret", model_config=private, system_prompt="Psst.")
    bobs = Conversation.objects.create(owner=bob, model_config=tunable)
    response = login(bob).post(f"/c/{bobs.id}/preset/", {"preset": preset.id}, follow=True)
    bobs.refresh_from_db()
    assert (bobs.model_config_id, bobs.system_prompt) == (tunable.id, "Psst.")
    assert "its model, which is not available to you" in flashes(response)[0][1]


@pytest.mark.parametrize("preset_id", ["other", "99999", "abc"])
def test_another_persons_preset_or_none_is_404(alice, chat, tunable, bobs_preset, preset_id):
    value = {"other": bobs_preset.id}.get(preset_id, preset_id)
    response = login(alice).post(f"/c/{chat.id}/preset/", {"preset": value})
    assert response.status_code == 404
    chat.refresh_from_db()
    assert (chat.temperature, chat.system_prompt) == (None, "")


def test_viewer_cannot_apply_a_preset(bob, chat, tunable, shared_preset):
    Share.objects.create(conversation=chat, user=bob, role=Share.Role.VIEWER)
    assert login(bob).post(f"/c/{chat.id}/preset/", {"preset": shared_preset.id}).status_code == 403


def test_new_conversation_from_a_preset(alice, tunable, make_model):
    preset = Preset.objects.create(name="Brief", owner=alice, system_prompt="One line only.", temperature=0.25)
    response = login(alice).post("/c/new/", {"content": "hi", "model": tunable.id, "preset": preset.id}, follow=True)
    conversation = Conversation.objects.get(owner=alice)
    assert (conversation.model_config_id, conversation.temperature, conversation.system_prompt) == (
        tunable.id,
        0.25,
        "One line only.",
    )
    assert ("success", "Preset “Brief” applied.") in flashes(response)


def test_new_conversation_with_another_persons_preset_is_refused(alice, model_config, bobs_preset):
    response = login(alice).post("/c/new/", {"content": "hi", "preset": bobs_preset.id})
    assert response.status_code == 400
    assert not Conversation.objects.filter(owner=alice).exists()


# --- My presets --------------------------------------------------------------------------------


def test_create_a_personal_preset(alice, tunable):
    response = login(alice).post(
        "/presets/new/",
        {"name": "Careful", "model": tunable.id, "system_prompt": "Check twice.", "temperature": "0.3"},
        follow=True,
    )
    assert ("success", "Preset “Careful” saved.") in flashes(response)
    preset = Preset.objects.get(name="Careful")
    assert (preset.owner, preset.model_config, preset.system_prompt, preset.temperature) == (
        alice,
        tunable,
        "Check twice.",
        0.3,
    )


def test_personal_preset_offers_only_models_open_to_the_person(bob, otters, model_config, make_model):
    private = make_model("Otters only", teams=[otters])
    html = page(login(bob).get("/presets/"))
    assert [option["label"] for option in picker(html) if option["value"]] == ["Fake model"]
    response = login(bob).post("/presets/new/", {"name": "Sneaky", "model": private.id})
    assert response.status_code == 400 and not Preset.objects.filter(name="Sneaky").exists()


def test_personal_preset_outside_the_models_bounds_is_refused(alice, tunable):
    response = login(alice).post("/presets/new/", {"name": "Hot", "model": tunable.id, "temperature": "1.9"})
    assert response.status_code == 400
    assert "Choose a temperature from 0.2 to 1.2" in htmllib.unescape(page(response))
    assert not Preset.objects.filter(name="Hot").exists()


def test_personal_preset_names_are_unique_per_person(alice, bob, model_config, bobs_preset):
    Preset.objects.create(name="Mine", owner=alice)
    assert login(alice).post("/presets/new/", {"name": "Mine"}).status_code == 400
    assert login(alice).post("/presets/new/", {"name": bobs_preset.name}).status_code == 302


def test_delete_own_preset_but_not_anyone_elses_or_a_shared_one(alice, bob, bobs_preset, shared_preset):
    assert login(alice).post(f"/presets/{bobs_preset.id}/delete/").status_code == 404
    assert login(bob).post(f"/presets/{shared_preset.id}/delete/").status_code == 404
    assert login(bob).post(f"/presets/{bobs_preset.id}/delete/").status_code == 302
    assert list(Preset.objects.values_list("name", flat=True)) == ["Translator"]


def test_sidebar_links_to_the_presets_page(alice, model_config):
    assert 'href="/presets/"' in page(login(alice).get("/"))


def test_admin_lists_presets_by_owner(admin_client, bob, shared_preset, bobs_preset):
    html = page(admin_client.get("/admin/conversations/preset/"))
    assert html.index("Translator") < html.index("Bob&#x27;s pirate")
    assert "Everyone" in html
    shared_only = page(admin_client.get("/admin/conversations/preset/?for=everyone"))
    assert "Translator" in shared_only and "pirate" not in shared_only


def test_admin_adds_a_shared_preset(admin_client, model_config):
    response = admin_client.post(
        "/admin/conversations/preset/add/",
        {"name": "Support", "owner": "", "model_config": model_config.id, "temperature": "0.2", "system_prompt": "Help."},
    )
    assert response.status_code == 302
    assert Preset.objects.get(name="Support").owner is None


# --- query counts ------------------------------------------------------------------------------

# As tests/test_views.py pins them, whatever the number of models, teams and presets.
# session, user, profile, model choices, presets, sidebar (pinned, first page), shared with me, invitations waiting
HOME_QUERIES = 9
# session, user, profile, conversation, the tree, its branch, model choices, presets, sidebar (pinned, first page),
# shared with me, invitations waiting, the Share dialog: shares, teammates, teams, site settings, public links
CONVERSATION_QUERIES = 17


@pytest.mark.parametrize("count", [1, 15])
def test_page_query_counts_do_not_grow_with_models_teams_or_presets(
    alice, bob, chat, tunable, make_model, django_assert_num_queries, count
):
    for number in range(count):
        team = Team.objects.create(name=f"Team {number}")
        TeamMembership.objects.create(team=team, user=alice)
        make_model(f"Model {number}", teams=[team] if number % 2 else [], description=f"Number {number}")
        Preset.objects.create(name=f"Shared {number}", system_prompt="x")
        Preset.objects.create(name=f"Mine {number}", owner=alice, temperature=0.5)
        Preset.objects.create(name=f"Bob's {number}", owner=bob)
    client = login(alice)
    with django_assert_num_queries(HOME_QUERIES):
        html = page(client.get("/"))
    assert len(picker(html)) == count + 1 and len(preset_labels(html)) == 2 * count
    with django_assert_num_queries(CONVERSATION_QUERIES):
        html = page(client.get(f"/c/{chat.id}/"))
    assert len(picker(html)) == count + 1 and len(preset_labels(html)) == 2 * count


def test_model_spec_carries_what_a_conversation_may_add(tunable):
    spec = selectors.providers.enabled_model_spec(tunable.id)
    assert (spec.temperature_range, spec.custom_system_prompt) == ((0.2, 1.2), True)

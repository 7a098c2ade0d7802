"""Staff in the admin: every admin model of the app against every admin action, each with its exact outcome,
for a staff account that is not a superuser and for a superuser; then the attacks the tables stop.

`sam` is staff with every add, change, delete and view permission of the app's models, as a careless
admin might grant them. `root` is a superuser. The tables below are the spec: each cell is its own
test, with an id that reads like the table: `staff-share-others-change-403`.

Providers, models, usage records and limits are not in the tables: they are the admin's configuration
(what the chat offers and what it costs), which staff given those permissions are there to manage;
they hold no conversation (README "The admin"). Site settings are configuration too, and in the
tables only to show that they follow the permissions given.

Targets, as sam sees them
    own      sam's conversation, its message, its share with bob (sam's teammate), sam's public link
             on it, the team sam owns, sam's own preset
    shared   alice's conversation, shared with sam as a viewer: its message, that share, alice's link
             on it; alice's team, which sam is a member of; the preset shared with everyone
    others   carol's private conversation, its message, her share with dave, her link; carol's team;
             carol's own preset
    row      the site settings' one row

Outcomes
    listed     the changelist (200) shows the row
    hidden     the changelist (200) does not show it, nor its name anywhere on the page
    to-row     302 to the one row's change page (site settings have no list), nothing changed
    read-only  the change page (200), every field read-only, inlines too, no Save button
    editable   the change page (200) with its form and a Save button
    gone       302 to the admin's index ("… doesn't exist"), nothing changed
    ok         POST: 302, and the change, addition or deletion is made
    403        403, and nothing in the database changed
    no-action  bulk delete: the changelist (200) offers no action, and nothing changed
    kept       bulk delete: 302 back to the changelist, and nothing changed (the row is not in its queryset)
"""

from dataclasses import dataclass

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission

from conversations import services
from conversations.models import (
    Conversation,
    Message,
    Preset,
    PublicLink,
    Share,
    SiteSettings,
    TeamMembership,
)
from conversations.rendering import render_markdown
from tests.factories import make_conversation, make_message, make_share, make_superuser, make_team, make_user
from tests.helpers import admin_form, listed, login, page

ADMIN = "/admin/conversations"

# fmt: off
ACTIONS = ("list", "view", "change", "delete", "bulk_delete")
READ_ONLY_MINE = ("listed", "read-only", "403", "403", "no-action")
READ_ONLY_HIDDEN = ("hidden", "gone", "403", "403", "no-action")
FULL = ("listed", "editable", "ok", "ok", "ok")
SITE_SETTINGS = ("to-row", "editable", "ok", "403", "to-row")
STAFF = {
    ("conversation", "own"):    READ_ONLY_MINE,
    ("conversation", "shared"): READ_ONLY_MINE,
    ("conversation", "others"): READ_ONLY_HIDDEN,
    ("message", "own"):         READ_ONLY_MINE,
    ("message", "shared"):      READ_ONLY_MINE,
    ("message", "others"):      READ_ONLY_HIDDEN,
    ("team", "own"):            READ_ONLY_MINE,
    ("team", "shared"):         READ_ONLY_MINE,
    ("team", "others"):         READ_ONLY_HIDDEN,
    ("share", "own"):           READ_ONLY_MINE,
    ("share", "shared"):        READ_ONLY_HIDDEN,  # only an owner sees a conversation's shares
    ("share", "others"):        READ_ONLY_HIDDEN,
    ("publiclink", "own"):      READ_ONLY_MINE,
    ("publiclink", "shared"):   READ_ONLY_HIDDEN,  # and its links
    ("publiclink", "others"):   READ_ONLY_HIDDEN,
    ("preset", "own"):          FULL,
    ("preset", "shared"):       FULL,
    ("preset", "others"):       ("hidden", "gone", "gone", "gone", "kept"),
    ("sitesettings", "row"):    SITE_SETTINGS,
}
EXPECTED = {
    "staff": STAFF,
    # A superuser does everything everywhere, but delete the settings' one row.
    "superuser": {cell: SITE_SETTINGS if cell == ("sitesettings", "row") else FULL for cell in STAFF},
}

MODELS = ("conversation", "message", "team", "share", "publiclink", "preset", "sitesettings")
ADD_EXPECTED = {
    # Public links are made only by a conversation's owner, from the Share dialog; the settings row exists.
    "staff":     ("403", "403", "403", "403", "403", "ok", "403"),
    "superuser": ("ok",  "ok",  "ok",  "ok",  "403", "ok", "403"),
}
# fmt: on

ACCOUNTS = tuple(EXPECTED)
assert tuple(ADD_EXPECTED) == ACCOUNTS
assert all({model for model, _ in table} == set(MODELS) for table in EXPECTED.values())

VOCABULARY = {"listed", "hidden", "to-row", "read-only", "editable", "gone", "ok", "403", "no-action", "kept"}
CELLS = [
    pytest.param(account, model, target, action, outcome, id=f"{account}-{model}-{target}-{action}-{outcome}")
    for account, table in EXPECTED.items()
    for (model, target), outcomes in table.items()
    for action, outcome in zip(ACTIONS, outcomes, strict=True)
]
ADD_CELLS = [
    pytest.param(account, model, outcome, id=f"{account}-{model}-add-{outcome}")
    for account, outcomes in ADD_EXPECTED.items()
    for model, outcome in zip(MODELS, outcomes, strict=True)
]
assert {cell.values[-1] for cell in CELLS + ADD_CELLS} <= VOCABULARY

# --- the world -----------------------------------------------------------------------------------


@dataclass
class World:
    people: dict  # name -> user: sam (staff), root (superuser), alice, bob, carol, dave
    rows: dict  # (model, target) -> the row

    def account(self, name: str):
        return self.people["sam" if name == "staff" else "root"]

    def conversation(self, target: str) -> Conversation:
        return self.rows["conversation", target]


def build_world() -> World:
    sam = make_user(username="sam", is_staff=True)
    # Everything a careless admin could tick for the app's models.
    sam.user_permissions.set(Permission.objects.filter(content_type__app_label="conversations"))
    people = {"sam": sam, "root": make_superuser()}
    people |= {name: make_user(username=name) for name in ("alice", "bob", "carol", "dave")}
    alice, bob, carol, dave = (people[name] for name in ("alice", "bob", "carol", "dave"))

    rows = {
        ("team", "own"): make_team(name="Sams team", owner=sam, members=[bob]),
        ("team", "shared"): make_team(name="Alices team", owner=alice, members=[sam]),
        ("team", "others"): make_team(name="Carols team", owner=carol, members=[dave]),
        ("conversation", "own"): make_conversation(owner=sam, title="Sams chat"),
        ("conversation", "shared"): make_conversation(owner=alice, title="Alices chat", system_prompt="Alices prompt"),
        ("conversation", "others"): make_conversation(owner=carol, title="Carols secret chat"),
        ("preset", "own"): Preset.objects.create(name="Sams preset", owner=sam, system_prompt="Sams prompt"),
        ("preset", "shared"): Preset.objects.create(name="For everyone", system_prompt="Be helpful."),
        ("preset", "others"): Preset.objects.create(name="Carols preset", owner=carol, system_prompt="Carols prompt"),
        ("sitesettings", "row"): SiteSettings.objects.create(),
    }
    with_whom = {"own": bob, "shared": sam, "others": dave}
    for target, person in with_whom.items():
        conversation = rows["conversation", target]
        rows["message", target] = make_message(conversation=conversation, content=f"Hello from {conversation.title}")
        rows["share", target] = make_share(conversation=conversation, user=person)
        rows["publiclink", target] = services.sharing.public_link_create(
            conversation=conversation, kind=PublicLink.Kind.LIVE, audience=PublicLink.Audience.ANYONE
        )
    return World(people, rows)


@pytest.fixture
def world(db, settings) -> World:
    # WhiteNoise lists STATIC_ROOT whenever a test Client loads the middleware, and other runs on
    # this machine rewrite that directory (collectstatic); these pages need none of its files.
    settings.STATIC_ROOT = None
    return build_world()


def database_state() -> dict[str, list[dict]]:
    """Every row of every model of the app, to show that a refused request changed nothing."""
    models = apps.get_app_config("conversations").get_models()
    return {model._meta.label: list(model.objects.order_by("pk").values()) for model in models}


# --- what each action posts, and how its success shows -----------------------------------------

# A change each model's form accepts, and the field it shows in (None: a box left unticked).
CHANGES = {
    "conversation": {"title": "Changed"},
    "message": {"content": "Changed"},
    "team": {"name": "Changed"},
    "share": {"role": Share.Role.COLLABORATOR},  # every share is made as viewer
    "publiclink": {"audience": PublicLink.Audience.USERS},  # every link is made for anyone
    "preset": {"name": "Changed"},
    "sitesettings": {"public_links_enabled": None},
}


def additions(world: World, model: str) -> tuple[dict, dict]:
    """What the add form is given for `model`, and the lookup that finds the row it makes."""
    sam, others = world.people["sam"], world.conversation("others")
    posted = {
        "conversation": {"owner": world.people["alice"].pk, "title": "Added"},
        "message": {"conversation": others.pk, "role": Message.Role.ASSISTANT, "content": "Added"},
        "team": {"name": "Added"},
        "share": {"conversation": others.pk, "user": sam.pk, "role": Share.Role.VIEWER},
        "publiclink": {"conversation": others.pk, "kind": PublicLink.Kind.LIVE, "audience": PublicLink.Audience.ANYONE},
        "preset": {"name": "Added"},
        "sitesettings": {"public_links_enabled": "on"},
    }[model]
    found = {
        "conversation": {"title": "Added"},
        "message": {"content": "Added"},
        "team": {"name": "Added"},
        "share": {"conversation": others, "user": sam},
        "preset": {"name": "Added"},
        # Never added here: links come from the Share dialog, and the settings row exists.
        "publiclink": {},
        "sitesettings": {},
    }[model]
    return posted, found


def changelist(model: str) -> str:
    return f"{ADMIN}/{model}/"


def change_page(model: str, row) -> str:
    return f"{ADMIN}/{model}/{row.pk}/change/"


def assert_gone(response) -> None:
    assert response.status_code == 302 and response["Location"] == "/admin/", response.status_code


def assert_refused(response, outcome: str, before: dict) -> None:
    """A 403 or a redirect away, and not a row of the app changed."""
    if outcome == "gone":
        assert_gone(response)
    else:
        assert outcome == "403" and response.status_code == 403, response.status_code
    assert database_state() == before


# --- the checks, one per action ----------------------------------------------------------------


def check_list(world, client, model, row, outcome):
    before = database_state()
    response = client.get(changelist(model))
    if outcome == "to-row":
        assert response.status_code == 302 and response["Location"] == change_page(model, row)
    else:
        shown = [listed_row.pk for listed_row in listed(response)]
        assert (row.pk in shown) == (outcome == "listed")
        if outcome == "hidden":
            assert str(row) not in page(response)  # not in a filter or a heading either
    assert database_state() == before


def check_view(world, client, model, row, outcome):
    before = database_state()
    response = client.get(change_page(model, row))
    if outcome == "gone":
        assert_gone(response)
    else:
        assert response.status_code == 200
        editable = outcome == "editable"
        assert response.context["has_change_permission"] is editable
        assert ('name="_save"' in page(response)) is editable
        if not editable:
            assert response.context["has_editable_inline_admin_formsets"] is False
    assert database_state() == before


def check_change(world, client, model, row, outcome):
    before = database_state()
    changes = CHANGES[model]
    if outcome == "ok":
        response = client.post(change_page(model, row), admin_form(client.get(change_page(model, row)), **changes))
        assert response.status_code == 302, response.context and response.context["adminform"].form.errors
        row.refresh_from_db()
        for field, value in changes.items():
            assert getattr(row, field) == (False if value is None else value)
    else:
        # Refused before any form is read: the change alone is posted, as a script would.
        response = client.post(change_page(model, row), {k: v for k, v in changes.items() if v is not None})
        assert_refused(response, outcome, before)


def check_delete(world, client, model, row, outcome):
    before = database_state()
    response = client.post(f"{ADMIN}/{model}/{row.pk}/delete/", {"post": "yes"})
    if outcome == "ok":
        assert response.status_code == 302 and response["Location"] == changelist(model)
        assert not type(row).objects.filter(pk=row.pk).exists()
    else:
        assert_refused(response, outcome, before)


def check_bulk_delete(world, client, model, row, outcome):
    before = database_state()
    response = client.post(changelist(model), {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    exists = type(row).objects.filter(pk=row.pk).exists()
    if outcome == "ok":
        assert response.status_code == 302 and not exists
        return
    if outcome == "no-action":
        assert response.status_code == 200 and response.context["action_form"] is None
    elif outcome == "kept":
        assert response.status_code == 302 and response["Location"] == changelist(model)
    else:
        assert outcome == "to-row" and response["Location"] == change_page(model, row)
    assert database_state() == before


CHECKS = {
    "list": check_list,
    "view": check_view,
    "change": check_change,
    "delete": check_delete,
    "bulk_delete": check_bulk_delete,
}
assert tuple(CHECKS) == ACTIONS


@pytest.mark.django_db
@pytest.mark.parametrize("account, model, target, action, outcome", CELLS)
def test_admin_access(world, account, model, target, action, outcome):
    client = login(world.account(account))
    CHECKS[action](world, client, model, world.rows[model, target], outcome)


@pytest.mark.django_db
@pytest.mark.parametrize("account, model, outcome", ADD_CELLS)
def test_admin_add(world, account, model, outcome):
    client = login(world.account(account))
    posted, found = additions(world, model)
    before = database_state()
    page_response = client.get(f"{ADMIN}/{model}/add/")
    model_class = apps.get_model("conversations", model)
    if outcome == "ok":
        response = client.post(f"{ADMIN}/{model}/add/", admin_form(page_response, **posted))
        assert response.status_code == 302, response.context and response.context["adminform"].form.errors
        assert model_class.objects.filter(**found).count() == 1
    else:
        assert page_response.status_code == 403
        assert_refused(client.post(f"{ADMIN}/{model}/add/", posted), outcome, before)


# --- the attacks the security review found -------------------------------------------------------
# Each one worked before staff who are not superusers were held to the site's access rule.


def as_root_sees_it(world, url: str, **changes) -> dict:
    """The form at `url` as a superuser's browser shows it, with `changes`: what sam would post if sam had that page."""
    return admin_form(login(world.people["root"]).get(url), **changes)


def test_staff_cannot_add_themselves_to_a_team(world):
    sam, team = world.people["sam"], world.rows["team", "others"]
    form = as_root_sees_it(world, change_page("team", team))
    blank_row = next(name for name, value in form.items() if name.endswith("-user") and not value and "__prefix__" not in name)
    form[blank_row] = sam.pk
    before = database_state()
    assert_refused(login(sam).post(change_page("team", team), form), "403", before)
    assert not TeamMembership.objects.filter(team=team, user=sam).exists()


def test_staff_cannot_share_another_persons_conversation_with_themselves(world):
    sam, others = world.people["sam"], world.conversation("others")
    form = as_root_sees_it(world, f"{ADMIN}/share/add/", conversation=others.pk, user=sam.pk, role=Share.Role.COLLABORATOR)
    before = database_state()
    assert_refused(login(sam).post(f"{ADMIN}/share/add/", form), "403", before)
    assert login(sam).get(f"/c/{others.pk}/").status_code == 404


def test_staff_cannot_point_their_public_link_at_another_persons_conversation(world):
    link, others = world.rows["publiclink", "own"], world.conversation("others")  # a live link, for anyone
    form = as_root_sees_it(world, change_page("publiclink", link), conversation=others.pk)
    before = database_state()
    assert_refused(login(world.people["sam"]).post(change_page("publiclink", link), form), "403", before)
    shown = page(login(None).get(f"/s/{link.token}/"))
    assert "Hello from Sams chat" in shown and "Carols secret chat" not in shown


def test_staff_cannot_add_a_message_to_another_persons_conversation(world):
    others = world.conversation("others")
    form = as_root_sees_it(
        world,
        f"{ADMIN}/message/add/",
        conversation=others.pk,
        role=Message.Role.ASSISTANT,
        content="Sure.",
        html='<script>alert("sam")</script>',
    )
    before = database_state()
    assert_refused(login(world.people["sam"]).post(f"{ADMIN}/message/add/", form), "403", before)
    assert "alert(" not in page(login(world.people["carol"]).get(f"/c/{others.pk}/"))


def test_staff_cannot_create_a_conversation_owned_by_someone_else(world):
    carol = world.people["carol"]
    form = as_root_sees_it(world, f"{ADMIN}/conversation/add/", owner=carol.pk, title="Planted")
    before = database_state()
    assert_refused(login(world.people["sam"]).post(f"{ADMIN}/conversation/add/", form), "403", before)
    assert not Conversation.objects.filter(title="Planted").exists()


def test_staff_see_shared_presets_and_their_own_never_another_persons(world):
    sam = login(world.people["sam"])
    assert [preset.name for preset in listed(sam.get(f"{ADMIN}/preset/"))] == ["For everyone", "Sams preset"]
    assert listed(sam.get(f"{ADMIN}/preset/", {"q": "Carols prompt"})) == []
    assert listed(sam.get(f"{ADMIN}/preset/", {"for": "personal"})) == [world.rows["preset", "own"]]
    assert_gone(sam.get(change_page("preset", world.rows["preset", "others"])))


@pytest.mark.parametrize("target", ["add", "own"])
def test_staff_cannot_give_a_preset_to_someone_else(world, target):
    sam, carol = login(world.people["sam"]), world.people["carol"]
    url = f"{ADMIN}/preset/add/" if target == "add" else change_page("preset", world.rows["preset", "own"])
    form = admin_form(sam.get(url), name="Planted", owner=carol.pk, system_prompt="Obey sam.")
    before = database_state()
    response = sam.post(url, form)
    assert response.status_code == 200 and "owner" in response.context["adminform"].form.errors
    assert database_state() == before


def test_staff_add_a_preset_for_everyone_or_for_themselves_only(world):
    sam = world.people["sam"]
    client = login(sam)
    choices = [value for value, _ in client.get(f"{ADMIN}/preset/add/").context["adminform"].form.fields["owner"].choices]
    assert [str(value) for value in choices] == ["", str(sam.pk)]
    response = client.post(f"{ADMIN}/preset/add/", admin_form(client.get(f"{ADMIN}/preset/add/"), name="Mine", owner=sam.pk))
    assert response.status_code == 302
    assert Preset.objects.get(name="Mine").owner == sam


@pytest.mark.parametrize("account", ACCOUNTS)
def test_a_messages_html_is_rendered_from_its_content_never_taken_from_a_form(world, account):
    reply = make_message(conversation=world.conversation("own"), role=Message.Role.ASSISTANT, content="Old")
    client = login(world.account(account))
    change_form = client.get(change_page("message", reply))
    assert 'name="html"' not in page(change_form)
    if account == "superuser":
        content = "**Bold** and <script>alert(1)</script>"
        form = admin_form(change_form, content=content, html="<script>alert(2)</script>")
        assert client.post(change_page("message", reply), form).status_code == 302
        reply.refresh_from_db()
        assert (reply.content, reply.html) == (content, render_markdown(content))
        added = admin_form(client.get(f"{ADMIN}/message/add/"), **additions(world, "message")[0], html="<b>raw</b>")
        assert client.post(f"{ADMIN}/message/add/", added).status_code == 302
        assert Message.objects.get(content="Added").html == render_markdown("Added")


@pytest.mark.parametrize(("role", "shown"), [(Share.Role.VIEWER, False), (Share.Role.COLLABORATOR, True)])
def test_a_conversations_own_settings_show_only_to_staff_who_may_write_in_it(world, role, shown):
    # On the site a viewer has no Settings panel: the admin shows a viewer no more.
    Share.objects.filter(pk=world.rows["share", "shared"].pk).update(role=role)
    html = page(login(world.people["sam"]).get(change_page("conversation", world.conversation("shared"))))
    assert "Alices chat" in html
    assert ("Alices prompt" in html) is shown


def test_the_share_list_filter_names_only_teams_of_shares_staff_see(world):
    make_share(conversation=world.conversation("others"), team=world.rows["team", "others"])
    make_share(conversation=world.conversation("own"), team=world.rows["team", "own"])
    html = page(login(world.people["sam"]).get(f"{ADMIN}/share/"))
    assert "Sams team" in html and "Carols team" not in html


@pytest.mark.parametrize("model", ["conversation", "team", "preset"])
def test_lookup_popups_list_only_what_staff_may_see(world, model):
    # The popups behind the superuser's raw-id fields; staff have no such fields but could open the URL.
    # (This one held before too: the changelists were already filtered.)
    response = login(world.people["sam"]).get(f"{ADMIN}/{model}/", {"_popup": "1", "_to_field": "id"})
    hidden = world.rows[model, "others"]
    assert hidden.pk not in [row.pk for row in listed(response)]
    assert str(hidden) not in page(response)


def test_staff_without_the_permission_cannot_make_the_site_settings(make_user, settings):
    settings.STATIC_ROOT = None
    nina = login(make_user("nina", is_staff=True))
    assert nina.get(f"{ADMIN}/sitesettings/").status_code == 403
    assert nina.get(f"{ADMIN}/sitesettings/add/").status_code == 403
    assert nina.post(f"{ADMIN}/sitesettings/add/", {"public_links_enabled": ""}).status_code == 403
    assert not SiteSettings.objects.exists()


def test_limits_name_every_team(world):
    # Team names are configuration (who a model is open to, who a cap applies to): staff who manage
    # limits pick any team, though the team list shows them only their own teams and members.
    html = page(login(world.people["sam"]).get(f"{ADMIN}/limit/add/"))
    assert all(name in html for name in ("Sams team", "Alices team", "Carols team"))

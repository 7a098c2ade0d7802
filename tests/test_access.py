"""Every role against every action on one conversation, each with its exact outcome.

The two tables below are the spec. Each (role, action) cell is its own test, with
an id that reads like the table: `user_viewer-rename-403`, `teammate-connect-4404`.

HTTP outcomes
    ok         GET: 200 and the content; POST: 302 back to the page and the change is made
    owner-ui   200, with the composer and the Share dialog
    composer   200, with the composer, without the Share dialog
    read-only  200, with the read-only note, without the composer or the Share dialog
    403        403, and nothing changed
    404        404, and nothing changed (no hint the conversation exists)
    login      302 to /accounts/login/?next=<the path>, and nothing changed

Socket outcomes
    accepted   the socket opens
    4404/4401  the socket is refused with this close code
    ok         the action happens (a reply streams to `done`, is stopped, is replaced)
    forbidden  an error frame with code "forbidden", and nothing changes: no message saved,
               no request upstream, the running reply completes, the old reply stays
    -          cannot connect; covered by the connect column
"""

import json
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async

from conversations import services
from conversations.models import Conversation, Message, PublicLink, Share, Team, TeamMembership
from conversations.permissions import FORBIDDEN_MESSAGES, Action
from conversations.rendering import render_markdown
from tests.factories import make_user
from tests.fake_openai import reply
from tests.helpers import closed_with, connect, done, is_error, login, open_socket, receive_until

# fmt: off
HTTP_ACTIONS =           ("page",      "rename", "delete", "share", "revoke", "export", "public_link", "open_link", "deleted_link")
HTTP_EXPECTED = {
    "owner":             ("owner-ui",  "ok",     "ok",     "ok",    "ok",     "ok",     "ok",          "ok",        "404"),
    "user_collaborator": ("composer",  "403",    "403",    "403",   "403",    "ok",     "403",         "ok",        "404"),
    "user_viewer":       ("read-only", "403",    "403",    "403",   "403",    "ok",     "403",         "ok",        "404"),
    "team_collaborator": ("composer",  "403",    "403",    "403",   "403",    "ok",     "403",         "ok",        "404"),
    "team_viewer":       ("read-only", "403",    "403",    "403",   "403",    "ok",     "403",         "ok",        "404"),
    "teammate":          ("404",       "404",    "404",    "404",   "404",    "404",    "404",         "ok",        "404"),
    "stranger":          ("404",       "404",    "404",    "404",   "404",    "404",    "404",         "ok",        "404"),
    "revoked":           ("404",       "404",    "404",    "404",   "404",    "404",    "404",         "ok",        "404"),
    "anonymous":         ("login",     "login",  "login",  "login", "login",  "login",  "login",       "ok",        "404"),
}

SOCKET_ACTIONS =         ("connect",  "send",      "stop",      "regenerate")
SOCKET_EXPECTED = {
    "owner":             ("accepted", "ok",        "ok",        "ok"),
    "user_collaborator": ("accepted", "ok",        "ok",        "ok"),
    "user_viewer":       ("accepted", "forbidden", "forbidden", "forbidden"),
    "team_collaborator": ("accepted", "ok",        "ok",        "ok"),
    "team_viewer":       ("accepted", "forbidden", "forbidden", "forbidden"),
    "teammate":          ("4404",     "-",         "-",         "-"),
    "stranger":          ("4404",     "-",         "-",         "-"),
    "revoked":           ("4404",     "-",         "-",         "-"),
    "anonymous":         ("4401",     "-",         "-",         "-"),
}
# fmt: on

ROLES = tuple(HTTP_EXPECTED)
assert tuple(SOCKET_EXPECTED) == ROLES


def cells(actions, expected, *, vocabulary):
    params = []
    for role, outcomes in expected.items():
        assert len(outcomes) == len(actions), role
        for action, outcome in zip(actions, outcomes, strict=True):
            assert outcome in vocabulary, (role, action, outcome)
            if outcome != "-":
                params.append(pytest.param(role, action, outcome, id=f"{role}-{action}-{outcome}"))
    return params


HTTP_CELLS = cells(
    HTTP_ACTIONS, HTTP_EXPECTED, vocabulary={"ok", "owner-ui", "composer", "read-only", "403", "404", "login"}
)
SOCKET_CELLS = cells(SOCKET_ACTIONS, SOCKET_EXPECTED, vocabulary={"accepted", "4404", "4401", "ok", "forbidden", "-"})

# --- the world: one conversation, one person per role ------------------------------------

TITLE = "Access chat"
QUESTION = "What is two plus two?"
ANSWER = "Four."


@dataclass
class World:
    users: dict  # role -> user; no entry for anonymous
    conversation: Conversation
    question: Message
    answer: Message
    viewer_share: Share  # the user_viewer's share, which `revoke` revokes
    link: PublicLink  # a snapshot link anyone may open

    def user(self, role):
        return self.users.get(role)

    def path(self, suffix: str = "") -> str:
        return f"/c/{self.conversation.id}/{suffix}"


def build_world() -> World:
    users = {role: make_user(username=role) for role in ROLES if role != "anonymous"}
    core, writers, readers = (Team.objects.create(name=name) for name in ("core", "writers", "readers"))
    for team, role in [(core, "owner"), (core, "teammate"), (writers, "team_collaborator"), (readers, "team_viewer")]:
        TeamMembership.objects.create(team=team, user=users[role])

    conversation = Conversation.objects.create(owner=users["owner"], title=TITLE)
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=QUESTION, author=users["owner"]
    )
    answer = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, content=ANSWER, html=render_markdown(ANSWER)
    )

    collaborator, viewer = Share.Role.COLLABORATOR, Share.Role.VIEWER
    Share.objects.create(conversation=conversation, user=users["user_collaborator"], role=collaborator)
    viewer_share = Share.objects.create(conversation=conversation, user=users["user_viewer"], role=viewer)
    Share.objects.create(conversation=conversation, team=writers, role=collaborator)
    Share.objects.create(conversation=conversation, team=readers, role=viewer)
    Share.objects.create(conversation=conversation, user=users["revoked"], role=collaborator).delete()

    link = services.sharing.public_link_create(
        conversation=conversation, kind=PublicLink.Kind.SNAPSHOT, audience=PublicLink.Audience.ANYONE
    )
    return World(users, conversation, question, answer, viewer_share, link)


# --- HTTP --------------------------------------------------------------------------------


@pytest.fixture
def world(db, settings) -> World:
    # WhiteNoise lists STATIC_ROOT whenever a test Client loads the middleware, and other runs on
    # this machine rewrite that directory (collectstatic); these pages need none of its files.
    settings.STATIC_ROOT = None
    return build_world()


def assert_refused(response, outcome: str, path: str) -> None:
    """A 403, a 404, or the login redirect for anonymous visitors."""
    if outcome == "login":
        assert response.status_code == 302
        assert response["Location"] == "/accounts/login/?" + urlencode({"next": path}, safe="/")
    else:
        assert response.status_code == int(outcome), response.content[:300]
        if outcome == "404":
            assert TITLE not in response.content.decode()  # no hint the conversation exists


def page(world, client, outcome):
    path = world.path()
    response = client.get(path)
    if outcome in ("owner-ui", "composer", "read-only"):
        assert response.status_code == 200
        html = response.content.decode()
        assert QUESTION in html and ANSWER in html
        assert ('id="composer"' in html) == (outcome != "read-only")
        assert ('id="read-only-note"' in html) == (outcome == "read-only")
        assert ('id="share-dialog"' in html) == (outcome == "owner-ui")
    else:
        assert_refused(response, outcome, path)


def rename(world, client, outcome):
    path = world.path("rename/")
    response = client.post(path, {"title": "Renamed"})
    world.conversation.refresh_from_db()
    if outcome == "ok":
        assert response.status_code == 302 and response["Location"] == world.path()
        assert world.conversation.title == "Renamed"
    else:
        assert_refused(response, outcome, path)
        assert world.conversation.title == TITLE


def delete(world, client, outcome):
    path = world.path("delete/")
    response = client.post(path)
    exists = Conversation.objects.filter(pk=world.conversation.pk).exists()
    if outcome == "ok":
        assert response.status_code == 302 and response["Location"] == "/"
        assert not exists
        assert not Message.objects.filter(pk__in=[world.question.pk, world.answer.pk]).exists()
    else:
        assert_refused(response, outcome, path)
        assert exists


def share(world, client, outcome):
    path = world.path("shares/")
    teammate = world.user("teammate")
    response = client.post(path, {"target": f"user:{teammate.pk}", "role": "viewer"})
    shares = Share.objects.filter(conversation=world.conversation, user=teammate)
    if outcome == "ok":
        assert response.status_code == 302 and response["Location"] == world.path() + "#share"
        assert list(shares.values_list("role", flat=True)) == ["viewer"]
    else:
        assert_refused(response, outcome, path)
        assert not shares.exists()


def revoke(world, client, outcome):
    path = world.path(f"shares/{world.viewer_share.pk}/revoke/")
    response = client.post(path)
    exists = Share.objects.filter(pk=world.viewer_share.pk).exists()
    if outcome == "ok":
        assert response.status_code == 302 and response["Location"] == world.path() + "#share"
        assert not exists
    else:
        assert_refused(response, outcome, path)
        assert exists


def export(world, client, outcome):
    for kind in ("json", "md"):
        path = world.path(f"export/?format={kind}")
        response = client.get(path)
        if outcome != "ok":
            assert_refused(response, outcome, path)
            continue
        assert response.status_code == 200
        body = response.content.decode()
        if kind == "json":
            assert response["Content-Type"] == "application/json"
            exported = json.loads(body)
            assert exported["id"] == str(world.conversation.id) and exported["title"] == TITLE
            assert [(m["role"], m["content"]) for m in exported["messages"]] == [
                ("user", QUESTION),
                ("assistant", ANSWER),
            ]
        else:
            assert response["Content-Type"].startswith("text/markdown")
            assert f"# {TITLE}" in body and QUESTION in body and ANSWER in body


def public_link(world, client, outcome):
    path = world.path("links/")
    response = client.post(path, {"kind": "snapshot", "audience": "anyone"})
    links = PublicLink.objects.filter(conversation=world.conversation).exclude(pk=world.link.pk)
    if outcome == "ok":
        assert response.status_code == 302 and response["Location"] == world.path() + "#share"
        assert [(link.kind, link.audience) for link in links] == [("snapshot", "anyone")]
    else:
        assert_refused(response, outcome, path)
        assert not links.exists()


def open_link(world, client, outcome):
    assert outcome == "ok"
    response = client.get(f"/s/{world.link.token}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert QUESTION in html and ANSWER in html


def deleted_link(world, client, outcome):
    assert outcome == "404"
    owner = login(world.user("owner"))
    response = owner.post(world.path(f"links/{world.link.pk}/delete/"))
    assert response.status_code == 302 and not PublicLink.objects.filter(pk=world.link.pk).exists()
    assert client.get(f"/s/{world.link.token}/").status_code == 404


HTTP_CHECKS = {
    check.__name__: check
    for check in (page, rename, delete, share, revoke, export, public_link, open_link, deleted_link)
}
assert tuple(HTTP_CHECKS) == HTTP_ACTIONS


@pytest.mark.django_db
@pytest.mark.parametrize("role, action, outcome", HTTP_CELLS)
def test_http(world, role, action, outcome):
    HTTP_CHECKS[action](world, login(world.user(role)), outcome)


# --- websocket ---------------------------------------------------------------------------


def forbidden_frame(action: Action) -> dict:
    return {"type": "error", "code": "forbidden", "message": FORBIDDEN_MESSAGES[action]}


@sync_to_async
def saved_messages(world) -> list[tuple]:
    rows = Message.objects.filter(conversation=world.conversation).order_by("id")
    return list(rows.values_list("id", "role", "content", "status", "author__username"))


async def assert_unchanged(world, upstream) -> None:
    assert await saved_messages(world) == [
        (world.question.pk, "user", QUESTION, "complete", "owner"),
        (world.answer.pk, "assistant", ANSWER, "complete", None),
    ]
    assert upstream.requests == []


async def socket_connect(world, role, outcome, upstream):
    communicator = await connect(world.user(role), world.conversation.id)
    if outcome == "accepted":
        connected, _ = await communicator.connect()
        assert connected
        assert await communicator.receive_nothing(timeout=0.1)
    else:
        assert await closed_with(communicator) == int(outcome)
    await communicator.disconnect()


async def socket_send(world, role, outcome, upstream):
    upstream.push(reply(["Hello, ", role]))
    socket = await open_socket(world.user(role), world.conversation)
    await socket.send_json_to({"type": "send", "content": f"Hi from {role}"})
    if outcome == "forbidden":
        frames = await receive_until(socket, is_error)
        assert frames == [forbidden_frame(Action.SEND)]
        assert await socket.receive_nothing(timeout=0.2)
        await assert_unchanged(world, upstream)
    else:
        frames = await receive_until(socket, done)
        user_frame = frames[0]["message"]
        assert (user_frame["role"], user_frame["content"], user_frame["author"]) == ("user", f"Hi from {role}", role)
        assert frames[-1]["status"] == "complete" and frames[-1]["content"] == f"Hello, {role}"
        assert (await saved_messages(world))[2:] == [
            (user_frame["id"], "user", f"Hi from {role}", "complete", role),
            (frames[-1]["message_id"], "assistant", f"Hello, {role}", "complete", None),
        ]
        assert len(upstream.requests) == 1
    await socket.disconnect()


async def socket_stop(world, role, outcome, upstream):
    upstream.push(reply(["slow "] * 40, delay=0.02))  # most of a second, unless stopped
    owner = await open_socket(world.user("owner"), world.conversation)
    other = await open_socket(world.user(role), world.conversation)  # for the owner: a second tab
    await owner.send_json_to({"type": "send", "content": "Take your time"})
    frames = await receive_until(owner, lambda frame: frame["type"] == "delta")
    reply_id = frames[-1]["message_id"]
    await other.send_json_to({"type": "stop"})
    if outcome == "forbidden":
        assert (await receive_until(other, is_error))[-1] == forbidden_frame(Action.STOP)
    end = (await receive_until(owner, done))[-1]
    expected = "stopped" if outcome == "ok" else "complete"
    assert end["message_id"] == reply_id and end["status"] == expected
    last_id, _, _, last_status, _ = (await saved_messages(world))[-1]
    assert (last_id, last_status) == (reply_id, expected)
    await owner.disconnect()
    await other.disconnect()


async def socket_regenerate(world, role, outcome, upstream):
    upstream.push(reply(["A new answer"]))
    socket = await open_socket(world.user(role), world.conversation)
    await socket.send_json_to({"type": "regenerate"})
    if outcome == "forbidden":
        frames = await receive_until(socket, is_error)
        assert frames == [forbidden_frame(Action.REGENERATE)]
        assert await socket.receive_nothing(timeout=0.2)
        await assert_unchanged(world, upstream)
    else:
        frames = await receive_until(socket, done)
        new_id = frames[-1]["message_id"]
        assert frames[0] == {
            "type": "start", "message_id": new_id, "parent_id": world.question.pk, "versions": [world.answer.pk, new_id]
        }
        assert frames[-1]["status"] == "complete" and frames[-1]["content"] == "A new answer"
        assert await saved_messages(world) == [
            (world.question.pk, "user", QUESTION, "complete", "owner"),
            (world.answer.pk, "assistant", ANSWER, "complete", None),  # the old version is kept
            (new_id, "assistant", "A new answer", "complete", None),
        ]
        assert upstream.requests[-1].body["messages"] == [{"role": "user", "content": QUESTION}]
    await socket.disconnect()


SOCKET_CHECKS = {"connect": socket_connect, "send": socket_send, "stop": socket_stop, "regenerate": socket_regenerate}
assert tuple(SOCKET_CHECKS) == SOCKET_ACTIONS


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role, action, outcome", SOCKET_CELLS)
async def test_socket(model_config, upstream, role, action, outcome):
    # Built on the database thread, so the access announcements its shares send go out on this test's loop.
    world = await sync_to_async(build_world)()
    await SOCKET_CHECKS[action](world, role, outcome, upstream)

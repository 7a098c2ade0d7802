"""A conversation as a tree: the shape (conversations/tree.py), what goes upstream, the protocol's send with
parent_id, regenerate with message_id and select, catch-up across branches, the page, and the migration of
conversations saved before there were versions. Sockets are real (WebsocketCommunicator), and so is the
model server (tests/fake_openai.py over HTTP)."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations import events
from conversations.models import Conversation, Message, PublicLink
from conversations.tree import Tree
from tests.factories import make_message, make_share
from tests.fake_openai import reply
from tests.helpers import done, is_error, login, open_link_socket, open_socket, page, receive_until, send

# --- the shape ---------------------------------------------------------------------------------


def test_a_tree_knows_paths_versions_and_the_newest_leaf():
    #   1 ─ 2 ─ 3 ─ 4          4 and 6 are versions of one another (an edited question),
    #         └ 6 ─ 7          2 and 5 of the first answer (regenerated); 8 starts the conversation again.
    #   1 ─ 5
    #   8
    tree = Tree([(1, None), (2, 1), (3, 2), (4, 3), (5, 1), (6, 3), (7, 6), (8, None)])
    assert tree.path(7) == [1, 2, 3, 6, 7]
    assert tree.versions(6) == [4, 6] and tree.versions(5) == [2, 5] and tree.versions(8) == [1, 8]
    assert tree.newest_leaf(2) == 7 and tree.newest_leaf(4) == 4 and tree.newest_leaf(None) == 8
    assert tree.branch(4) == [1, 2, 3, 4]
    assert tree.branch(3) == [1, 2, 3, 6, 7]  # a saved leaf that has grown: its newest branch
    assert tree.branch(99) == [8]  # a saved leaf that is gone: the newest branch


def test_a_deep_chain_and_a_loop_need_no_recursion_and_end():
    depth = 50_000
    chain = Tree([(1, None), *((n, n - 1) for n in range(2, depth + 1))])
    assert len(chain.path(depth)) == depth and chain.newest_leaf(1) == depth
    looped = Tree([(1, 2), (2, 1)])  # only a hand-edited database could hold one
    assert looped.path(1) in ([2, 1], [1, 2])


# --- over a real socket -------------------------------------------------------------------------

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def linear(conversation, *texts) -> list[Message]:
    """Messages in turn (a person's, a reply) after the conversation's newest."""
    return [
        make_message(conversation=conversation, role="user" if index % 2 == 0 else "assistant", content=text)
        for index, text in enumerate(texts)
    ]


@sync_to_async
def saved_tree(conversation) -> list[tuple]:
    return list(Message.objects.filter(conversation=conversation).order_by("id").values_list("content", "parent__content"))


@sync_to_async
def current_leaf(conversation):
    return Conversation.objects.get(pk=conversation.pk).current_leaf_id


def sent(upstream) -> list[str]:
    return [turn["content"] for turn in upstream.requests[-1].body["messages"] if turn["role"] != "system"]


async def test_editing_a_question_sends_only_its_branch_and_keeps_the_old_version(user, conversation, model_config, upstream):
    _q1, a1, q2, _a2 = await linear(conversation, "Q1", "A1", "Q2", "A2")
    upstream.push(reply("A2 again"))
    socket = await open_socket(user, conversation)
    await send(socket, "Q2 edited", parent_id=a1.id)
    frames = await receive_until(socket, done)
    new_question = frames[0]["message"]
    assert new_question["parent_id"] == a1.id and new_question["versions"] == [q2.id, new_question["id"]]
    start = next(frame for frame in frames if frame["type"] == "start")
    assert start["parent_id"] == new_question["id"] and start["versions"] == [start["message_id"]]
    assert sent(upstream) == ["Q1", "A1", "Q2 edited"]
    assert await saved_tree(conversation) == [
        ("Q1", None), ("A1", "Q1"), ("Q2", "A1"), ("A2", "Q2"), ("Q2 edited", "A1"), ("A2 again", "Q2 edited")
    ]
    assert await current_leaf(conversation) == start["message_id"]
    await socket.disconnect()


async def test_a_send_naming_no_parent_answers_the_current_branch_and_null_starts_again(
    user, conversation, model_config, upstream
):
    q1, _a1, _q2, _a2 = await linear(conversation, "Q1", "A1", "Q2", "A2")
    a1b = await sync_to_async(make_message)(conversation=conversation, role="assistant", content="A1b", parent=q1)
    await sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(current_leaf=a1b)
    upstream.push(reply("after A1b"), reply("from scratch"))
    socket = await open_socket(user, conversation)
    await send(socket, "Q3")  # no parent_id: the current branch ends at A1b (the leaf saved)
    await receive_until(socket, done)
    assert sent(upstream) == ["Q1", "A1b", "Q3"]
    await send(socket, "A new first question", parent_id=None)
    frames = await receive_until(socket, done)
    assert frames[0]["message"]["parent_id"] is None
    assert frames[0]["message"]["versions"] == [q1.id, frames[0]["message"]["id"]]
    assert sent(upstream) == ["A new first question"]
    await socket.disconnect()


async def test_regenerating_an_earlier_reply_sends_the_history_up_to_its_question(user, conversation, model_config, upstream):
    q1, a1, _q2, _a2 = await linear(conversation, "Q1", "A1", "Q2", "A2")
    upstream.push(reply("A1, second take"))
    socket = await open_socket(user, conversation)
    await socket.send_json_to({"type": "regenerate", "message_id": a1.id})
    frames = await receive_until(socket, done)
    assert frames[0]["type"] == "start" and frames[0]["parent_id"] == q1.id
    assert frames[0]["versions"] == [a1.id, frames[0]["message_id"]]
    assert sent(upstream) == ["Q1"]
    assert [content for content, _ in await saved_tree(conversation)] == ["Q1", "A1", "Q2", "A2", "A1, second take"]
    await socket.disconnect()


@pytest.mark.parametrize(
    "frame, code",
    [
        ({"type": "send", "content": "x", "parent_id": "3"}, "invalid_frame"),
        ({"type": "send", "content": "x", "parent_id": -1}, "invalid_frame"),
        ({"type": "send", "content": "x", "parent_id": True}, "invalid_frame"),
        ({"type": "send", "content": "x", "parent_id": 2**70}, "invalid_frame"),
        ({"type": "regenerate", "message_id": "x"}, "invalid_frame"),
        ({"type": "select"}, "invalid_frame"),
        ({"type": "select", "message_id": 0}, "invalid_frame"),
    ],
)
async def test_malformed_ids_get_a_clear_error_and_change_nothing(user, conversation, upstream, frame, code):
    await linear(conversation, "Q1", "A1")
    socket = await open_socket(user, conversation)
    await socket.send_json_to(frame)
    error = (await receive_until(socket, is_error))[-1]
    assert error["code"] == code and error["message"]
    assert [content for content, _ in await saved_tree(conversation)] == ["Q1", "A1"]
    assert upstream.requests == []
    await send(socket, "Still here?")  # the socket still serves
    assert (await receive_until(socket, done))[-1]["status"] in ("complete", "error")
    await socket.disconnect()


async def test_ids_from_another_conversation_or_the_wrong_role_are_refused(
    user, conversation, make_conversation, model_config, upstream
):
    q1, _a1 = await linear(conversation, "Q1", "A1")
    other = await sync_to_async(make_conversation)(title="Elsewhere")
    (elsewhere,) = await linear(other, "Secret question")
    socket = await open_socket(user, conversation)
    for frame in (
        {"type": "send", "content": "x", "parent_id": elsewhere.id},
        {"type": "regenerate", "message_id": elsewhere.id},
        {"type": "regenerate", "message_id": q1.id},  # a question is edited, not regenerated
        {"type": "select", "message_id": elsewhere.id},
    ):
        await socket.send_json_to(frame)
        error = (await receive_until(socket, is_error))[-1]
        assert error["code"] == "message_not_found", frame
    assert [content for content, _ in await saved_tree(conversation)] == ["Q1", "A1"]
    assert upstream.requests == []
    await socket.disconnect()


async def test_select_shows_a_branch_saves_it_for_writers_and_a_viewer_only_looks(
    user, bob, conversation, model_config, upstream
):
    _q1, a1, q2, a2 = await linear(conversation, "Q1", "A1", "Q2", "A2")
    q2b, a2b = await linear(conversation, "Q2b", "A2b")
    await sync_to_async(Message.objects.filter(pk=q2b.pk).update)(parent=a1)  # Q2b: another version of Q2
    await sync_to_async(make_share)(conversation=conversation, user=bob)
    owner, viewer = await open_socket(user, conversation), await open_socket(bob, conversation)

    await owner.send_json_to({"type": "select", "message_id": q2.id})
    frames = await receive_until(owner, lambda frame: frame["type"] == "message" and frame["message"]["id"] == a2.id)
    frames = [frame for frame in frames if frame["type"] != "presence"]
    assert frames[0] == events.branch_frame(a1.id, a2.id)
    assert [frame["message"]["content"] for frame in frames[1:]] == ["Q2", "A2"]
    assert frames[1]["message"]["versions"] == [q2.id, q2b.id]
    assert await current_leaf(conversation) == a2.id

    await viewer.send_json_to({"type": "select", "message_id": q2b.id})
    frames = await receive_until(viewer, lambda frame: frame["type"] == "message" and frame["message"]["id"] == a2b.id)
    assert [frame["message"]["content"] for frame in frames if frame["type"] == "message"] == ["Q2b", "A2b"]
    assert await current_leaf(conversation) == a2.id  # a viewer's choice is not saved
    html = await sync_to_async(lambda: page(login(user).get(f"/c/{conversation.id}/")))()
    assert "<p>A2</p>" in html and "<p>A2b</p>" not in html  # the owner's reload: the branch the owner chose
    await owner.disconnect()
    await viewer.disconnect()


async def test_a_public_link_shows_the_current_branch_and_cannot_choose_another(user, conversation, model_config):
    q1, _a1 = await linear(conversation, "Q1", "A1")
    link = await sync_to_async(PublicLink.objects.create)(
        conversation=conversation, kind=PublicLink.Kind.LIVE, audience=PublicLink.Audience.ANYONE
    )
    guest = await open_link_socket(link.token)
    await guest.send_json_to({"type": "select", "message_id": q1.id})
    error = (await receive_until(guest, is_error))[-1]
    assert error["code"] == "forbidden"
    await guest.disconnect()


async def test_a_page_reconnecting_catches_up_on_every_branch(user, conversation, model_config, upstream):
    q1, a1 = await linear(conversation, "Q1", "A1")
    upstream.push(reply("A1 again"))
    writer = await open_socket(user, conversation)
    await writer.send_json_to({"type": "regenerate", "message_id": a1.id})
    regenerated = (await receive_until(writer, done))[-1]["message_id"]
    late = await open_socket(user, conversation, query=f"since={a1.id + 1}")
    frames = await receive_until(late, lambda frame: frame["type"] == "message" and frame["message"]["status"] == "complete")
    caught_up = frames[-1]["message"]
    assert caught_up["id"] == regenerated and caught_up["parent_id"] == q1.id
    assert caught_up["versions"] == [a1.id, regenerated] and caught_up["content"] == "A1 again"
    await writer.disconnect()
    await late.disconnect()


async def test_choosing_the_branch_of_a_streaming_reply_picks_up_its_stream(user, conversation, model_config, upstream):
    _q1, a1 = await linear(conversation, "Q1", "A1")
    words = [f"w{n} " for n in range(40)]
    upstream.push(reply(words, delay=0.02))
    writer = await open_socket(user, conversation)
    await writer.send_json_to({"type": "regenerate", "message_id": a1.id})
    start = (await receive_until(writer, lambda frame: frame["type"] == "start"))[-1]
    reader = await open_socket(user, conversation)
    await reader.send_json_to({"type": "select", "message_id": a1.id})  # the old version first
    await receive_until(reader, lambda frame: frame["type"] == "message" and frame["message"]["id"] == a1.id)
    await reader.send_json_to({"type": "select", "message_id": start["message_id"]})  # then the streaming one
    frames = await receive_until(reader, lambda frame: frame.get("message_id") == start["message_id"] and done(frame), timeout=10)
    # The page takes the message frame's text, then the deltas after it. A delta before it (the snapshot this
    # socket asked for when it first heard of the reply, late on a busy machine) is replaced by it.
    at = next(index for index, frame in enumerate(frames) if frame["type"] == "message")
    streaming = frames[at]["message"]
    text, length = streaming["content"], len(streaming["content"])
    for frame in frames[at + 1 :]:
        if frame["type"] == "delta" and frame["message_id"] == start["message_id"]:
            assert frame["offset"] == length, "contiguous, no gap and no repeat"
            text, length = text + frame["content"], length + len(frame["content"])
    assert text == "".join(words) == frames[-1]["content"]
    await writer.disconnect()
    await reader.disconnect()


# --- the page --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_shows_the_current_branch_with_its_versions(user, conversation):
    q1 = make_message(conversation=conversation, content="Q1")
    a1 = make_message(conversation=conversation, role="assistant", content="A1")
    make_message(conversation=conversation, content="Q2")
    make_message(conversation=conversation, role="assistant", content="A2")
    a1b = make_message(conversation=conversation, role="assistant", content="A1b", parent=q1)
    html = page(login(user).get(f"/c/{conversation.id}/"))
    assert "<p>A1b</p>" in html and "<p>A2</p>" not in html and "<p>A1</p>" not in html
    assert f'data-versions="{a1.id},{a1b.id}"' in html  # chat.js shows it as "‹ 2 / 2 ›"
    assert f'data-id="{q1.id}" data-status="complete" data-parent="" data-versions=""' in html
    assert f'data-id="{a1b.id}" data-status="complete" data-parent="{q1.id}"' in html
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=a1)
    html = page(login(user).get(f"/c/{conversation.id}/"))
    assert "<p>A2</p>" in html and "<p>A1b</p>" not in html


@pytest.mark.django_db
def test_a_snapshot_link_keeps_the_branch_current_when_taken_and_a_live_one_follows(user, conversation):
    q1 = make_message(conversation=conversation, content="Q1")
    a1 = make_message(conversation=conversation, role="assistant", content="A1")
    a1b = make_message(conversation=conversation, role="assistant", content="A1b", parent=q1)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=a1)
    client = login(user)
    for kind in ("snapshot", "live"):
        data = {"kind": kind, "audience": "anyone", "password": "", "expires_on": ""}
        response = client.post(f"/c/{conversation.id}/links/", data)
        assert response.status_code == 302
    snapshot, live = (PublicLink.objects.get(conversation=conversation, kind=kind) for kind in ("snapshot", "live"))
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=a1b)
    snapshot_html, live_html = (page(client.get(f"/s/{link.token}/")) for link in (snapshot, live))
    assert "<p>A1</p>" in snapshot_html and "<p>A1b</p>" not in snapshot_html
    assert "<p>A1b</p>" in live_html and "<p>A1</p>" not in live_html
    assert "version-previous" not in live_html  # a link shows one branch, without the arrows


# --- the migration ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_conversations_saved_before_versions_become_one_branch_each(user):
    executor = MigrationExecutor(connection)
    before, after = [("conversations", "0007_team_invitations")], [("conversations", "0008_message_tree_and_imports")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    OldConversation, OldMessage = old.get_model("conversations", "Conversation"), old.get_model("conversations", "Message")
    first = OldConversation.objects.create(owner_id=user.pk, title="Old")
    second = OldConversation.objects.create(owner_id=user.pk, title="Older")
    for conversation, texts in ((first, ["Q1", "A1", "Q2", "A2"]), (second, ["Only question"])):
        for index, text in enumerate(texts):
            OldMessage.objects.create(conversation=conversation, role="user" if index % 2 == 0 else "assistant", content=text)
    empty = OldConversation.objects.create(owner_id=user.pk, title="Empty")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    chain = list(Message.objects.filter(conversation_id=first.pk).order_by("id").values_list("content", "parent__content"))
    assert chain == [("Q1", None), ("A1", "Q1"), ("Q2", "A1"), ("A2", "Q2")]
    assert Conversation.objects.get(pk=first.pk).current_leaf.content == "A2"
    assert Conversation.objects.get(pk=second.pk).current_leaf.content == "Only question"
    assert Conversation.objects.get(pk=empty.pk).current_leaf is None

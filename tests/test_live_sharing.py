"""Live sharing over websockets: viewers, collaborators, teams and public links watch replies as they stream,
and every access change reaches the open sockets at once (signals, after commit), whichever path made it."""

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.test import Client

from conversations import realtime, services
from conversations.models import Message, PublicLink, Share, SiteSettings, Team
from tests.factories import make_team
from tests.fake_openai import reply
from tests.helpers import (
    closed_with,
    done,
    link_socket,
    login,
    open_link_socket,
    open_socket,
    page,
    receive_until,
    send,
    session_cookie,
    shared_sidebar,
    text_of,
)

pytestmark = pytest.mark.django_db(transaction=True)

# How soon an access change must close the socket it ends. A real assertion, not a receive timeout.
REVOKED_WITHIN = 1.0
# Receive timeouts: generous, so a slow machine never fails a test that is right.
WAIT = 10.0
# How long a socket must stay quiet to count as "sent nothing" (presence frames wait 0.2 s to settle).
QUIET = 0.8

CLOSE_REVOKED = 4403
CLOSE_NOT_FOUND = 4404


# --- people and places ----------------------------------------------------------------


@pytest.fixture
def crew(user, bob, carol) -> Team:
    """alice (the conversation's owner) owns the team; bob and carol are members, so alice may share with them."""
    return make_team(name="Crew", owner=user, members=[bob, carol])


async def share_with(conversation, *, by, user=None, team=None, role=Share.Role.VIEWER) -> Share:
    """Share through the service, as the Share dialog does (inside the test's loop, so its signal fires here)."""
    return await sync_to_async(services.sharing.conversation_share)(
        conversation=conversation,
        by=by,
        role=role,
        user_id=user.pk if user is not None else None,
        team_id=team.pk if team is not None else None,
    )


async def live_link(conversation, **extra) -> PublicLink:
    fields = {"kind": PublicLink.Kind.LIVE, "audience": PublicLink.Audience.ANYONE, **extra}
    return await sync_to_async(services.sharing.public_link_create)(conversation=conversation, **fields)


# --- sockets ----------------------------------------------------------------------------------


async def until_closed(communicator, timeout: float = WAIT) -> tuple[list[dict], int]:
    """Frames received until the server closes the socket, and the close code."""
    frames = []
    while True:
        output = await communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            return frames, output.get("code")
        assert output["type"] == "websocket.send", output
        frames.append(json.loads(output["text"]))


async def assert_quiet(*communicators) -> None:
    """None of these sockets sends anything for QUIET seconds (all watched at once)."""
    quiet = await asyncio.gather(*(communicator.receive_nothing(timeout=QUIET) for communicator in communicators))
    assert all(quiet), quiet


def presence(people, guests=0) -> dict:
    return {"type": "presence", "people": people, "guests": guests}


async def until_presence(communicator, people, guests=0) -> list[dict]:
    return await receive_until(communicator, lambda f: f == presence(people, guests), timeout=WAIT)


def without_presence(frames: list[dict]) -> list[dict]:
    return [frame for frame in frames if frame["type"] != "presence"]


async def until_done(communicator) -> list[dict]:
    return without_presence(await receive_until(communicator, done, timeout=WAIT))


async def assert_sends_a_reply(communicator, content="Still there?") -> list[dict]:
    """The socket is open and works: its own send streams a whole reply back."""
    await send(communicator, content)
    frames = await until_done(communicator)
    assert frames[0]["type"] == "message" and frames[0]["message"]["content"] == content
    assert frames[-1]["status"] == "complete"
    return frames


async def assert_closed_for_revocation(communicator, started: float) -> None:
    """The socket is told why, then closed with 4403, within REVOKED_WITHIN of `started`."""
    frames, code = await until_closed(communicator)
    elapsed = time.monotonic() - started
    assert code == CLOSE_REVOKED
    last = frames[-1]
    assert last["type"] == "error" and last["code"] == "access_revoked" and last["message"], frames
    assert elapsed < REVOKED_WITHIN, f"closed after {elapsed:.3f} s"


# --- watching live ----------------------------------------------------------------------


async def test_viewer_watches_the_owners_reply_live_with_the_same_frames(
    user, bob, crew, conversation, model_config, upstream
):
    upstream.push(reply([f"p{i} " for i in range(12)], delay=0.01))
    await share_with(conversation, by=user, user=bob)
    owner = await open_socket(user, conversation)
    viewer = await open_socket(bob, conversation)

    await send(owner, "Watch this")
    owner_frames = await until_done(owner)
    viewer_frames = await until_done(viewer)

    user_message = viewer_frames[0]
    assert user_message["type"] == "message"
    assert user_message["message"]["content"] == "Watch this" and user_message["message"]["author"] == "alice"
    assert viewer_frames[1]["type"] == "start"
    reply_id = viewer_frames[1]["message_id"]
    assert viewer_frames[-1]["message_id"] == reply_id
    expected = "".join(f"p{i} " for i in range(12))
    assert text_of(viewer_frames, reply_id) == text_of(owner_frames, reply_id) == expected
    assert viewer_frames[-1]["content"] == expected
    # The same frames, in the same order: same message ids, same offsets, nothing missed or repeated.
    assert viewer_frames == owner_frames


async def test_viewer_joining_mid_reply_gets_text_so_far_then_the_rest_live(
    user, bob, crew, conversation, model_config, upstream
):
    pieces = [f"w{i} " for i in range(40)]
    upstream.push(reply(pieces, delay=0.01))
    await share_with(conversation, by=user, user=bob)
    owner = await open_socket(user, conversation)
    await send(owner)
    frames = await receive_until(owner, lambda f: f["type"] == "delta" and f["offset"] > 20, timeout=WAIT)
    reply_id = frames[-1]["message_id"]

    late = await open_socket(bob, conversation)
    late_frames = await until_done(late)
    assert late_frames[0] == {"type": "start", "message_id": reply_id}
    assert late_frames[1]["type"] == "delta" and late_frames[1]["offset"] == 0 and len(late_frames[1]["content"]) > 20
    assert text_of(late_frames, reply_id) == "".join(pieces)
    assert late_frames[-1]["message_id"] == reply_id and late_frames[-1]["content"] == "".join(pieces)
    await until_done(owner)


async def test_team_viewer_watches_live(user, carol, crew, conversation, model_config, upstream):
    upstream.push(reply(["team ", "sees ", "this"], delay=0.01))
    await share_with(conversation, by=user, team=crew)
    owner = await open_socket(user, conversation)
    member = await open_socket(carol, conversation)  # carol has no share of her own: only the team's

    await send(owner, "For the team")
    owner_frames = await until_done(owner)
    member_frames = await until_done(member)
    reply_id = member_frames[1]["message_id"]
    assert member_frames[0]["message"]["content"] == "For the team"
    assert text_of(member_frames, reply_id) == "team sees this"
    assert member_frames == owner_frames


async def test_collaborators_send_streams_to_the_owner_with_their_name(
    user, bob, crew, conversation, model_config, upstream
):
    upstream.push(reply(["from ", "bob's ", "question"], delay=0.01))
    await share_with(conversation, by=user, user=bob, role=Share.Role.COLLABORATOR)
    owner = await open_socket(user, conversation)
    collaborator = await open_socket(bob, conversation)

    await send(collaborator, "Bob asks")
    collaborator_frames = await until_done(collaborator)
    owner_frames = await until_done(owner)
    assert owner_frames[0]["type"] == "message"
    assert owner_frames[0]["message"]["author"] == "bob" and owner_frames[0]["message"]["content"] == "Bob asks"
    reply_id = owner_frames[1]["message_id"]
    assert text_of(owner_frames, reply_id) == "from bob's question"
    assert owner_frames == collaborator_frames
    saved = await sync_to_async(Message.objects.select_related("author").get)(pk=owner_frames[0]["message"]["id"])
    assert saved.author.username == "bob"


# --- access removed: the socket closes at once --------------------------------------------


async def test_revoking_a_share_closes_the_viewers_socket_within_a_second(
    user, bob, crew, conversation, model_config, upstream
):
    share = await share_with(conversation, by=user, user=bob)
    owner = await open_socket(user, conversation)
    viewer = await open_socket(bob, conversation)
    await until_presence(owner, ["bob"])

    started = time.monotonic()
    await sync_to_async(services.sharing.share_revoke)(share=share)
    await assert_closed_for_revocation(viewer, started)

    await until_presence(owner, [])  # bob left
    await assert_sends_a_reply(owner)
    assert await sync_to_async(Share.objects.filter(pk=share.pk).exists)() is False


async def test_revoking_a_share_from_the_share_dialog_closes_the_viewers_socket_within_a_second(
    user, bob, crew, conversation, model_config, upstream
):
    share = await share_with(conversation, by=user, user=bob)
    owner = await open_socket(user, conversation)
    viewer = await open_socket(bob, conversation)
    await until_presence(owner, ["bob"])

    client = await sync_to_async(login)(user)
    started = time.monotonic()
    response = await sync_to_async(client.post)(f"/c/{conversation.id}/shares/{share.id}/revoke/")
    assert response.status_code == 302
    await assert_closed_for_revocation(viewer, started)

    await assert_sends_a_reply(owner)


async def test_presence_tells_streaming_how_many_sockets_watch(user, bob, crew, conversation):
    await share_with(conversation, by=user, team=crew)
    sockets = [await open_socket(user, conversation), await open_socket(bob, conversation), await open_socket(bob, conversation)]
    # A socket joins presence just after its handshake, so the count is awaited, not read at once.
    await until_watchers(conversation, 3)  # a reply's frames are paced by it (streaming.flush_interval)
    await sockets.pop().disconnect()
    await until_watchers(conversation, 2)
    for socket in sockets:
        await socket.disconnect()
    await until_watchers(conversation, 0)


async def until_watchers(conversation, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while realtime.watchers(conversation.id) != count:
        assert time.monotonic() < deadline, f"{realtime.watchers(conversation.id)} sockets counted, not {count}"
        await asyncio.sleep(0.01)


async def test_removing_someone_from_a_team_closes_their_socket_but_not_their_teammates(
    user, bob, carol, crew, conversation, model_config, upstream
):
    await share_with(conversation, by=user, team=crew)
    owner = await open_socket(user, conversation)
    removed = await open_socket(bob, conversation)
    staying = await open_socket(carol, conversation)
    await until_presence(staying, ["alice", "bob"])

    started = time.monotonic()
    await sync_to_async(services.teams.team_remove_member)(team=crew, by=user, user_id=bob.pk)
    await assert_closed_for_revocation(removed, started)

    await until_presence(staying, ["alice"])  # bob left; carol is still here
    owner_frames = await assert_sends_a_reply(owner, "Carol, still watching?")
    staying_frames = await until_done(staying)
    assert staying_frames == owner_frames


async def test_leaving_a_team_from_its_page_closes_my_sockets_on_its_shares_and_empties_shared_with_me(
    user, bob, crew, conversation, make_conversation
):
    other = await sync_to_async(make_conversation)(title="Second")
    await share_with(conversation, by=user, team=crew)
    await share_with(other, by=user, team=crew)
    owner = await open_socket(user, conversation)
    sockets = [await open_socket(bob, conversation), await open_socket(bob, other)]
    await until_presence(owner, ["bob"])
    client = await sync_to_async(login)(bob)
    listed = shared_sidebar(page(await sync_to_async(client.get)("/")))
    assert sorted(listed) == [("Second", "alice"), ("Test chat", "alice")]

    started = time.monotonic()
    response = await sync_to_async(client.post)(f"/teams/{crew.id}/members/{bob.pk}/remove/")  # the Leave button
    assert response.status_code == 302
    for socket in sockets:
        await assert_closed_for_revocation(socket, started)
    assert shared_sidebar(page(await sync_to_async(client.get)("/"))) == []
    await until_presence(owner, [])


async def test_leaving_a_team_keeps_the_socket_of_someone_with_a_share_of_their_own_and_lowers_their_role(
    user, bob, crew, conversation, model_config, upstream
):
    await share_with(conversation, by=user, team=crew, role=Share.Role.COLLABORATOR)
    await share_with(conversation, by=user, user=bob, role=Share.Role.VIEWER)
    socket = await open_socket(bob, conversation)

    await sync_to_async(services.teams.team_remove_member)(team=crew, by=bob, user_id=bob.pk)  # bob leaves
    frames = await receive_until(socket, lambda f: f["type"] == "access", timeout=WAIT)
    assert frames[-1] == {"type": "access", "role": "viewer"}
    await send(socket, "May I?")
    frames = await receive_until(socket, lambda f: f["type"] == "error", timeout=WAIT)
    assert frames[-1]["code"] == "forbidden"


def _delete_share_instance(share, **_):
    with transaction.atomic():
        Share.objects.get(pk=share.pk).delete()


def _delete_share_queryset(share, **_):
    with transaction.atomic():
        Share.objects.filter(conversation_id=share.conversation_id, user_id=share.user_id).delete()


def _delete_share_in_admin(share, admin, **_):
    response = admin.post(f"/admin/conversations/share/{share.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.status_code
    assert not Share.objects.filter(pk=share.pk).exists()


def _delete_viewers_account(share, **_):
    # The cascade deletes the share too; the socket's session no longer finds its user.
    share.user.delete()


@pytest.mark.parametrize(
    "delete",
    [_delete_share_instance, _delete_share_queryset, _delete_share_in_admin, _delete_viewers_account],
    ids=["instance-delete", "queryset-delete", "admin-delete", "user-deleted"],
)
async def test_a_share_deleted_by_any_path_closes_the_viewers_socket(
    user, bob, crew, conversation, make_user, model_config, upstream, delete
):
    share = await share_with(conversation, by=user, user=bob)
    superuser = await sync_to_async(make_user)("root", is_staff=True, is_superuser=True)
    admin = await sync_to_async(login)(superuser)
    owner = await open_socket(user, conversation)
    viewer = await open_socket(bob, conversation)
    await until_presence(owner, ["bob"])

    started = time.monotonic()
    await sync_to_async(delete)(share, admin=admin)
    await assert_closed_for_revocation(viewer, started)

    await assert_sends_a_reply(owner)


async def test_deleting_the_team_closes_its_members_sockets(user, bob, crew, conversation):
    await share_with(conversation, by=user, team=crew)
    owner = await open_socket(user, conversation)
    member = await open_socket(bob, conversation)
    await until_presence(owner, ["bob"])

    started = time.monotonic()
    await sync_to_async(Team.objects.filter(pk=crew.pk).delete)()
    await assert_closed_for_revocation(member, started)
    await until_presence(owner, [])


# --- role changes -------------------------------------------------------------------------


async def test_role_change_is_announced_and_applies_to_the_open_socket(
    user, bob, crew, conversation, model_config, upstream
):
    upstream.push(reply(["now ", "you ", "may"]))
    share = await share_with(conversation, by=user, user=bob, role=Share.Role.VIEWER)
    socket = await open_socket(bob, conversation)

    await send(socket, "Before")
    frames = await receive_until(socket, lambda f: f["type"] == "error", timeout=WAIT)
    assert frames[-1]["code"] == "forbidden"

    await sync_to_async(services.sharing.share_change_role)(share=share, role=Share.Role.COLLABORATOR)
    frames = await receive_until(socket, lambda f: f["type"] == "access", timeout=WAIT)
    assert frames[-1] == {"type": "access", "role": "collaborator"}
    frames = await assert_sends_a_reply(socket, "After")
    assert frames[0]["message"]["author"] == "bob"
    assert text_of(frames, frames[1]["message_id"]) == "now you may"

    await sync_to_async(services.sharing.share_change_role)(share=share, role=Share.Role.VIEWER)
    frames = await receive_until(socket, lambda f: f["type"] == "access", timeout=WAIT)
    assert frames[-1] == {"type": "access", "role": "viewer"}
    await send(socket, "Again")
    frames = await receive_until(socket, lambda f: f["type"] == "error", timeout=WAIT)
    assert frames[-1]["code"] == "forbidden"
    contents = await sync_to_async(list)(Message.objects.filter(role="user").values_list("content", flat=True))
    assert contents == ["After"]


async def test_an_access_change_that_leaves_the_role_alone_sends_nothing(user, bob, carol, crew, conversation):
    await share_with(conversation, by=user, user=bob)
    owner = await open_socket(user, conversation)
    viewer = await open_socket(bob, conversation)
    await until_presence(owner, ["bob"])
    await until_presence(viewer, ["alice"])

    await share_with(conversation, by=user, user=carol)  # someone else's share: every socket re-checks
    await assert_quiet(owner, viewer)


async def test_a_teams_role_in_another_conversation_does_not_leak_into_this_one(user, bob, carol, crew, conversation):
    other = await sync_to_async(type(conversation).objects.create)(owner=user, title="Other chat")
    await share_with(other, by=user, team=crew, role=Share.Role.COLLABORATOR)
    await share_with(conversation, by=user, team=crew, role=Share.Role.VIEWER)
    member = await open_socket(carol, conversation)

    await share_with(conversation, by=user, user=bob)  # every socket here re-checks its role
    await assert_quiet(member)  # still a viewer: no access frame
    await send(member, "Can I?")
    frames = await receive_until(member, lambda f: f["type"] == "error", timeout=WAIT)
    assert frames[-1]["code"] == "forbidden"


# --- presence -------------------------------------------------------------------------------


async def test_presence_shows_who_else_is_here(user, bob, crew, conversation):
    await share_with(conversation, by=user, user=bob)
    owner = await open_socket(user, conversation)
    viewer = await open_socket(bob, conversation)
    assert (await owner.receive_json_from(timeout=WAIT)) == presence(["bob"])
    assert (await viewer.receive_json_from(timeout=WAIT)) == presence(["alice"])

    # bob's second tab: his first tab shows nothing new, nor does alice's; the new tab sees alice.
    second_tab = await open_socket(bob, conversation)
    assert (await second_tab.receive_json_from(timeout=WAIT)) == presence(["alice"])
    await assert_quiet(owner, viewer, second_tab)

    # alice's second tab: nothing for her first tab, nothing new for bob's.
    owner_tab = await open_socket(user, conversation)
    assert (await owner_tab.receive_json_from(timeout=WAIT)) == presence(["bob"])
    await assert_quiet(owner, viewer, second_tab)
    await owner_tab.disconnect()

    # One of bob's tabs closes: he is still here.
    await second_tab.disconnect()
    await assert_quiet(owner, viewer)

    await viewer.disconnect()
    assert (await owner.receive_json_from(timeout=WAIT)) == presence([])
    await assert_quiet(owner)


# --- public live links ----------------------------------------------------------------------


async def test_live_link_socket_watches_replies_but_cannot_send_and_counts_as_a_guest(
    user, conversation, model_config, upstream
):
    upstream.push(reply(["for ", "everyone"], delay=0.01))
    link = await live_link(conversation)
    owner = await open_socket(user, conversation)
    guest = await open_link_socket(link.token)
    assert (await owner.receive_json_from(timeout=WAIT)) == presence([], guests=1)
    # A link's visitor sees how many others are here, never who.
    assert (await guest.receive_json_from(timeout=WAIT)) == {"type": "presence", "people": [], "guests": 0, "others": 1}

    await send(owner, "Public question")
    owner_frames = await until_done(owner)
    guest_frames = await until_done(guest)
    reply_id = guest_frames[1]["message_id"]
    assert guest_frames[0]["message"]["content"] == "Public question"
    assert text_of(guest_frames, reply_id) == "for everyone"
    assert guest_frames == owner_frames

    await send(guest, "Let me in")
    frames = await receive_until(guest, lambda f: f["type"] == "error", timeout=WAIT)
    assert frames[-1]["code"] == "forbidden"
    for action in ({"type": "stop"}, {"type": "regenerate"}):
        await guest.send_json_to(action)
        assert (await guest.receive_json_from(timeout=WAIT))["code"] == "forbidden"
    assert await sync_to_async(Message.objects.filter(content="Let me in").exists)() is False

    await guest.disconnect()
    assert (await owner.receive_json_from(timeout=WAIT)) == presence([], guests=0)


async def test_deleting_a_live_link_closes_its_sockets_within_a_second(user, conversation, model_config, upstream):
    link = await live_link(conversation)
    other_link = await live_link(conversation)
    owner = await open_socket(user, conversation)
    guest = await open_link_socket(link.token)
    other_guest = await open_link_socket(other_link.token)
    await until_presence(owner, [], guests=2)

    started = time.monotonic()
    await sync_to_async(services.sharing.public_link_delete)(link=link)
    await assert_closed_for_revocation(guest, started)

    await until_presence(owner, [], guests=1)
    # The other link still works: its socket watches the owner's next reply.
    owner_frames = await assert_sends_a_reply(owner)
    assert await until_done(other_guest) == owner_frames
    assert await closed_with(link_socket(link.token)) == CLOSE_NOT_FOUND


async def test_snapshot_link_socket_is_refused(conversation):
    link = await sync_to_async(services.sharing.public_link_create)(
        conversation=conversation, kind=PublicLink.Kind.SNAPSHOT, audience=PublicLink.Audience.ANYONE
    )
    assert await closed_with(link_socket(link.token)) == CLOSE_NOT_FOUND


async def test_unknown_link_socket_is_refused(conversation):
    assert await closed_with(link_socket("no-such-token")) == CLOSE_NOT_FOUND


async def test_password_link_socket_needs_the_unlock_from_the_links_page(conversation):
    link = await live_link(conversation, password="open sesame")
    assert await closed_with(link_socket(link.token)) == CLOSE_NOT_FOUND

    visitor = Client()
    wrong = await sync_to_async(visitor.post)(f"/s/{link.token}/", {"password": "guess"})
    assert wrong.status_code == 403

    right = await sync_to_async(visitor.post)(f"/s/{link.token}/", {"password": "open sesame"})
    assert right.status_code == 302
    await open_link_socket(link.token, cookie=visitor.cookies["sessionid"].value)


async def test_users_only_link_socket_refuses_anonymous_visitors(conversation, make_user):
    link = await live_link(conversation, audience=PublicLink.Audience.USERS)
    assert await closed_with(link_socket(link.token)) == CLOSE_NOT_FOUND

    dave = await sync_to_async(make_user)("dave")  # any account will do; nothing was shared with dave
    cookie = await sync_to_async(session_cookie)(dave)
    socket = await open_link_socket(link.token, cookie=cookie)
    await send(socket, "Hi")
    assert (await socket.receive_json_from(timeout=WAIT))["code"] == "forbidden"


async def test_turning_public_links_off_closes_open_live_link_sockets(user, conversation):
    link = await live_link(conversation)
    owner = await open_socket(user, conversation)
    guest = await open_link_socket(link.token)
    await until_presence(owner, [], guests=1)

    started = time.monotonic()
    await sync_to_async(SiteSettings(public_links_enabled=False).save)()
    await assert_closed_for_revocation(guest, started)

    await until_presence(owner, [], guests=0)
    assert await closed_with(link_socket(link.token)) == CLOSE_NOT_FOUND


async def test_a_logged_in_visitor_on_a_live_link_shows_by_name(user, conversation, make_user):
    link = await live_link(conversation)
    owner = await open_socket(user, conversation)
    dave = await sync_to_async(make_user)("dave")
    cookie = await sync_to_async(session_cookie)(dave)
    await open_link_socket(link.token, cookie=cookie)
    assert (await owner.receive_json_from(timeout=WAIT)) == presence(["dave"])


# --- bad frames -----------------------------------------------------------------------------


async def test_malformed_frame_from_a_viewer_gets_invalid_json_and_the_socket_keeps_working(
    user, bob, crew, conversation, model_config, upstream
):
    upstream.push(reply(["still ", "watching"]))
    await share_with(conversation, by=user, user=bob)
    owner = await open_socket(user, conversation)
    viewer = await open_socket(bob, conversation)

    await viewer.send_to(text_data="not json")
    frames = await receive_until(viewer, lambda f: f["type"] == "error", timeout=WAIT)
    assert frames[-1] == {"type": "error", "code": "invalid_json", "message": "The frame is not valid JSON."}

    await send(viewer, "A real frame")
    frames = await receive_until(viewer, lambda f: f["type"] == "error", timeout=WAIT)
    assert frames[-1]["code"] == "forbidden"

    await send(owner, "Go on")
    owner_frames = await until_done(owner)
    viewer_frames = await until_done(viewer)
    assert viewer_frames == owner_frames
    assert text_of(viewer_frames, viewer_frames[1]["message_id"]) == "still watching"


async def test_a_live_link_socket_closes_itself_when_the_link_expires(conversation):
    from datetime import timedelta

    from django.utils import timezone

    link = await live_link(conversation, expires_at=timezone.now() + timedelta(seconds=1))
    guest = await open_link_socket(link.token)
    frames, code = await until_closed(guest, timeout=5)
    assert code == CLOSE_REVOKED  # nothing announced the expiry: the socket kept the time itself
    assert frames[-1]["code"] == "access_revoked"
    assert await closed_with(link_socket(link.token)) == CLOSE_NOT_FOUND


async def test_deactivating_an_account_closes_its_open_sockets(user, conversation, bob):
    await sync_to_async(Share.objects.create)(conversation=conversation, user=bob, role=Share.Role.VIEWER)
    owner = await open_socket(user, conversation)
    viewer = await open_socket(bob, conversation)

    def deactivate():
        bob.is_active = False
        bob.save(update_fields=["is_active"])

    started = time.monotonic()
    await sync_to_async(deactivate)()
    await assert_closed_for_revocation(viewer, started)
    await owner.send_to(text_data="not json")  # the owner's socket is still open
    frames = await receive_until(owner, lambda f: f["type"] == "error", timeout=WAIT)
    assert frames[-1]["code"] == "invalid_json"

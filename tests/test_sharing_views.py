"""Sharing through the pages: the Share dialog, "Shared with me", authors, exports, public links, teams, the admin."""

import html as htmllib
import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from conversations import services
from conversations.models import Conversation, Message, PublicLink, Share, SiteSettings, Team, TeamMembership
from tests.factories import make_history, make_message, make_share, make_team
from tests.helpers import flashes, listed, login, message_list_html, page, picker, shared_sidebar, sidebar_titles

pytestmark = pytest.mark.django_db

OWNER, MEMBER = TeamMembership.Role.OWNER, TeamMembership.Role.MEMBER
VIEWER, COLLABORATOR = Share.Role.VIEWER, Share.Role.COLLABORATOR


# --- people, teams and conversations ----------------------------------------------------------


@pytest.fixture
def otters(alice, bob) -> Team:
    """alice (owner) and bob (member)."""
    return make_team(name="Otters", owner=alice, members=[bob])


@pytest.fixture
def badgers(carol) -> Team:
    """carol's team; alice is not in it."""
    return make_team(name="Badgers", owner=carol)


@pytest.fixture
def chat(make_conversation) -> Conversation:
    """alice's conversation with one question and one answer."""
    conversation = make_conversation(title="Otter facts")
    make_message(conversation=conversation, content="Do otters hold hands?")
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Yes, **while sleeping**.",
        model_name="gpt-otter-1",
    )
    return conversation


def share_options(html: str) -> list[tuple[str, str]]:
    """(value, label) of each choice in the Share dialog's "Share with"."""
    return [(option["value"], option["label"]) for option in picker(html, "target")]


def authors(html: str) -> list[str]:
    return re.findall(r'<p class="message-author">([^<]*)</p>', html)


# --- the Share dialog ----------------------------------------------------------------------------


def test_share_dialog_offers_teammates_and_own_teams_and_nobody_else(
    chat, alice, bob, carol, otters, badgers, make_user
):
    dora = make_user("dora")
    TeamMembership.objects.create(team=otters, user=dora)
    make_user("mallory")  # in no team at all
    html = page(login(alice).get(f"/c/{chat.id}/"))
    assert share_options(html) == [
        (f"user:{bob.pk}", "bob"),
        (f"user:{dora.pk}", "dora"),
        (f"team:{otters.pk}", "Otters (everyone in it)"),
    ]
    assert "carol" not in html
    assert "mallory" not in html
    assert "Badgers" not in html
    assert "create one" not in html


def test_share_dialog_without_teams_shows_the_create_one_hint(chat, alice):
    html = page(login(alice).get(f"/c/{chat.id}/"))
    assert '<select name="target"' not in html
    assert 'create one</a>' in html
    assert 'href="/teams/"' in html


def test_sharing_with_a_teammate_gives_them_the_page(chat, alice, bob, otters):
    response = login(alice).post(f"/c/{chat.id}/shares/", {"target": f"user:{bob.pk}", "role": VIEWER}, follow=True)
    (made,) = Share.objects.all()
    assert (made.conversation, made.user, made.team, made.role) == (chat, bob, None, VIEWER)
    assert response.redirect_chain[-1][0] == f"/c/{chat.id}/#share"
    assert ("success", "Shared with bob as viewer.") in flashes(response)
    assert login(bob).get(f"/c/{chat.id}/").status_code == 200


def test_sharing_with_a_stranger_by_forging_the_target_is_refused(chat, alice, carol, otters):
    response = login(alice).post(f"/c/{chat.id}/shares/", {"target": f"user:{carol.pk}", "role": VIEWER}, follow=True)
    assert not Share.objects.exists()
    ((level, text),) = flashes(response)
    assert level == "error"
    assert "not one of the available choices" in text
    assert login(carol).get(f"/c/{chat.id}/").status_code == 404


def test_sharing_with_a_team_the_owner_is_not_in_is_refused(chat, alice, carol, otters, badgers):
    response = login(alice).post(f"/c/{chat.id}/shares/", {"target": f"team:{badgers.pk}", "role": VIEWER}, follow=True)
    assert not Share.objects.exists()
    assert [level for level, _ in flashes(response)] == ["error"]
    assert login(carol).get(f"/c/{chat.id}/").status_code == 404


def test_sharing_twice_with_the_same_person_updates_the_role(chat, alice, bob, otters):
    client = login(alice)
    client.post(f"/c/{chat.id}/shares/", {"target": f"user:{bob.pk}", "role": VIEWER})
    response = client.post(f"/c/{chat.id}/shares/", {"target": f"user:{bob.pk}", "role": COLLABORATOR}, follow=True)
    (made,) = Share.objects.all()
    assert (made.user, made.role) == (bob, COLLABORATOR)
    assert ("success", "Shared with bob as collaborator.") in flashes(response)


def test_owner_changes_a_shares_role(chat, alice, bob, otters):
    made = make_share(conversation=chat, user=bob)
    response = login(alice).post(f"/c/{chat.id}/shares/{made.id}/", {"role": COLLABORATOR}, follow=True)
    made.refresh_from_db()
    assert made.role == COLLABORATOR
    assert ("success", "bob is now a collaborator.") in flashes(response)
    assert 'id="composer"' in page(login(bob).get(f"/c/{chat.id}/"))


def test_changing_a_role_to_nonsense_changes_nothing(chat, alice, bob, otters):
    made = make_share(conversation=chat, user=bob)
    login(alice).post(f"/c/{chat.id}/shares/{made.id}/", {"role": "owner"})
    made.refresh_from_db()
    assert made.role == VIEWER


def test_owner_revokes_a_share(chat, alice, bob, otters):
    made = make_share(conversation=chat, user=bob)
    assert login(bob).get(f"/c/{chat.id}/").status_code == 200
    response = login(alice).post(f"/c/{chat.id}/shares/{made.id}/revoke/", follow=True)
    assert not Share.objects.exists()
    assert ("success", "bob no longer has access.") in flashes(response)
    assert login(bob).get(f"/c/{chat.id}/").status_code == 404


@pytest.mark.parametrize("action", ["change", "revoke"])
def test_another_owners_share_under_your_conversation_is_404(chat, alice, carol, badgers, make_conversation, action):
    theirs = make_share(conversation=make_conversation(owner=carol, title="Carol's"), team=badgers)
    path = f"/c/{chat.id}/shares/{theirs.id}/" + ("revoke/" if action == "revoke" else "")
    assert login(alice).post(path, {"role": COLLABORATOR}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.role == VIEWER


def test_only_the_owner_may_share(chat, alice, bob, carol, otters):
    make_team(name="Bob and carol", owner=bob, members=[carol])
    make_share(conversation=chat, user=bob, role=COLLABORATOR)
    response = login(bob).post(f"/c/{chat.id}/shares/", {"target": f"user:{carol.pk}", "role": VIEWER})
    assert response.status_code == 403
    assert Share.objects.count() == 1
    assert 'id="share-dialog"' not in page(login(bob).get(f"/c/{chat.id}/"))


def test_share_dialog_lists_the_current_shares(chat, alice, bob, otters):
    make_share(conversation=chat, user=bob, role=COLLABORATOR)
    make_share(conversation=chat, team=otters)
    html = page(login(alice).get(f"/c/{chat.id}/"))
    listed = re.search(r'<ul class="share-list" id="share-list">(.*?)</ul>', html, re.S).group(1)
    assert re.findall(r'<span class="share-target">([^<]*)</span>', listed) == ["bob", "Team Otters"]


# --- "Shared with me" and "Your conversations" ---------------------------------------------------


def test_shared_with_me_lists_direct_and_team_shares_with_their_owner(
    alice, bob, carol, otters, make_conversation
):
    readers = make_team(name="Readers", owner=carol, members=[bob])
    make_share(conversation=make_conversation(owner=alice, title="Direct", ago=timedelta(hours=1)), user=bob)
    make_share(conversation=make_conversation(owner=alice, title="Via Otters", ago=timedelta(hours=2)), team=otters)
    make_share(conversation=make_conversation(owner=carol, title="Via Readers", ago=timedelta(hours=3)), team=readers)
    make_conversation(owner=alice, title="Alice private")
    own = make_conversation(owner=bob, title="Bob's own")
    make_share(conversation=own, team=otters)  # shared by bob himself: still his own, not "shared with me"
    html = page(login(bob).get("/"))
    assert shared_sidebar(html) == [("Direct", "alice"), ("Via Otters", "alice"), ("Via Readers", "carol")]
    assert sidebar_titles(html) == ["Bob's own"]


def test_your_conversations_does_not_list_shared_ones(alice, bob, otters, make_conversation):
    make_share(conversation=make_conversation(owner=bob, title="From bob"), user=alice)
    make_conversation(owner=alice, title="Mine")
    html = page(login(alice).get("/"))
    assert sidebar_titles(html) == ["Mine"]
    assert shared_sidebar(html) == [("From bob", "bob")]


def test_shared_with_me_is_absent_without_shares(alice, make_conversation):
    make_conversation(title="Mine")
    html = page(login(alice).get("/"))
    assert "Shared with me" not in html
    assert shared_sidebar(html) == []


def test_a_revoked_share_leaves_shared_with_me(alice, bob, otters, chat):
    made = make_share(conversation=chat, user=bob)
    assert shared_sidebar(page(login(bob).get("/"))) == [("Otter facts", "alice")]
    login(alice).post(f"/c/{chat.id}/shares/{made.id}/revoke/")
    html = page(login(bob).get("/"))
    assert shared_sidebar(html) == []
    assert "Otter facts" not in html


def test_shared_conversation_page_names_its_owner_and_role(chat, bob, otters):
    make_share(conversation=chat, team=otters)
    html = page(login(bob).get(f"/c/{chat.id}/"))
    assert "alice’s · viewer" in html
    assert 'id="read-only-note"' in html
    assert 'id="composer"' not in html
    assert shared_sidebar(html) == [("Otter facts", "alice")]


# --- authors -------------------------------------------------------------------------------------


@pytest.fixture
def two_voices(chat, alice, bob) -> Conversation:
    """alice's chat, with a message bob wrote as well."""
    make_message(conversation=chat, content="Do they also juggle?", author=bob)
    make_message(conversation=chat, role=Message.Role.ASSISTANT, content="Some do.")
    return chat


@pytest.mark.parametrize("reader", ["alice", "bob"])
def test_with_a_collaborator_user_messages_show_their_author(two_voices, alice, bob, otters, reader):
    make_share(conversation=two_voices, user=bob, role=COLLABORATOR)
    html = page(login(alice if reader == "alice" else bob).get(f"/c/{two_voices.id}/"))
    assert 'class="message-author"' in message_list_html(html)
    assert authors(html) == ["alice", "bob"]
    assert 'data-show-authors="true"' in html


@pytest.mark.parametrize("reader", ["alice", "bob"])
def test_with_viewers_only_messages_show_no_author(two_voices, alice, bob, otters, reader):
    make_share(conversation=two_voices, user=bob, role=VIEWER)
    make_share(conversation=two_voices, team=otters, role=VIEWER)
    html = page(login(alice if reader == "alice" else bob).get(f"/c/{two_voices.id}/"))
    assert 'class="message-author"' not in message_list_html(html)
    assert 'data-show-authors="false"' in html


def test_a_collaboration_through_a_team_shows_authors(two_voices, bob, otters):
    make_share(conversation=two_voices, team=otters, role=COLLABORATOR)
    assert authors(page(login(bob).get(f"/c/{two_voices.id}/"))) == ["alice", "bob"]


# --- query counts ------------------------------------------------------------------------------

# The page of a conversation shared with this person, whatever its size and however widely it is shared:
# session, user, their profile, the conversation (with this person's role), its tree and its branch, model choices,
# the sidebar (its pinned conversations and its first page), "Shared with me", invitations waiting, and whether anyone
# collaborates (to show authors); a collaborator also gets the presets for the Settings panel.
SHARED_PAGE_QUERIES = 12
COLLABORATOR_PAGE_QUERIES = 13
# The owner's page: the same as a collaborator's without the collaborator check (the share list answers it),
# plus the Share dialog: shares, teammates, teams, site settings, public links (as test_views.CONVERSATION_QUERIES).
OWNER_PAGE_QUERIES = 17


@pytest.fixture
def crowded(alice, bob, otters, make_user, model_config):
    """alice's conversation with `messages` messages, shared with bob and `shares - 1` others."""

    def make(messages: int, shares: int, bob_role: str) -> Conversation:
        conversation = Conversation.objects.create(owner=alice, title="Crowded", model_config=model_config)
        make_history(conversation=conversation, count=messages, authors=[alice, bob])
        make_share(conversation=conversation, user=bob, role=bob_role)
        for number in range(shares - 1):
            if number % 2:
                make_share(conversation=conversation, team=make_team(name=f"Team {number}", owner=alice))
            else:
                person = make_user(f"person{number}")
                TeamMembership.objects.create(team=otters, user=person)
                make_share(conversation=conversation, user=person, role=COLLABORATOR if number % 4 == 0 else VIEWER)
        return conversation

    return make


@pytest.mark.parametrize("messages, shares", [(2, 1), (200, 1), (2, 20), (200, 20)])
@pytest.mark.parametrize("reader", ["viewer", "collaborator", "owner"])
def test_conversation_page_query_count_does_not_grow_with_messages_or_shares(
    crowded, alice, bob, django_assert_num_queries, messages, shares, reader
):
    conversation = crowded(messages, shares, COLLABORATOR if reader == "collaborator" else VIEWER)
    client = login(alice if reader == "owner" else bob)
    expected = {"owner": OWNER_PAGE_QUERIES, "collaborator": COLLABORATOR_PAGE_QUERIES}.get(reader, SHARED_PAGE_QUERIES)
    with django_assert_num_queries(expected):
        response = client.get(f"/c/{conversation.id}/")
    html = page(response)
    assert html.count('class="message message--') == messages
    assert ('id="composer"' in html) == (reader != "viewer")


# session, user, profile, model choices, presets, the sidebar (pinned, first page), "Shared with me" (owners joined in),
# invitations waiting, as test_views.HOME_QUERIES.
HOME_QUERIES = 9


@pytest.mark.parametrize("count", [3, 30])
def test_home_query_count_does_not_grow_with_shared_conversations(
    alice, otters, make_user, make_conversation, model_config, django_assert_num_queries, count
):
    owners = [make_user(f"owner{number}") for number in range(3)]
    for owner in owners:
        TeamMembership.objects.create(team=otters, user=owner)
    for number in range(count):
        owner = owners[number % 3]
        conversation = make_conversation(owner=owner, title=f"Shared {number}", ago=timedelta(minutes=number))
        if number % 2:
            make_share(conversation=conversation, user=alice)
        else:
            make_share(conversation=conversation, team=otters)
    make_conversation(title="Mine")
    client = login(alice)
    with django_assert_num_queries(HOME_QUERIES):
        response = client.get("/")
    listed = shared_sidebar(page(response))
    assert len(listed) == count
    assert listed[0] == ("Shared 0", "owner0")
    assert sidebar_titles(page(response)) == ["Mine"]


# --- export --------------------------------------------------------------------------------------


@pytest.fixture
def exported(two_voices, bob, otters):
    """The two-voice chat, which bob may read."""
    make_share(conversation=two_voices, user=bob, role=COLLABORATOR)
    return two_voices


def test_export_as_markdown(exported, bob):
    response = login(bob).get(f"/c/{exported.id}/export/?format=md")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="otter-facts-{timezone.localdate():%Y-%m-%d}.md"'
    assert response["Cache-Control"] == "private, no-store"
    text = page(response)
    assert text.startswith("# Otter facts\n")
    headings = re.findall(r"^## (.*)$", text, re.M)
    assert headings == ["alice", "Assistant (gpt-otter-1)", "bob", "Assistant"]
    for content in ("Do otters hold hands?", "Yes, **while sleeping**.", "Do they also juggle?", "Some do."):
        assert f"\n{content}\n" in text


def test_export_is_markdown_by_default(exported, alice):
    response = login(alice).get(f"/c/{exported.id}/export/")
    assert response["Content-Disposition"].endswith('.md"')
    assert page(response).startswith("# Otter facts")


def test_export_as_json(exported, bob):
    response = login(bob).get(f"/c/{exported.id}/export/?format=json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="otter-facts-{timezone.localdate():%Y-%m-%d}.json"'
    assert response["Cache-Control"] == "private, no-store"
    data = json.loads(page(response))
    assert (data["id"], data["title"], data["owner"]) == (str(exported.id), "Otter facts", "alice")
    assert [(m["role"], m["author"], m["model"], m["content"]) for m in data["messages"]] == [
        ("user", "alice", "", "Do otters hold hands?"),
        ("assistant", None, "gpt-otter-1", "Yes, **while sleeping**."),
        ("user", "bob", "", "Do they also juggle?"),
        ("assistant", None, "", "Some do."),
    ]


def test_export_of_a_conversation_not_shared_with_you_is_404(chat, carol):
    assert login(carol).get(f"/c/{chat.id}/export/?format=json").status_code == 404


# --- public links ------------------------------------------------------------------------------


def create_link(client, conversation, **fields) -> PublicLink:
    before = set(conversation.public_links.values_list("pk", flat=True))
    data = {"kind": "snapshot", "audience": "anyone", "password": "", "expires_on": "", **fields}
    response = client.post(f"/c/{conversation.id}/links/", data)
    assert response.status_code == 302
    (link,) = conversation.public_links.exclude(pk__in=before)
    return link


def assert_private(response) -> None:
    assert "noindex" in response["X-Robots-Tag"]
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]
    assert '<meta name="robots" content="noindex' in page(response)


def test_snapshot_link_shows_the_conversation_as_it_was_until_refreshed(chat, alice):
    owner = login(alice)
    link = create_link(owner, chat)
    anonymous = Client()
    response = anonymous.get(f"/s/{link.token}/")
    assert response.status_code == 200
    html = page(response)
    assert "Do otters hold hands?" in html
    assert "<strong>while sleeping</strong>" in html
    assert "<title>Otter facts" in html

    make_message(conversation=chat, content="And later, a new question")
    owner.post(f"/c/{chat.id}/rename/", {"title": "Renamed"})
    html = page(anonymous.get(f"/s/{link.token}/"))
    assert "And later, a new question" not in html
    assert "<title>Otter facts" in html

    response = owner.post(f"/c/{chat.id}/links/{link.id}/refresh/", follow=True)
    assert ("success", "The link now shows the conversation as it is.") in flashes(response)
    html = page(anonymous.get(f"/s/{link.token}/"))
    assert "And later, a new question" in html
    assert "<title>Renamed" in html


def test_deleted_link_is_404(chat, alice):
    owner = login(alice)
    link = create_link(owner, chat)
    assert Client().get(f"/s/{link.token}/").status_code == 200
    response = owner.post(f"/c/{chat.id}/links/{link.id}/delete/", follow=True)
    assert ("success", "Public link deleted; it no longer opens.") in flashes(response)
    assert not PublicLink.objects.exists()
    assert Client().get(f"/s/{link.token}/").status_code == 404


def test_another_conversations_link_cannot_be_deleted_or_refreshed_from_yours(chat, alice, carol, make_conversation):
    theirs = create_link(login(carol), make_conversation(owner=carol, title="Carol's"))
    client = login(alice)
    assert client.post(f"/c/{chat.id}/links/{theirs.id}/delete/").status_code == 404
    assert client.post(f"/c/{chat.id}/links/{theirs.id}/refresh/").status_code == 404
    assert PublicLink.objects.filter(pk=theirs.pk).exists()


def test_only_the_owner_makes_links(chat, bob, otters):
    make_share(conversation=chat, user=bob, role=COLLABORATOR)
    response = login(bob).post(f"/c/{chat.id}/links/", {"kind": "snapshot", "audience": "anyone"})
    assert response.status_code == 403
    assert not PublicLink.objects.exists()


def test_link_token_is_long_and_url_safe(chat, alice):
    tokens = {create_link(login(alice), chat).token for _ in range(3)}
    assert len(tokens) == 3
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", token), token  # token_urlsafe(32): 256 bits


def test_share_dialog_shows_the_links_address(chat, alice):
    link = create_link(login(alice), chat)
    assert f'value="http://testserver/s/{link.token}/"' in page(login(alice).get(f"/c/{chat.id}/"))


@pytest.mark.parametrize("kind", ["snapshot", "live", "password"])
def test_public_pages_are_not_indexed_cached_or_referred(chat, alice, kind):
    fields = {"kind": "live"} if kind == "live" else {"password": "sesame"} if kind == "password" else {}
    link = create_link(login(alice), chat, **fields)
    response = Client().get(f"/s/{link.token}/")
    assert response.status_code == 200
    assert_private(response)


def test_expired_link_is_gone_and_private(chat, alice):
    link = create_link(login(alice), chat)
    PublicLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = Client().get(f"/s/{link.token}/")
    assert response.status_code == 410
    assert "This link has expired" in page(response)
    assert "Do otters hold hands?" not in page(response)
    assert_private(response)


def test_link_with_a_future_expiry_opens_until_the_end_of_that_day(chat, alice):
    tomorrow = timezone.localdate() + timedelta(days=1)
    link = create_link(login(alice), chat, expires_on=tomorrow.isoformat())
    assert timezone.localtime(link.expires_at).date() == tomorrow + timedelta(days=1)
    assert Client().get(f"/s/{link.token}/").status_code == 200


@pytest.mark.parametrize("days", [0, -1])
def test_expiry_day_today_or_in_the_past_is_refused(chat, alice, days):
    day = timezone.localdate() + timedelta(days=days)
    response = login(alice).post(
        f"/c/{chat.id}/links/", {"kind": "snapshot", "audience": "anyone", "expires_on": day.isoformat()}, follow=True
    )
    assert not PublicLink.objects.exists()
    assert ("error", "Choose a day after today.") in flashes(response)


def test_unknown_token_is_404(db):
    assert Client().get("/s/not-a-real-token-at-all/").status_code == 404


def test_live_link_shows_new_messages_without_refresh(chat, alice):
    link = create_link(login(alice), chat, kind="live")
    assert link.snapshot == []
    later = make_message(conversation=chat, content="Written after the link")
    chat.title = "Live title"
    chat.save()
    html = page(Client().get(f"/s/{link.token}/"))
    assert "Do otters hold hands?" in html
    assert "Written after the link" in html
    assert "<title>Live title" in html
    assert f'data-socket-path="/ws/s/{link.token}/"' in html
    assert f'data-since="{later.id + 1}"' in html  # the socket resumes after what the page shows


def test_users_only_link_sends_anonymous_visitors_to_log_in(chat, alice):
    link = create_link(login(alice), chat, audience="users")
    response = Client().get(f"/s/{link.token}/")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/s/{link.token}/"


def test_users_only_link_opens_for_any_logged_in_person(chat, alice, carol):
    link = create_link(login(alice), chat, audience="users")
    response = login(carol).get(f"/s/{link.token}/")
    assert response.status_code == 200
    assert "Do otters hold hands?" in page(response)
    assert login(carol).get(f"/c/{chat.id}/").status_code == 404  # the link is no share


@pytest.fixture
def locked(chat, alice):
    return create_link(login(alice), chat, password="open sesame")


def test_password_link_asks_for_the_password_and_shows_nothing_else(locked):
    response = Client().get(f"/s/{locked.token}/")
    assert response.status_code == 200
    html = page(response)
    assert 'type="password"' in html and 'name="password"' in html
    assert "Do otters hold hands?" not in html
    assert "while sleeping" not in html
    assert "Otter facts" not in html


def test_password_is_stored_hashed(locked):
    assert locked.password and "open sesame" not in locked.password


def test_wrong_password_is_403_with_an_error(locked):
    response = Client().post(f"/s/{locked.token}/", {"password": "wrong"})
    assert response.status_code == 403
    assert "That is not the password." in page(response)
    assert "Do otters hold hands?" not in page(response)
    assert_private(response)


def test_guessing_a_links_password_stops_after_ten_wrong_tries(locked):
    guesser = Client()
    for _ in range(10):
        assert guesser.post(f"/s/{locked.token}/", {"password": "guess"}).status_code == 403
    response = guesser.post(f"/s/{locked.token}/", {"password": "open sesame"})  # even the right one, for now
    assert response.status_code == 429
    assert "Too many wrong passwords" in page(response)
    assert "Do otters hold hands?" not in page(response)
    assert_private(response)


def test_the_right_password_clears_the_wrong_tries(locked):
    visitor = Client()
    for _ in range(9):
        visitor.post(f"/s/{locked.token}/", {"password": "guess"})
    assert visitor.post(f"/s/{locked.token}/", {"password": "open sesame"}).status_code == 302
    assert Client().post(f"/s/{locked.token}/", {"password": "guess"}).status_code == 403  # counting from zero again


def test_right_password_unlocks_the_link_for_this_session_only(locked):
    before = PublicLink.objects.filter(pk=locked.pk).values().get()
    visitor = Client()
    response = visitor.post(f"/s/{locked.token}/", {"password": "open sesame"})
    assert response.status_code == 302
    assert response["Location"] == f"/s/{locked.token}/"
    response = visitor.get(f"/s/{locked.token}/")
    assert response.status_code == 200
    assert "Do otters hold hands?" in page(response)
    assert 'name="password"' not in page(response)
    # Nothing changed but this visitor's session.
    assert PublicLink.objects.filter(pk=locked.pk).values().get() == before
    assert Conversation.objects.count() == 1
    assert 'name="password"' in page(Client().get(f"/s/{locked.token}/"))


def test_site_switch_off_hides_links_and_refuses_new_ones(chat, alice):
    owner = login(alice)
    link = create_link(owner, chat)
    SiteSettings(public_links_enabled=False).save()
    assert Client().get(f"/s/{link.token}/").status_code == 404
    response = owner.post(f"/c/{chat.id}/links/", {"kind": "snapshot", "audience": "anyone"}, follow=True)
    assert PublicLink.objects.count() == 1
    assert ("error", "Public links are turned off on this site.") in flashes(response)
    html = page(response)
    assert '<p class="muted">Public links are turned off on this site.</p>' in html
    assert f'action="/c/{chat.id}/links/"' not in html
    SiteSettings(public_links_enabled=True).save()
    assert Client().get(f"/s/{link.token}/").status_code == 200


def test_continue_in_my_own_chat_copies_the_conversation(chat, alice, carol):
    link = create_link(login(alice), chat)
    client = login(carol)
    assert "Continue in my own chat" in page(client.get(f"/s/{link.token}/"))
    response = client.post(f"/s/{link.token}/continue/")
    copy = Conversation.objects.exclude(pk=chat.pk).get()
    assert response.status_code == 302
    assert response["Location"] == f"/c/{copy.id}/"
    assert copy.owner == carol
    assert copy.title == "Otter facts"
    assert [(m.role, m.content, m.author) for m in copy.messages.order_by("id")] == [
        ("user", "Do otters hold hands?", carol),
        ("assistant", "Yes, **while sleeping**.", None),
    ]
    html = page(client.get(f"/c/{copy.id}/"))
    assert "<strong>while sleeping</strong>" in html
    assert 'id="share-dialog"' in html  # carol owns it
    assert chat.messages.count() == 2  # the original is untouched


def test_continue_needs_a_login(chat, alice):
    link = create_link(login(alice), chat)
    response = Client().post(f"/s/{link.token}/continue/")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/s/{link.token}/continue/"
    assert Conversation.objects.count() == 1
    assert "Log in</a> to continue" in page(Client().get(f"/s/{link.token}/"))


def test_continue_from_a_locked_link_needs_its_password(locked, carol):
    response = login(carol).post(f"/s/{locked.token}/continue/")
    assert response["Location"] == f"/s/{locked.token}/"
    assert Conversation.objects.count() == 1


HOSTILE = (
    "Look <script>alert('pwned')</script> here\n\n"
    "<img src=x onerror=alert(1)>\n\n"
    "[click me](javascript:alert(1))\n\n"
    "**bold**"
)


# The only scripts a page loads: the translations, then chat.js and sidebar.js. Model output adds none.
OUR_SCRIPTS = [
    '<script src="/jsi18n/?l=en" defer>',
    '<script src="/static/conversations/vendor/markdown-it/markdown-it.min.js" defer>',
    '<script src="/static/conversations/vendor/dompurify/purify.min.js" defer>',
    '<script src="/static/conversations/js/render.js" defer>',
    '<script src="/static/conversations/js/chat.js" defer>',
    '<script src="/static/conversations/js/sidebar.js" defer>',
    '<script src="/static/conversations/js/search.js" defer>',
]


@pytest.mark.parametrize("kind", ["snapshot", "live"])
def test_model_output_on_a_public_page_stays_sanitised(alice, make_conversation, kind):
    conversation = make_conversation(title="Hostile")
    make_message(conversation=conversation, content="Say something nasty")
    reply = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
    )
    services.replies.reply_finish(reply_id=reply.id, content=HOSTILE, status=Message.Status.COMPLETE, model_name="m")
    link = create_link(login(alice), conversation, kind=kind)
    html = page(Client().get(f"/s/{link.token}/"))
    assert "<strong>bold</strong>" in html
    assert "&lt;script&gt;" in html
    scripts = re.findall(r"<script[^>]*>", html, re.I)
    assert scripts == OUR_SCRIPTS
    assert "<img" not in html.lower()
    assert 'href="javascript:' not in html
    # Continuing it renders it again, just as safely.
    copy_response = login(alice).post(f"/s/{link.token}/continue/", follow=True)
    copied = page(copy_response)
    assert re.findall(r"<script[^>]*>", copied, re.I) == OUR_SCRIPTS
    assert "<strong>bold</strong>" in copied


# --- CSRF ----------------------------------------------------------------------------------------


def test_sharing_without_a_csrf_token_is_refused(chat, alice, bob, otters):
    client = login(alice, enforce_csrf_checks=True)
    response = client.post(f"/c/{chat.id}/shares/", {"target": f"user:{bob.pk}", "role": VIEWER})
    assert response.status_code == 403
    assert not Share.objects.exists()


@pytest.mark.parametrize("what", ["link", "team", "revoke"])
def test_other_sharing_posts_without_a_csrf_token_are_refused(chat, alice, bob, otters, what):
    made = make_share(conversation=chat, user=bob)
    client = login(alice, enforce_csrf_checks=True)
    path, data = {
        "link": (f"/c/{chat.id}/links/", {"kind": "snapshot", "audience": "anyone"}),
        "team": ("/teams/", {"name": "Sneaky"}),
        "revoke": (f"/c/{chat.id}/shares/{made.id}/revoke/", {}),
    }[what]
    assert client.post(path, data).status_code == 403
    assert not PublicLink.objects.exists()
    assert not Team.objects.filter(name="Sneaky").exists()
    assert Share.objects.filter(pk=made.pk).exists()


def test_sharing_with_the_csrf_token_is_accepted(chat, alice, bob, otters):
    client = login(alice, enforce_csrf_checks=True)
    client.get(f"/c/{chat.id}/")
    token = client.cookies["csrftoken"].value
    data = {"target": f"user:{bob.pk}", "role": VIEWER, "csrfmiddlewaretoken": token}
    response = client.post(f"/c/{chat.id}/shares/", data)
    assert response.status_code == 302
    assert Share.objects.count() == 1


# --- teams ------------------------------------------------------------------------------------


def team_names(html: str) -> list[str]:
    listed = re.search(r'<ul class="team-list" id="my-teams">(.*?)</ul>', html, re.S)
    return re.findall(r'<a href="/teams/\d+/">([^<]*)</a>', listed.group(1)) if listed else []


def test_teams_page_lists_my_teams_only(alice, otters, badgers, bob):
    make_team(name="Bob only", owner=bob)
    html = page(login(alice).get("/teams/"))
    assert team_names(html) == ["Otters"]
    assert team_names(page(login(bob).get("/teams/"))) == ["Bob only", "Otters"]


def test_teams_page_without_teams_says_so(alice):
    assert "You are in no team yet." in page(login(alice).get("/teams/"))


def test_creating_a_team_makes_me_its_owner(alice):
    response = login(alice).post("/teams/", {"name": "  Herons  "})
    team = Team.objects.get()
    assert team.name == "Herons"
    assert response.status_code == 302
    assert response["Location"] == f"/teams/{team.id}/"
    (membership,) = team.memberships.all()
    assert (membership.user, membership.role) == (alice, OWNER)
    html = page(login(alice).get(f"/teams/{team.id}/"))
    assert "alice (you)" in html
    assert f'action="/teams/{team.id}/invitations/"' in html


@pytest.mark.parametrize("name", ["Otters", "otters"])
def test_a_duplicate_team_name_is_refused(alice, bob, otters, name):
    response = login(bob).post("/teams/", {"name": name})
    assert response.status_code == 400
    assert Team.objects.count() == 1
    assert "already exists" in htmllib.unescape(page(response))
    assert not TeamMembership.objects.filter(user=bob, role=OWNER).exists()


def test_an_empty_team_name_is_refused(alice):
    assert login(alice).post("/teams/", {"name": "   "}).status_code == 400
    assert not Team.objects.exists()


def test_inviting_a_member_changes_their_role(alice, bob, otters):
    # bob agreed to be in the team when he joined; which role he has there is the owners' to say.
    response = login(alice).post(f"/teams/{otters.id}/invitations/", {"username": "bob", "role": OWNER}, follow=True)
    assert ("success", "bob is in Otters as owner.") in flashes(response)
    assert TeamMembership.objects.filter(team=otters).count() == 2
    assert TeamMembership.objects.get(team=otters, user=bob).role == OWNER


def test_a_plain_member_cannot_invite_or_remove_people(alice, bob, carol, otters):
    client = login(bob)
    assert client.post(f"/teams/{otters.id}/invitations/", {"username": "carol", "role": MEMBER}).status_code == 403
    assert client.post(f"/teams/{otters.id}/members/{alice.pk}/remove/").status_code == 403
    assert set(otters.memberships.values_list("user__username", flat=True)) == {"alice", "bob"}
    assert not otters.invitations.exists()
    html = page(client.get(f"/teams/{otters.id}/"))
    assert f'action="/teams/{otters.id}/invitations/"' not in html
    assert f'action="/teams/{otters.id}/members/{alice.pk}/remove/"' not in html
    assert f'action="/teams/{otters.id}/members/{bob.pk}/remove/"' in html  # Leave


def test_a_member_can_leave(alice, bob, otters):
    response = login(bob).post(f"/teams/{otters.id}/members/{bob.pk}/remove/", follow=True)
    assert response.redirect_chain[-1][0] == "/teams/"
    assert ("success", "You left Otters.") in flashes(response)
    assert not TeamMembership.objects.filter(team=otters, user=bob).exists()
    assert login(bob).get(f"/teams/{otters.id}/").status_code == 404


def test_the_last_owner_cannot_leave(alice, bob, otters):
    response = login(alice).post(f"/teams/{otters.id}/members/{alice.pk}/remove/", follow=True)
    assert ("error", "A team needs an owner: make someone else owner first.") in flashes(response)
    assert TeamMembership.objects.get(team=otters, user=alice).role == OWNER


def test_an_owner_can_be_removed_by_another_until_only_one_is_left(alice, bob, otters):
    TeamMembership.objects.filter(team=otters, user=bob).update(role=OWNER)
    login(bob).post(f"/teams/{otters.id}/members/{alice.pk}/remove/")
    assert not TeamMembership.objects.filter(team=otters, user=alice).exists()
    response = login(bob).post(f"/teams/{otters.id}/members/{bob.pk}/remove/", follow=True)
    assert ("error", "A team needs an owner: make someone else owner first.") in flashes(response)
    assert TeamMembership.objects.filter(team=otters, user=bob, role=OWNER).exists()


def test_a_non_member_cannot_see_or_change_a_team(alice, carol, otters):
    client = login(carol)
    assert client.get(f"/teams/{otters.id}/").status_code == 404
    assert client.post(f"/teams/{otters.id}/invitations/", {"username": "carol", "role": OWNER}).status_code == 404
    assert client.post(f"/teams/{otters.id}/members/{alice.pk}/remove/").status_code == 404
    assert not TeamMembership.objects.filter(user=carol).exists()


def test_team_page_lists_members_with_their_roles(alice, bob, otters):
    html = page(login(bob).get(f"/teams/{otters.id}/"))
    rows = re.findall(r"<tr>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", html)
    assert rows == [("alice", "owner"), ("bob (you)", "member")]


def test_removing_a_member_ends_their_access_through_the_team(chat, alice, bob, otters):
    make_share(conversation=chat, team=otters)
    reader = login(bob)
    assert reader.get(f"/c/{chat.id}/").status_code == 200
    response = login(alice).post(f"/teams/{otters.id}/members/{bob.pk}/remove/", follow=True)
    assert ("success", "Removed from the team; their access through it ended.") in flashes(response)
    assert reader.get(f"/c/{chat.id}/").status_code == 404
    assert reader.get(f"/c/{chat.id}/export/").status_code == 404
    assert shared_sidebar(page(reader.get("/"))) == []


def test_leaving_a_team_ends_access_through_it(chat, bob, otters):
    make_share(conversation=chat, team=otters)
    reader = login(bob)
    reader.post(f"/teams/{otters.id}/members/{bob.pk}/remove/")
    assert reader.get(f"/c/{chat.id}/").status_code == 404


# --- the admin --------------------------------------------------------------------------------


@pytest.fixture
def staffer(make_user):
    """Staff, not superuser, allowed to view conversations, messages and shares."""
    person = make_user("staffer", is_staff=True)
    person.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="conversations",
            codename__in=["view_conversation", "view_message", "view_share"],
        )
    )
    return person


@pytest.fixture
def admin_world(alice, bob, staffer, make_conversation):
    """Four conversations: staffer's own, one shared with staffer, one through a team, and alice's private one."""
    staff_team = make_team(name="Staff", owner=bob, members=[staffer])
    own = make_conversation(owner=staffer, title="Staffer own")
    direct = make_conversation(owner=alice, title="Shared direct")
    via_team = make_conversation(owner=bob, title="Shared via team")
    private = make_conversation(owner=alice, title="Alice private")
    for conversation in (own, direct, via_team, private):
        make_message(conversation=conversation, content=f"In {conversation.title}")
    shares = {
        "direct": make_share(conversation=direct, user=staffer),
        "team": make_share(conversation=via_team, team=staff_team),
        "private": make_share(conversation=private, user=bob),
        "own": make_share(conversation=own, user=bob),
    }
    return {"own": own, "direct": direct, "via_team": via_team, "private": private, "shares": shares}


def test_staff_see_only_conversations_visible_to_them_in_the_admin(admin_world, staffer):
    client = login(staffer)
    titles = {row.title for row in listed(client.get("/admin/conversations/conversation/"))}
    assert titles == {"Staffer own", "Shared direct", "Shared via team"}
    contents = {row.content for row in listed(client.get("/admin/conversations/message/"))}
    assert contents == {"In Staffer own", "In Shared direct", "In Shared via team"}
    # Only the shares of their own conversation: on the site only an owner sees a conversation's shares.
    shares = {row.pk for row in listed(client.get("/admin/conversations/share/"))}
    assert shares == {admin_world["shares"]["own"].pk}
    assert "Alice private" not in page(client.get("/admin/conversations/conversation/"))


def test_staff_cannot_open_a_conversation_they_may_not_see(admin_world, staffer):
    client = login(staffer)
    assert client.get(f"/admin/conversations/conversation/{admin_world['direct'].id}/change/").status_code == 200
    hidden = f"/admin/conversations/conversation/{admin_world['private'].id}/change/"
    assert client.get(hidden).status_code in (302, 404)
    assert "In Alice private" not in page(client.get(hidden, follow=True))
    hidden_message = admin_world["private"].messages.get()
    assert client.get(f"/admin/conversations/message/{hidden_message.id}/change/").status_code in (302, 404)
    hidden_share = admin_world["shares"]["private"]
    assert client.get(f"/admin/conversations/share/{hidden_share.id}/change/").status_code in (302, 404)


def test_superuser_sees_every_conversation_in_the_admin(admin_world, superuser):
    client = login(superuser)
    titles = {row.title for row in listed(client.get("/admin/conversations/conversation/"))}
    assert titles == {"Staffer own", "Shared direct", "Shared via team", "Alice private"}
    assert len(listed(client.get("/admin/conversations/message/"))) == 4
    assert len(listed(client.get("/admin/conversations/share/"))) == 4
    assert client.get(f"/admin/conversations/conversation/{admin_world['private'].id}/change/").status_code == 200


@pytest.mark.parametrize("which", ["changelist", "change", "delete"])
def test_public_link_admin_never_shows_the_token_or_password_hash(chat, alice, superuser, which):
    link = create_link(login(alice), chat, password="open sesame")
    suffix = {"changelist": "", "change": f"{link.pk}/change/", "delete": f"{link.pk}/delete/"}[which]
    path = "/admin/conversations/publiclink/" + suffix
    response = login(superuser).get(path)
    assert response.status_code == 200
    html = page(response)
    assert "Otter facts" in html
    assert link.token not in html
    assert link.token[:16] not in html
    assert link.password not in html
    assert link.password.split("$")[-1] not in html
    assert "open sesame" not in html


def test_public_links_cannot_be_added_in_the_admin(superuser):
    assert login(superuser).get("/admin/conversations/publiclink/add/").status_code == 403


def test_site_settings_changelist_goes_to_the_one_row(superuser):
    response = login(superuser).get("/admin/conversations/sitesettings/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/conversations/sitesettings/1/change/"
    assert SiteSettings.objects.count() == 1


def test_site_settings_saved_in_the_admin_turns_links_off(chat, alice, superuser):
    link = create_link(login(alice), chat)
    client = login(superuser)
    client.get("/admin/conversations/sitesettings/")
    response = client.post("/admin/conversations/sitesettings/1/change/", {})  # the box unticked
    assert response.status_code == 302
    assert SiteSettings.objects.get().public_links_enabled is False
    assert SiteSettings.objects.count() == 1
    assert Client().get(f"/s/{link.token}/").status_code == 404
    assert "Public links are turned off on this site." in page(login(alice).get(f"/c/{chat.id}/"))


def test_team_admin_with_its_membership_inline_renders_and_saves(superuser, otters, carol):
    client = login(superuser)
    assert client.get("/admin/conversations/team/").status_code == 200
    html = page(client.get(f"/admin/conversations/team/{otters.id}/change/"))
    assert 'name="memberships-TOTAL_FORMS"' in html
    assert "alice" in html and "bob" in html
    assert client.get("/admin/conversations/team/add/").status_code == 200
    response = client.post(
        "/admin/conversations/team/add/",
        {
            "name": "Herons",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-user": str(carol.pk),
            "memberships-0-role": OWNER,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    herons = Team.objects.get(name="Herons")
    assert list(herons.memberships.values_list("user__username", "role")) == [("carol", OWNER)]

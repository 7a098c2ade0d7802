"""Teams by consent: an owner invites by username, and only the invitee's Accept makes them a member; they may
decline, or block the team (and unblock it). The invite form answers alike for every name, with the same work,
and invitations are limited.

Services first, then the pages. Leaving a team (its shares leave the sidebar, open sockets close) is in
tests/test_live_sharing.py; the whole flow in browsers in tests/e2e/test_browser_sharing.py.
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from conversations import selectors, services
from conversations.exceptions import Forbidden, InvalidChange, InvitationNotFound, TeamNotFound, TooManyInvitations
from conversations.models import Conversation, Share, Team, TeamBlock, TeamInvitation, TeamMembership
from tests.factories import make_conversation, make_invitation, make_share, make_team
from tests.helpers import flashes, login, page, shared_sidebar

pytestmark = pytest.mark.django_db

OWNER, MEMBER = TeamMembership.Role.OWNER, TeamMembership.Role.MEMBER
LAPSED = TeamInvitation.OPEN_FOR + timedelta(minutes=1)


@pytest.fixture
def otters(alice) -> Team:
    """alice's team; nobody else is in it yet."""
    return make_team(name="Otters", owner=alice)


@pytest.fixture
def plans(alice, otters) -> Conversation:
    """alice's conversation, shared with the Otters."""
    conversation = make_conversation(owner=alice, title="Otter plans")
    make_share(conversation=conversation, team=otters)
    return conversation


def invite(team: Team, username: str, *, by, role: str = MEMBER):
    return services.teams.team_invite(team=team, by=by, username=username, role=role)


def the_invitation(person) -> TeamInvitation:
    """The one invitation waiting for `person`'s answer."""
    (invitation,) = selectors.teams.open_invitations_for(person)
    return invitation


# --- inviting and answering -------------------------------------------------------------------


def test_an_invitation_gives_no_access_until_it_is_accepted(alice, bob, otters, plans):
    assert invite(otters, "bob", by=alice) is None

    assert not TeamMembership.objects.filter(team=otters, user=bob).exists()
    assert not Conversation.objects.visible_to(bob).filter(pk=plans.pk).exists()
    assert bob not in selectors.teams.teammates_of(alice)
    with pytest.raises(InvalidChange):  # not a teammate yet, so not someone alice can share with
        services.sharing.conversation_share(conversation=plans, by=alice, role=Share.Role.VIEWER, user_id=bob.pk)

    membership = services.teams.invitation_accept(invitation_id=the_invitation(bob).id, by=bob)
    assert (membership.team, membership.user, membership.role) == (otters, bob, MEMBER)
    assert Conversation.objects.visible_to(bob).filter(pk=plans.pk).exists()
    assert bob in selectors.teams.teammates_of(alice)
    assert selectors.teams.open_invitations_for(bob) == []


def test_accepting_an_invitation_as_owner_makes_an_owner(alice, bob, otters):
    invite(otters, "bob", by=alice, role=OWNER)
    services.teams.invitation_accept(invitation_id=the_invitation(bob).id, by=bob)
    assert TeamMembership.objects.get(team=otters, user=bob).role == OWNER


def test_accepting_after_an_admin_added_me_keeps_the_admins_membership(alice, bob, otters):
    invite(otters, "bob", by=alice, role=MEMBER)
    TeamMembership.objects.create(team=otters, user=bob, role=OWNER)
    services.teams.invitation_accept(invitation_id=the_invitation(bob).id, by=bob)
    assert TeamMembership.objects.get(team=otters, user=bob).role == OWNER


def test_declining_makes_no_membership_and_the_owner_may_invite_again(alice, bob, otters):
    invite(otters, "bob", by=alice)
    assert services.teams.invitation_decline(invitation_id=the_invitation(bob).id, by=bob) == otters
    assert selectors.teams.open_invitations_for(bob) == []
    assert not TeamMembership.objects.filter(user=bob).exists()

    invite(otters, "bob", by=alice)
    assert the_invitation(bob).team == otters


def test_a_blocked_teams_invitations_reach_no_one_until_it_is_unblocked(alice, bob, otters):
    invite(otters, "bob", by=alice)
    assert services.teams.team_block(invitation_id=the_invitation(bob).id, by=bob) == otters
    assert selectors.teams.blocked_teams_of(bob) == [otters]
    assert not TeamMembership.objects.filter(user=bob).exists()

    invite(otters, "bob", by=alice)
    assert selectors.teams.open_invitations_for(bob) == []
    assert otters.invitations.filter(invitee=None).count() == 1  # sent, like any other, to no one

    assert services.teams.team_unblock(team_id=otters.id, by=bob) == otters
    assert selectors.teams.blocked_teams_of(bob) == []
    invite(otters, "bob", by=alice)
    assert the_invitation(bob).team == otters


def test_a_block_holds_for_that_team_only(alice, bob, carol, otters):
    badgers = make_team(name="Badgers", owner=carol)
    invite(otters, "bob", by=alice)
    services.teams.team_block(invitation_id=the_invitation(bob).id, by=bob)
    invite(badgers, "bob", by=carol)
    assert the_invitation(bob).team == badgers


def test_unblocking_a_team_i_did_not_block_is_not_found(bob, otters):
    with pytest.raises(TeamNotFound):
        services.teams.team_unblock(team_id=otters.id, by=bob)


@pytest.mark.parametrize("answer", ["invitation_accept", "invitation_decline", "team_block"])
def test_only_the_invitee_answers_and_only_once(alice, bob, carol, otters, answer):
    invite(otters, "bob", by=alice)
    invitation = the_invitation(bob)
    with pytest.raises(InvitationNotFound):
        getattr(services.teams, answer)(invitation_id=invitation.id, by=carol)
    services.teams.invitation_accept(invitation_id=invitation.id, by=bob)
    with pytest.raises(InvitationNotFound):
        getattr(services.teams, answer)(invitation_id=invitation.id, by=bob)
    assert not TeamMembership.objects.filter(user=carol).exists()
    assert not TeamBlock.objects.exists()


def test_a_lapsed_invitation_is_not_shown_nor_accepted_and_inviting_again_renews_it(alice, bob, otters):
    lapsed = make_invitation(team=otters, invitee=bob, invited_by=alice, ago=LAPSED)
    assert selectors.teams.open_invitations_for(bob) == []
    assert selectors.teams.open_invitation_count(bob) == 0
    with pytest.raises(InvitationNotFound):
        services.teams.invitation_accept(invitation_id=lapsed.id, by=bob)

    invite(otters, "bob", by=alice, role=OWNER)
    renewed = the_invitation(bob)
    assert (renewed.pk, renewed.role) == (lapsed.pk, OWNER)  # still one pending invitation per team and person


def test_inviting_twice_leaves_one_invitation_waiting(alice, bob, otters):
    invite(otters, "bob", by=alice)
    invite(otters, "bob", by=alice)
    assert len(selectors.teams.open_invitations_for(bob)) == 1
    assert otters.invitations.count() == 2  # the second reached no one, and counts against the limits as any other


def test_only_a_team_owner_invites(alice, bob, carol, otters):
    TeamMembership.objects.create(team=otters, user=bob, role=MEMBER)
    for person in (bob, carol):
        with pytest.raises(Forbidden):
            invite(otters, "dave", by=person)
    assert not TeamInvitation.objects.exists()


def test_the_only_owner_cannot_invite_themselves_down_to_member(alice, otters):
    with pytest.raises(InvalidChange, match="A team needs an owner"):
        invite(otters, "alice", by=alice, role=MEMBER)
    assert TeamMembership.objects.get(team=otters, user=alice).role == OWNER


# --- every name alike -------------------------------------------------------------------------


@pytest.fixture
def names(alice, bob, otters, make_user) -> list[str]:
    """Names that reach someone, and names that do not: no such person, an inactive account, someone who
    blocked the team, someone it invited already."""
    make_user("dora")
    make_user("gone", is_active=False)
    TeamBlock.objects.create(team=otters, user=make_user("blocker"))
    invite(otters, "bob", by=alice)
    return ["dora", "nobody", "gone", "blocker", "bob"]


def test_inviting_costs_the_same_queries_and_one_new_row_whatever_the_name(alice, otters, names):
    statements = {}
    for name in names:
        with CaptureQueriesContext(connection) as queries:
            invite(otters, name, by=alice)
        statements[name] = [query["sql"].split()[0] for query in queries.captured_queries]
    assert statements["dora"].count("INSERT") == 1
    assert all(done == statements["dora"] for done in statements.values()), statements
    assert otters.invitations.count() == 1 + len(names)


def test_the_invite_form_answers_alike_whether_the_name_exists(alice, otters, names):
    client = login(alice)
    replies = {}
    for name in names:
        response = client.post(f"/teams/{otters.id}/invitations/", {"username": f" {name} ", "role": MEMBER}, follow=True)
        # The same page (flash message included) but for the name; the CSRF token is masked afresh on every page.
        html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", page(response))
        replies[name] = (response.redirect_chain, html.replace(name, "NAME"))
        assert flashes(response) == [
            ("success", f"If someone called {name} is on this site, they have been invited. They join Otters once they accept.")
        ]
    assert replies["nobody"][0] == [(f"/teams/{otters.id}/", 302)]
    assert [name for name, reply in replies.items() if reply != replies["nobody"]] == []


# --- limits -----------------------------------------------------------------------------------


def test_a_person_sends_at_most_twenty_invitations_a_day_whatever_the_names(alice, otters, make_user):
    assert services.teams.INVITATIONS_PER_INVITER_PER_DAY == 20  # as the README says
    badgers = make_team(name="Badgers", owner=alice)
    for number in range(20):
        if number % 2:
            make_user(f"person{number}")  # every other name belongs to someone
        invite(otters if number % 3 else badgers, f"person{number}", by=alice)
    with pytest.raises(TooManyInvitations) as refused:
        invite(otters, "bob", by=alice)
    assert refused.value.message == (
        "You have sent 20 invitations in the last 24 hours, the most allowed. Try again tomorrow."
    )

    TeamInvitation.objects.update(created=F("created") - timedelta(days=1))
    invite(otters, "bob", by=alice)


def test_a_team_sends_at_most_fifty_invitations_while_they_are_open(alice, bob, otters):
    assert services.teams.INVITATIONS_PER_TEAM == 50
    TeamMembership.objects.create(team=otters, user=bob, role=OWNER)  # another owner, with a day's invitations of their own
    for _ in range(49):
        make_invitation(team=otters, invitee=None, invited_by=None, ago=timedelta(days=2))
    invite(otters, "carol", by=bob)
    with pytest.raises(TooManyInvitations) as refused:
        invite(otters, "dave", by=alice)
    assert refused.value.message == "Otters has sent 50 invitations in the last 14 days, the most allowed."

    TeamInvitation.objects.filter(invited_by=None).update(created=F("created") - TeamInvitation.OPEN_FOR)
    invite(otters, "dave", by=alice)


def test_a_person_has_at_most_twenty_invitations_waiting(bob, make_user):
    assert services.teams.OPEN_INVITATIONS_PER_PERSON == 20
    for number in range(20):
        make_invitation(team=make_team(name=f"Team {number}"), invitee=bob)
    owner = make_user("owner")
    one_more = make_team(name="One more", owner=owner)
    invite(one_more, "bob", by=owner)
    assert len(selectors.teams.open_invitations_for(bob)) == 20
    assert one_more.invitations.get().invitee is None


def test_the_limit_message_shows_on_the_team_page(alice, otters):
    for _ in range(20):
        make_invitation(team=otters, invitee=None, invited_by=alice)
    response = login(alice).post(f"/teams/{otters.id}/invitations/", {"username": "bob", "role": MEMBER}, follow=True)
    assert flashes(response) == [
        ("error", "You have sent 20 invitations in the last 24 hours, the most allowed. Try again tomorrow.")
    ]


# --- the pages --------------------------------------------------------------------------------


def invitation_badge(html: str) -> str | None:
    """The number beside Teams in the sidebar, None when there is none."""
    found = re.search(r'<span class="count-badge" id="invitation-count" aria-hidden="true">(\d+)</span>', html)
    return found.group(1) if found else None


def invitation_texts(html: str) -> list[str]:
    return re.findall(r'<span class="invitation-text">([^<]*)</span>', html)


def blocked_names(html: str) -> list[str]:
    listed = re.search(r'<ul class="team-list blocked-list"[^>]*>(.*?)</ul>', html, re.S)
    return re.findall(r"<li>\s*([^<]*?)\s*<form", listed.group(1)) if listed else []


def test_my_invitations_are_on_the_teams_page_and_counted_in_the_sidebar(alice, bob, carol, otters):
    badgers = make_team(name="Badgers", owner=carol)
    invite(otters, "bob", by=alice, role=OWNER)
    invite(badgers, "bob", by=carol)
    client = login(bob)

    home = page(client.get("/"))
    assert invitation_badge(home) == "2"
    assert "(2 invitations waiting for your answer)" in home
    html = page(client.get("/teams/"))
    assert invitation_texts(html) == ["carol invites you to Badgers as member.", "alice invites you to Otters as owner."]
    for invitation in selectors.teams.open_invitations_for(bob):
        for action in ("accept", "decline"):  # Decline's form has the Block button too
            assert f'action="/invitations/{invitation.id}/{action}/"' in html
    assert html.count('<button type="submit" name="block" value="1"') == 2
    assert invitation_badge(page(login(alice).get("/"))) is None


def test_accepting_joins_the_team_and_brings_its_shares(alice, bob, otters, plans):
    invite(otters, "bob", by=alice)
    client = login(bob)
    assert shared_sidebar(page(client.get("/"))) == []

    response = client.post(f"/invitations/{the_invitation(bob).id}/accept/", follow=True)
    assert response.redirect_chain == [(f"/teams/{otters.id}/", 302)]
    assert flashes(response) == [("success", "You joined Otters.")]
    html = page(response)
    assert shared_sidebar(html) == [("Otter plans", "alice")]
    assert invitation_badge(html) is None
    assert "bob (you)" in html
    assert client.get(f"/c/{plans.id}/").status_code == 200


def test_the_team_page_lists_people_once_they_accept(alice, bob, otters):
    client = login(alice)
    client.post(f"/teams/{otters.id}/invitations/", {"username": "bob", "role": MEMBER})
    assert "<td>bob</td>" not in page(client.get(f"/teams/{otters.id}/"))
    services.teams.invitation_accept(invitation_id=the_invitation(bob).id, by=bob)
    assert "<td>bob</td>" in page(client.get(f"/teams/{otters.id}/"))


def test_declining_from_the_teams_page(alice, bob, otters):
    invite(otters, "bob", by=alice)
    response = login(bob).post(f"/invitations/{the_invitation(bob).id}/decline/", follow=True)
    assert response.redirect_chain == [("/teams/", 302)]
    assert flashes(response) == [("success", "You declined the invitation to Otters.")]
    html = page(response)
    assert invitation_texts(html) == [] and invitation_badge(html) is None
    assert not TeamMembership.objects.filter(user=bob).exists()


def test_blocking_and_unblocking_from_the_teams_page(alice, bob, otters):
    invite(otters, "bob", by=alice)
    client = login(bob)
    response = client.post(f"/invitations/{the_invitation(bob).id}/decline/", {"block": "1"}, follow=True)
    assert flashes(response) == [("success", "You blocked Otters: its owners can no longer invite you.")]
    assert blocked_names(page(response)) == ["Otters"]
    assert f'action="/teams/{otters.id}/unblock/"' in page(response)

    invite(otters, "bob", by=alice)
    assert invitation_texts(page(client.get("/teams/"))) == []

    response = client.post(f"/teams/{otters.id}/unblock/", follow=True)
    assert flashes(response) == [("success", "You unblocked Otters: its owners can invite you again.")]
    assert blocked_names(page(response)) == []
    assert client.post(f"/teams/{otters.id}/unblock/").status_code == 404


@pytest.mark.parametrize("action, data", [("accept", {}), ("decline", {}), ("decline", {"block": "1"})])
def test_someone_elses_invitation_is_not_found(alice, bob, carol, otters, action, data):
    invite(otters, "bob", by=alice)
    invitation = the_invitation(bob)
    assert login(carol).post(f"/invitations/{invitation.id}/{action}/", data).status_code == 404
    assert login(bob).get(f"/invitations/{invitation.id}/{action}/").status_code == 405
    assert the_invitation(bob) == invitation


def test_every_team_form_needs_the_csrf_token(alice, bob, carol, otters):
    badgers = make_team(name="Badgers", owner=carol)
    invite(otters, "bob", by=alice)
    TeamBlock.objects.create(team=badgers, user=bob)
    invitation = the_invitation(bob)
    posts = [
        (alice, f"/teams/{otters.id}/invitations/", {"username": "carol", "role": MEMBER}),
        (bob, f"/invitations/{invitation.id}/accept/", {}),
        (bob, f"/invitations/{invitation.id}/decline/", {}),
        (bob, f"/invitations/{invitation.id}/decline/", {"block": "1"}),
        (bob, f"/teams/{badgers.id}/unblock/", {}),
    ]
    for person, url, data in posts:
        assert login(person, enforce_csrf_checks=True).post(url, data).status_code == 403, url
    assert otters.invitations.count() == 1 and the_invitation(bob) == invitation
    assert TeamBlock.objects.filter(team=badgers, user=bob).exists()

    client = login(bob, enforce_csrf_checks=True)
    client.get("/teams/")
    token = client.cookies["csrftoken"].value
    assert client.post(f"/invitations/{invitation.id}/accept/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert TeamMembership.objects.filter(team=otters, user=bob).exists()


# --- the admin --------------------------------------------------------------------------------


def test_an_admin_adds_a_member_in_the_admin_without_an_invitation(superuser, alice, bob, otters):
    owner = otters.memberships.get()
    data = {
        "name": "Otters",
        "memberships-TOTAL_FORMS": "2",
        "memberships-INITIAL_FORMS": "1",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": str(owner.pk),
        "memberships-0-team": str(otters.pk),
        "memberships-0-user": str(alice.pk),
        "memberships-0-role": OWNER,
        "memberships-1-team": str(otters.pk),
        "memberships-1-user": str(bob.pk),
        "memberships-1-role": MEMBER,
    }
    response = login(superuser).post(f"/admin/conversations/team/{otters.pk}/change/", data)
    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    assert TeamMembership.objects.get(team=otters, user=bob).role == MEMBER
    assert not TeamInvitation.objects.exists()

"""People's accounts: the profile page, the language (profile > cookie > Accept-Language, <html lang>), the theme,
account invitations (made, refused, hashed at rest, single use, expiring, revoked, accepted) and password reset."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from conversations import services
from conversations.exceptions import AccountInvitationGone, Forbidden
from conversations.models import AccountInvitation, Profile, PublicLink, TeamMembership, invitation_token_hash
from tests.factories import make_conversation, make_superuser, make_team, make_user
from tests.helpers import flashes, login, page

pytestmark = pytest.mark.django_db

STRONG = "otter-meadow-4417"


def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', page(response)).group(1)


def html_theme(response) -> str:
    return re.search(r'<html [^>]*data-theme="([^"]+)"', page(response)).group(1)


def link_in(message) -> str:
    """The path of the only link of this site in an email."""
    return re.search(r"https?://[^/\s]+(/\S+)", message.body).group(1)


# --- the profile ---------------------------------------------------------------------------------


def test_profile_saves_name_language_and_theme_and_the_sidebar_shows_the_name():
    alice = make_user(username="alice")
    client = login(alice)
    response = client.post("/account/", {"display_name": " Alice A. ", "language": "zh-hans", "theme": "dark"})
    assert response.status_code == 302
    profile = Profile.objects.get(user=alice)
    assert (profile.display_name, profile.language, profile.theme) == ("Alice A.", "zh-hans", "dark")
    assert response.cookies["chat_language"].value == "zh-hans"
    home = client.get("/")
    assert 'id="profile-link"' in page(home) and "Alice A.</a>" in page(home)
    assert html_theme(home) == "dark"
    assert html_lang(home) == "zh-hans"


def test_profile_refuses_an_unknown_language_or_theme():
    alice = make_user(username="alice")
    response = login(alice).post("/account/", {"display_name": "", "language": "fr", "theme": "neon"})
    assert response.status_code == 400
    assert not Profile.objects.filter(user=alice).exists()


def test_following_the_browser_removes_the_language_cookie():
    alice = make_user(username="alice")
    client = login(alice)
    client.post("/account/", {"display_name": "", "language": "zh-hans", "theme": "system"})
    response = client.post("/account/", {"display_name": "", "language": "", "theme": "system"})
    assert response.cookies["chat_language"].value == ""  # deleted
    assert html_lang(client.get("/", HTTP_ACCEPT_LANGUAGE="en")) == "en"


def test_visitors_and_people_who_never_saved_a_profile_get_the_system_theme():
    assert html_theme(login(None).get("/accounts/login/")) == "system"
    assert html_theme(login(make_user(username="bob")).get("/")) == "system"


def test_password_change_keeps_the_session_and_the_new_password_logs_in():
    alice = make_user(username="alice")
    client = login(alice)
    response = client.post(
        "/account/password/", {"old_password": "pw-alice", "new_password1": STRONG, "new_password2": STRONG}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # still logged in
    fresh = login(None)
    answer = fresh.post("/accounts/login/", {"username": "alice", "password": STRONG})
    assert answer.status_code == 302 and answer.url == "/"


def test_password_change_with_a_wrong_old_password_changes_nothing():
    alice = make_user(username="alice")
    response = login(alice).post(
        "/account/password/", {"old_password": "wrong", "new_password1": STRONG, "new_password2": STRONG}
    )
    assert response.status_code == 400
    alice.refresh_from_db()
    assert alice.check_password("pw-alice")


# --- the language ---------------------------------------------------------------------------------


def test_a_visitor_gets_the_browsers_language_then_the_switchers_cookie():
    client = login(None)
    assert html_lang(client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")) == "zh-hans"
    response = client.post("/language/", {"language": "en", "next": "/accounts/login/"})
    assert response.status_code == 302 and response.url == "/accounts/login/"
    assert response.cookies["chat_language"].value == "en"
    assert html_lang(client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")) == "en"


def test_a_visitor_switches_language_on_a_public_link_and_comes_back_to_it():
    alice = make_user(username="alice")
    conversation = make_conversation(owner=alice)
    link = PublicLink.objects.create(conversation=conversation, kind=PublicLink.Kind.LIVE)
    client = login(None)
    public = client.get(f"/s/{link.token}/")
    assert 'class="language-switch"' in page(public)
    response = client.post("/language/", {"language": "zh-hans", "next": f"/s/{link.token}/"})
    assert response.url == f"/s/{link.token}/"
    assert html_lang(client.get(response.url)) == "zh-hans"


def test_the_switcher_does_not_redirect_elsewhere():
    response = login(None).post("/language/", {"language": "en", "next": "https://evil.example/"})
    assert response.url == "/accounts/login/"


def test_a_logged_in_persons_switch_is_saved_on_their_profile_and_wins_over_cookie_and_browser():
    alice = make_user(username="alice")
    client = login(alice)
    client.post("/language/", {"language": "zh-hans", "next": "/"})
    assert Profile.objects.get(user=alice).language == "zh-hans"
    # Another browser: its cookie and Accept-Language say English; her profile says Chinese.
    other = login(alice)
    other.cookies["chat_language"] = "en"
    assert html_lang(other.get("/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-hans"
    # And back.
    client.post("/language/", {"language": "en", "next": "/"})
    assert html_lang(client.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN")) == "en"


def test_the_saved_language_reaches_the_cookie_so_the_login_page_keeps_it_after_logging_out():
    alice = make_user(username="alice")
    services.accounts.profile_update(user=alice, display_name="", language="zh-hans", theme="system")
    client = login(alice)  # a browser that never switched
    assert client.get("/").cookies["chat_language"].value == "zh-hans"
    client.post("/accounts/logout/")
    assert html_lang(client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-hans"


def test_without_a_saved_language_the_cookie_beats_the_browser_for_a_logged_in_person():
    client = login(make_user(username="alice"))
    client.cookies["chat_language"] = "zh-hans"
    assert html_lang(client.get("/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-hans"


# --- account invitations ------------------------------------------------------------------------


@pytest.fixture
def owner():
    return make_user(username="olive")


@pytest.fixture
def team(owner):
    return make_team(name="Otters", owner=owner)


def test_an_owner_makes_a_link_shown_once_whose_token_is_stored_only_hashed(owner, team):
    response = login(owner).post(f"/teams/{team.id}/account-invitations/", {"email": ""})
    assert response.status_code == 201
    link = re.search(r'id="new-invitation-link" readonly value="([^"]+)"', page(response)).group(1)
    token = link.rstrip("/").rsplit("/", 1)[1]
    invitation = AccountInvitation.objects.get()
    assert invitation.token_hash == invitation_token_hash(token) and token not in invitation.token_hash
    assert invitation.team == team and invitation.invited_by == owner
    # The team page lists it (without the link) for revoking.
    listed = page(login(owner).get(f"/teams/{team.id}/"))
    assert 'id="account-invitations"' in listed and token not in listed


def test_a_member_who_is_not_an_owner_cannot_invite(owner, team):
    member = make_user(username="mo")
    TeamMembership.objects.create(team=team, user=member)
    assert login(member).post(f"/teams/{team.id}/account-invitations/", {"email": ""}).status_code == 403
    assert login(make_user(username="stranger")).post(f"/teams/{team.id}/account-invitations/").status_code == 404
    assert not AccountInvitation.objects.exists()


def test_an_admin_may_invite_to_any_team_or_none(team):
    root = make_superuser()
    invitation, _token = services.accounts.account_invitation_create(by=root, team=team)
    assert invitation.team == team
    invitation, _token = services.accounts.account_invitation_create(by=root, team=None)
    assert invitation.team is None
    with pytest.raises(Forbidden):
        services.accounts.account_invitation_create(by=make_user(username="nobody"), team=None)


def test_an_invitation_by_email_sends_the_link(owner, team):
    response = login(owner).post(f"/teams/{team.id}/account-invitations/", {"email": "pat@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["pat@example.com"] and "Otters" in message.subject
    path = link_in(message)
    assert path.startswith("/invite/")
    accept_page = login(None).get(path)
    assert accept_page.status_code == 200
    assert 'value="pat"' in page(accept_page)  # the username is suggested from the address
    assert "Otters" in page(accept_page) and "olive invited you." in page(accept_page)
    assert "no-store" in accept_page["Cache-Control"]


def test_the_invitation_page_names_the_inviter_by_their_display_name(owner, team):
    services.accounts.profile_update(user=owner, display_name="Olive O.", language="", theme="system")
    _invitation, token = services.accounts.account_invitation_create(by=owner, team=team)
    assert "Olive O. invited you." in page(login(None).get(f"/invite/{token}/"))


def test_accepting_makes_the_account_profile_and_membership_and_logs_in(owner, team):
    _invitation, token = services.accounts.account_invitation_create(by=owner, team=team, email="pat@example.com")
    client = login(None)
    response = client.post(
        f"/invite/{token}/",
        {"username": "pat", "display_name": "Pat P.", "password1": STRONG, "password2": STRONG},
    )
    assert response.status_code == 302 and response.url == f"/teams/{team.id}/"
    pat = get_user_model().objects.get(username="pat")
    assert pat.email == "pat@example.com" and pat.check_password(STRONG)
    assert Profile.objects.get(user=pat).display_name == "Pat P."
    assert TeamMembership.objects.get(team=team, user=pat).role == TeamMembership.Role.MEMBER
    team_page = client.get(response.url)
    assert team_page.status_code == 200 and ("success", "Welcome to Otters!") in flashes(team_page)


def test_an_invitation_works_once(owner, team):
    _invitation, token = services.accounts.account_invitation_create(by=owner, team=team)
    form = {"username": "pat", "display_name": "", "password1": STRONG, "password2": STRONG}
    assert login(None).post(f"/invite/{token}/", form).status_code == 302
    again = login(None).post(f"/invite/{token}/", {**form, "username": "sam"})
    assert again.status_code == 410 and 'data-invitation-state="accepted"' in page(again)
    assert not get_user_model().objects.filter(username="sam").exists()
    with pytest.raises(AccountInvitationGone):
        services.accounts.account_invitation_accept(token=token, username="kim", password=STRONG)


def test_weak_or_mismatched_passwords_and_taken_names_are_refused(owner, team):
    _invitation, token = services.accounts.account_invitation_create(by=owner, team=team)
    client = login(None)
    for form in (
        {"username": "pat", "password1": "123", "password2": "123"},
        {"username": "pat", "password1": STRONG, "password2": STRONG + "x"},
        {"username": "OLIVE", "password1": STRONG, "password2": STRONG},
    ):
        assert client.post(f"/invite/{token}/", form).status_code == 400
    assert AccountInvitation.objects.usable().count() == 1


def test_an_expired_invitation_shows_a_clear_page(owner, team):
    invitation, token = services.accounts.account_invitation_create(by=owner, team=team)
    AccountInvitation.objects.filter(pk=invitation.pk).update(expires=timezone.now() - timedelta(seconds=1))
    response = login(None).get(f"/invite/{token}/")
    assert response.status_code == 410 and 'data-invitation-state="expired"' in page(response)
    assert login(None).get("/invite/not-a-token/").status_code == 404


def test_expiry_follows_the_setting(owner, team, settings):
    settings.CHAT_INVITATION_DAYS = 2
    invitation, _token = services.accounts.account_invitation_create(by=owner, team=team)
    assert abs(invitation.expires - timezone.now() - timedelta(days=2)) < timedelta(minutes=1)


def test_an_owner_revokes_an_invitation_and_its_link_stops_working(owner, team):
    invitation, token = services.accounts.account_invitation_create(by=owner, team=team)
    member = make_user(username="mo")
    TeamMembership.objects.create(team=team, user=member)
    assert login(member).post(f"/teams/{team.id}/account-invitations/{invitation.id}/revoke/").status_code == 403
    response = login(owner).post(f"/teams/{team.id}/account-invitations/{invitation.id}/revoke/")
    assert response.status_code == 302
    gone = login(None).get(f"/invite/{token}/")
    assert gone.status_code == 410 and 'data-invitation-state="revoked"' in page(gone)
    assert 'id="account-invitations"' not in page(login(owner).get(f"/teams/{team.id}/"))


def test_someone_logged_in_may_join_with_their_account(owner, team):
    _invitation, token = services.accounts.account_invitation_create(by=owner, team=team)
    bob = make_user(username="bob")
    client = login(bob)
    offer = client.get(f"/invite/{token}/")
    assert 'id="join-with-account"' in page(offer)
    response = client.post(f"/invite/{token}/")
    assert response.status_code == 302 and TeamMembership.objects.filter(team=team, user=bob).exists()
    assert login(None).get(f"/invite/{token}/").status_code == 410


def test_accepting_is_throttled_per_address(owner, team):
    _invitation, token = services.accounts.account_invitation_create(by=owner, team=team)
    client = login(None)
    for _attempt in range(20):
        assert client.post(f"/invite/{token}/", {"username": "pat", "password1": "1", "password2": "1"}).status_code == 400
    response = client.post(f"/invite/{token}/", {"username": "pat", "password1": STRONG, "password2": STRONG})
    assert response.status_code == 429
    assert not get_user_model().objects.filter(username="pat").exists()


def test_an_owners_invitations_a_day_are_limited(owner, team):
    for _count in range(services.accounts.ACCOUNT_INVITATIONS_PER_INVITER_PER_DAY):
        services.accounts.account_invitation_create(by=owner, team=team)
    client = login(owner)
    response = client.post(f"/teams/{team.id}/account-invitations/", {"email": ""})
    assert response.status_code == 302
    assert "the most allowed" in flashes(client.get(response.url))[0][1]
    assert AccountInvitation.objects.count() == services.accounts.ACCOUNT_INVITATIONS_PER_INVITER_PER_DAY


def test_the_admin_makes_a_link_and_revokes_it(team):
    root = make_superuser()
    client = login(root)
    response = client.post("/admin/conversations/accountinvitation/add/", {"team": team.id, "email": ""}, follow=True)
    assert response.status_code == 200
    link = re.search(r"id='admin-invitation-link'>[^<]*?(/invite/[^<]+)</code>", page(response)).group(1)
    assert login(None).get(link).status_code == 200
    invitation = AccountInvitation.objects.get()
    client.post(
        "/admin/conversations/accountinvitation/",
        {"action": "revoke", "_selected_action": [invitation.pk]},
    )
    assert login(None).get(link).status_code == 410


def test_the_admin_emails_an_invitation():
    root = make_superuser()
    login(root).post("/admin/conversations/accountinvitation/add/", {"team": "", "email": "kim@example.com"})
    assert [message.to for message in mail.outbox] == [["kim@example.com"]]
    assert link_in(mail.outbox[0]).startswith("/invite/")


# --- password reset -----------------------------------------------------------------------------


def test_password_reset_sends_a_link_that_sets_a_new_password():
    make_user(username="alice", email="alice@example.com")
    client = login(None)
    response = client.post("/accounts/password-reset/", {"email": "alice@example.com"})
    assert response.status_code == 302 and response.url == "/accounts/password-reset/sent/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
    path = link_in(mail.outbox[0])
    form_page = client.get(path, follow=True)  # Django moves the token into the session, then shows the form
    assert 'id="password-set-form"' in page(form_page)
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": STRONG, "new_password2": STRONG})
    assert done.status_code == 302 and done.url == "/accounts/reset/done/"
    assert login(None).post("/accounts/login/", {"username": "alice", "password": STRONG}).status_code == 302
    # The link worked once.
    assert 'id="password-set-form"' not in page(login(None).get(path, follow=True))


def test_password_reset_answers_alike_for_an_unknown_address():
    make_user(username="alice", email="alice@example.com")
    known = login(None).post("/accounts/password-reset/", {"email": "alice@example.com"}, follow=True)
    unknown = login(None).post("/accounts/password-reset/", {"email": "nobody@example.com"}, follow=True)
    assert known.redirect_chain == unknown.redirect_chain
    assert known.status_code == unknown.status_code == 200
    assert 'id="password-reset-sent"' in page(known)
    assert _without_tokens(page(known)) == _without_tokens(page(unknown))
    assert len(mail.outbox) == 1


def _without_tokens(html: str) -> str:
    """The page less its CSRF tokens, which differ from one session to the next."""
    return re.sub(r'value="[^"]*"', "", html)


def test_password_reset_requests_are_limited_per_address():
    client = login(None)
    for _attempt in range(10):
        client.post("/accounts/password-reset/", {"email": "x@example.com"})
    assert client.post("/accounts/password-reset/", {"email": "x@example.com"}).status_code == 429


def test_the_login_page_links_to_password_reset():
    assert 'href="/accounts/password-reset/"' in page(login(None).get("/accounts/login/"))

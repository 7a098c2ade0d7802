"""Single sign-on against a real OpenID Connect provider (tests/oidc/provider.mjs): the app's code flow, the
account made or found from the claims, teams from the groups claim, and password logins turned off.

The person's side (the provider's login and consent pages) is walked with httpx; the app is Django's test
client, whose callback fetches the token, the keys and the user info from the provider over HTTP.
"""

import os
import re
import subprocess
import sys

import httpx
import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client

from conversations import oidc
from conversations.models import ExternalIdentity, Team, TeamMembership
from conversations.services import sso as sso_services
from conversations.services.accounts import account_invitation_create
from tests import factories
from tests.helpers import free_port, page
from tests.oidc_provider import CLIENT_ID, OIDCProvider, sign_in

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture(scope="module")
def provider():
    with OIDCProvider(redirect_uris=["http://testserver/oidc/callback/"]) as running:
        yield running


@pytest.fixture
def sso(settings, provider):
    """The app configured for the provider, as its environment variables would (see OIDCProvider.app_env)."""
    env = provider.app_env()
    settings.CHAT_OIDC_ENABLED = True
    settings.CHAT_OIDC_ISSUER = env["CHAT_OIDC_ISSUER"]
    settings.OIDC_RP_CLIENT_ID = env["CHAT_OIDC_CLIENT_ID"]
    settings.OIDC_RP_CLIENT_SECRET = env["CHAT_OIDC_CLIENT_SECRET"]
    settings.OIDC_RP_SCOPES = env["CHAT_OIDC_SCOPES"]
    settings.CHAT_OIDC_LABEL = env["CHAT_OIDC_LABEL"]
    settings.CHAT_OIDC_GROUPS_CLAIM = "groups"
    settings.CHAT_OIDC_TEAMS = {}
    oidc._discovery.clear()
    yield provider
    oidc._discovery.clear()


def sign_in_as(login: str, client: Client | None = None, next_url: str = ""):
    """A person clicks "Sign in with …", logs in at the provider as `login` and comes back: (client, response)."""
    client = client or Client()
    start = client.get("/oidc/authenticate/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, page(start)
    callback = sign_in(start["Location"], login)
    assert callback.startswith("http://testserver/oidc/callback/?"), callback
    return client, client.get(callback.removeprefix("http://testserver"))


def signed_in_user(client: Client):
    return client.get("/").wsgi_request.user


def test_first_sign_in_creates_the_account_from_the_claims(sso):
    client, response = sign_in_as("ada")

    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get()
    assert (user.username, user.email, user.first_name, user.last_name) == ("ada", "ada@example.com", "Ada", "Lovelace")
    assert not user.has_usable_password()
    assert signed_in_user(client) == user
    assert ExternalIdentity.objects.get().subject == "ada"
    assert ExternalIdentity.objects.get().issuer == sso.issuer


def test_the_next_page_is_where_a_sign_in_ends(sso):
    _client, response = sign_in_as("ada", next_url="/usage/")
    assert response["Location"] == "/usage/"


def test_a_second_sign_in_reuses_the_account(sso):
    sign_in_as("ada")
    client, response = sign_in_as("ada")

    assert response.status_code == 302
    assert User.objects.count() == 1 and ExternalIdentity.objects.count() == 1
    assert signed_in_user(client).username == "ada"


def test_the_groups_claim_joins_the_mapped_teams(sso, settings):
    engineering = factories.make_team(name="Engineering")
    factories.make_team(name="Sales")
    settings.CHAT_OIDC_TEAMS = {"engineering": "Engineering", "sales": "Sales"}

    sign_in_as("ada")

    membership = TeamMembership.objects.get(user__username="ada")
    assert (membership.team, membership.role) == (engineering, TeamMembership.Role.MEMBER)


def test_without_a_mapping_a_group_joins_the_team_of_its_name(sso):
    everyone = factories.make_team(name="everyone")
    sign_in_as("grace")
    assert list(User.objects.get(username="grace").teams.all()) == [everyone]


def test_groups_a_person_left_take_them_out_of_mapped_teams_when_asked(sso, settings):
    sales = factories.make_team(name="Sales")
    settings.CHAT_OIDC_TEAMS = {"engineering": "Engineering", "sales": "Sales"}
    sign_in_as("ada")
    ada = User.objects.get(username="ada")
    TeamMembership.objects.create(team=sales, user=ada)  # once in the sales group

    sign_in_as("ada")
    assert ada.teams.filter(name="Sales").exists(), "kept: removing is off by default"

    settings.CHAT_OIDC_TEAMS_REMOVE = True
    sign_in_as("ada")
    assert not ada.teams.filter(name="Sales").exists()


def test_with_account_creation_off_an_unknown_person_is_refused(sso, settings):
    settings.CHAT_OIDC_CREATE_USERS = False

    client, response = sign_in_as("grace")

    assert response.status_code == 403
    assert "There is no account for you here yet" in page(response)
    assert not User.objects.exists()
    assert not signed_in_user(client).is_authenticated


def test_with_invited_only_a_person_invited_by_email_gets_an_account_and_the_team(sso, settings):
    settings.CHAT_OIDC_CREATE_USERS = "invited"
    owner = factories.make_user(username="olive")
    research = factories.make_team(name="Research", owner=owner)

    _client, refused = sign_in_as("grace")
    assert refused.status_code == 403 and not User.objects.filter(email__iexact="grace@example.com").exists()

    invitation, _token = account_invitation_create(by=owner, team=research, email="Grace@example.com")
    client, response = sign_in_as("grace")

    assert response.status_code == 302
    grace = signed_in_user(client)
    assert grace.email == "grace@example.com" and research.members.filter(pk=grace.pk).exists()
    assert grace.profile.display_name == "Grace Hopper"
    invitation.refresh_from_db()
    assert invitation.accepted_by == grace, "the invitation is used, so its link no longer works"


def test_with_account_creation_off_an_account_with_the_verified_address_signs_in(sso, settings):
    settings.CHAT_OIDC_CREATE_USERS = False
    grace = factories.make_user(username="ghopper", email="Grace@Example.com")

    client, response = sign_in_as("grace")

    assert response.status_code == 302
    assert signed_in_user(client) == grace
    assert ExternalIdentity.objects.get().user == grace
    grace.refresh_from_db()
    assert (grace.username, grace.first_name) == ("ghopper", "Grace")


def test_an_unverified_address_never_opens_the_account_that_has_it(sso):
    boss = factories.make_user(username="admin", email="boss@example.com")

    client, response = sign_in_as("mallory")

    assert response.status_code == 302
    mallory = signed_in_user(client)
    assert mallory != boss
    assert mallory.username == "admin-2", "the provider's username 'admin' is not this site's admin"
    assert mallory.email == "", "an unverified address is not kept"


def test_a_turned_off_account_is_refused_with_a_reason(sso):
    sign_in_as("ada")
    User.objects.filter(username="ada").update(is_active=False)

    _client, response = sign_in_as("ada")

    assert response.status_code == 403
    assert "Your account here is turned off" in page(response)


def test_a_callback_with_a_state_this_browser_did_not_start_is_refused_readably(sso):
    client, _response = sign_in_as("ada")
    client.logout()
    start = Client().get("/oidc/authenticate/")  # another browser's sign-in
    callback = sign_in(start["Location"], "ada")
    client.get("/oidc/authenticate/")  # this browser has a sign-in of its own under way

    response = client.get(callback.removeprefix("http://testserver"))

    assert response.status_code == 403
    assert "Signing in did not work" in page(response)
    assert not signed_in_user(client).is_authenticated


def test_cancelling_at_the_provider_says_so(sso):
    client = Client()
    start = client.get("/oidc/authenticate/")
    state = re.search(r"state=([^&]+)", start["Location"]).group(1)

    response = client.get(f"/oidc/callback/?error=access_denied&state={state}")

    assert response.status_code == 403
    assert "The sign-in was cancelled" in page(response)


def test_a_provider_that_cannot_be_reached_gets_a_readable_page(sso, settings):
    settings.CHAT_OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"
    response = Client().get("/oidc/authenticate/")
    assert response.status_code == 503
    assert "cannot be reached" in page(response)


def test_single_sign_on_is_off_without_a_client_id():
    assert Client().get("/oidc/authenticate/").status_code == 404
    assert Client().get("/oidc/callback/?code=x&state=y").status_code == 404
    assert "Sign in with" not in page(Client().get("/accounts/login/"))


def test_the_login_page_offers_the_provider_beside_the_password_form(sso):
    html = page(Client().get("/accounts/login/?next=/usage/"))
    assert "Sign in with Test ID" in html
    assert 'href="/oidc/authenticate/?next=/usage/"' in html
    assert 'name="password"' in html


def test_without_a_label_the_button_says_single_sign_on(sso, settings):
    settings.CHAT_OIDC_LABEL = ""
    assert "Sign in with single sign-on" in page(Client().get("/accounts/login/"))


def test_the_button_and_a_refusal_speak_chinese(sso, settings):
    settings.CHAT_OIDC_CREATE_USERS = False
    client = Client(headers={"accept-language": "zh-hans"})
    assert "使用 Test ID 登录" in page(client.get("/accounts/login/"))
    _client, response = sign_in_as("grace", client=client)
    assert "你在这里还没有账户" in page(response)


def test_password_logins_turned_off(sso, settings):
    settings.CHAT_PASSWORD_LOGIN = False
    factories.make_user(username="alice")  # password "pw-alice"
    client = Client()

    html = page(client.get("/accounts/login/"))
    assert "Sign in with Test ID" in html and 'name="password"' not in html
    refused = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice"})
    assert refused.status_code == 403
    assert "Signing in with a password is turned off" in page(refused)
    assert not signed_in_user(client).is_authenticated

    admin_login = client.get("/admin/login/?next=/admin/")
    assert admin_login.status_code == 302 and admin_login["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    assert client.post("/admin/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302
    assert not signed_in_user(client).is_authenticated

    # No password to reset either: the link is gone and the reset pages do not answer.
    assert "password-reset" not in html
    assert client.post("/accounts/password-reset/", {"email": "alice@example.com"}).status_code == 404
    assert client.get("/accounts/reset/done/").status_code == 404

    _client, response = sign_in_as("ada")
    assert response.status_code == 302, "single sign-on still works"


def test_a_sign_in_is_not_counted_as_a_failed_login_and_a_refusal_is(sso, settings):
    sign_in_as("ada")
    assert not AccessAttempt.objects.exists()

    settings.CHAT_OIDC_CREATE_USERS = False
    sign_in_as("grace")
    assert AccessAttempt.objects.get().failures_since_start == 1


def test_logging_out_can_end_the_session_at_the_provider(sso, settings):
    settings.CHAT_OIDC_PROVIDER_LOGOUT = True
    settings.OIDC_STORE_ID_TOKEN = True
    client, _response = sign_in_as("ada")

    response = client.post("/accounts/logout/")

    assert response["Location"].startswith(f"{sso.issuer}/session/end?id_token_hint=")
    assert f"client_id={CLIENT_ID}" in response["Location"]
    assert not signed_in_user(client).is_authenticated
    # and the provider accepts it: its page asks to confirm logging out
    assert httpx.get(response["Location"]).status_code == 200


def test_logging_out_stays_here_by_default(sso):
    client, _response = sign_in_as("ada")
    response = client.post("/accounts/logout/")
    assert response["Location"] == "/accounts/login/"
    assert not signed_in_user(client).is_authenticated


def test_password_logins_work_while_the_provider_is_down(sso, settings):
    settings.CHAT_OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"
    factories.make_user(username="alice")
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302
    assert signed_in_user(client).username == "alice"


def test_a_discovery_document_for_another_issuer_is_refused(sso, settings):
    settings.CHAT_OIDC_ISSUER = sso.issuer.replace("127.0.0.1", "localhost")  # the same server, another name
    response = Client().get("/oidc/authenticate/")
    assert response.status_code == 503


# --- the claims -> account rules, without the provider ----------------------------------------


@pytest.fixture
def groups_claim(settings):
    settings.CHAT_OIDC_GROUPS_CLAIM = "groups"
    settings.CHAT_OIDC_TEAMS = {}


def test_a_username_is_made_from_what_the_claims_offer():
    factories.make_user(username="ada")
    assert sso_services.available_username({"preferred_username": "ada"}) == "ada-2"
    assert sso_services.available_username({"preferred_username": "Ada Lovelace!"}) == "AdaLovelace"
    assert sso_services.available_username({"email": "grace@example.com", "sub": "x"}) == "grace"
    assert sso_services.available_username({"sub": "00u1 abc"}) == "00u1abc"
    assert sso_services.available_username({"sub": "!!!"}) == "user"


def test_a_single_name_claim_becomes_the_first_name():
    user = sso_services.sso_sign_in(issuer="https://id.example.com", claims={"sub": "1", "name": "Grace Brewster Hopper"})
    assert (user.first_name, user.last_name, user.email) == ("Grace Brewster Hopper", "", "")


def test_names_and_a_verified_address_follow_the_provider_at_each_sign_in():
    claims = {"sub": "1", "given_name": "Ada", "email": "ada@old.example", "email_verified": True}
    user = sso_services.sso_sign_in(issuer="https://id.example.com", claims=claims)
    claims.update(given_name="Augusta", email="ada@new.example")
    again = sso_services.sso_sign_in(issuer="https://id.example.com", claims=claims)
    assert again == user
    user.refresh_from_db()
    assert (user.first_name, user.email) == ("Augusta", "ada@new.example")


def test_the_same_subject_at_another_issuer_is_another_person():
    first = sso_services.sso_sign_in(issuer="https://a.example.com", claims={"sub": "1", "preferred_username": "p"})
    second = sso_services.sso_sign_in(issuer="https://b.example.com", claims={"sub": "1", "preferred_username": "p"})
    assert first != second and second.username == "p-2"


def test_trusting_the_address_lets_a_provider_without_email_verified_match_accounts(settings):
    settings.CHAT_OIDC_CREATE_USERS = False
    grace = factories.make_user(username="grace", email="grace@example.com")
    claims = {"sub": "g", "email": "grace@example.com"}  # as Entra ID sends it: no email_verified
    with pytest.raises(sso_services.SignInRefused):
        sso_services.sso_sign_in(issuer="https://id.example.com", claims=claims)
    settings.CHAT_OIDC_TRUST_EMAIL = True
    assert sso_services.sso_sign_in(issuer="https://id.example.com", claims=claims) == grace


def test_two_accounts_with_the_address_are_refused_not_guessed():
    factories.make_user(username="one", email="dup@example.com")
    factories.make_user(username="two", email="DUP@example.com")
    with pytest.raises(sso_services.SignInRefused, match="Several accounts"):
        sso_services.sso_sign_in(issuer="https://id", claims={"sub": "d", "email": "dup@example.com", "email_verified": True})


def test_email_domains_limit_who_gets_a_new_account(settings):
    settings.CHAT_OIDC_EMAIL_DOMAINS = ["example.com"]
    inside = {"sub": "1", "email": "ada@Example.com", "email_verified": True}
    assert sso_services.may_create_account(inside)
    assert not sso_services.may_create_account({**inside, "email": "ada@gmail.com"})
    assert not sso_services.may_create_account({**inside, "email_verified": False})
    settings.CHAT_OIDC_CREATE_USERS = False
    assert not sso_services.may_create_account(inside)


def test_a_groups_claim_may_be_one_string(groups_claim):
    assert sso_services.claim_groups({"groups": "engineering"}) == ["engineering"]
    assert sso_services.claim_groups({"groups": ["a", "", None, "b"]}) == ["a", "b"]
    assert sso_services.claim_groups({}) == []


def test_teams_are_joined_never_made_and_an_owner_keeps_their_role(groups_claim):
    owner = factories.make_user(username="owner")
    engineering = factories.make_team(name="Engineering", owner=owner)

    sso_services.sso_teams_sync(user=owner, groups=["Engineering", "No such team"])

    assert TeamMembership.objects.get(user=owner).role == TeamMembership.Role.OWNER
    assert list(owner.teams.all()) == [engineering]
    assert not Team.objects.filter(name="No such team").exists()


def test_removing_by_groups_never_removes_an_owner(groups_claim, settings):
    settings.CHAT_OIDC_TEAMS = {"sales": "Sales"}
    settings.CHAT_OIDC_TEAMS_REMOVE = True
    owner = factories.make_user(username="owner")
    factories.make_team(name="Sales", owner=owner)
    sso_services.sso_teams_sync(user=owner, groups=[])
    assert owner.teams.filter(name="Sales").exists()


def test_the_settings_read_the_team_mapping_and_refuse_a_site_nobody_can_enter():
    def settings_of(**env: str) -> subprocess.CompletedProcess:
        code = "from django.conf import settings; print(settings.CHAT_OIDC_TEAMS)"
        clean = {key: value for key, value in os.environ.items() if not key.startswith(("CHAT_", "DJANGO_"))}
        return subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env={**clean, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
            capture_output=True, text=True, check=False,
        )

    mapped = settings_of(
        CHAT_OIDC_CLIENT_ID="c", CHAT_OIDC_ISSUER="https://id.example.com", CHAT_OIDC_TEAMS="eng = Engineering;x=;ops=Ops team"
    )
    assert mapped.stdout.strip() == "{'eng': 'Engineering', 'ops': 'Ops team'}", mapped.stderr
    refused = settings_of(CHAT_PASSWORD_LOGIN="false")
    assert refused.returncode != 0 and "CHAT_PASSWORD_LOGIN=false needs single sign-on" in refused.stderr


def test_an_address_locked_out_by_wrong_passwords_gets_the_lockout_page_from_the_callback(sso, settings):
    settings.AXES_FAILURE_LIMIT = 2
    factories.make_user(username="alice")
    client = Client()
    for _attempt in range(2):
        client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    _client, response = sign_in_as("ada", client=client)

    assert response.status_code == 429
    assert "Too many failed logins" in page(response)
    assert not User.objects.filter(username="ada").exists()

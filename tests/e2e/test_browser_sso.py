"""Single sign-on in a real browser: Chromium, the app under daphne and a real OpenID Connect provider
(tests/oidc/provider.mjs) on 127.0.0.1. A person clicks "Sign in with Test ID", logs in at the provider,
consents, and comes back signed in to an account made from the provider's claims."""

import json

import httpx
import pytest

from tests.e2e.browser import by_id, css, replaced, require_chromium, screenshot, waiter
from tests.e2e.live import demo_app, manage
from tests.helpers import free_port
from tests.oidc_provider import OIDCProvider

pytestmark = pytest.mark.browser

OPEN_PORT, CLOSED_PORT = free_port(), free_port()
# The apps' teams: one the engineering group maps to, and one nobody's groups lead to.
TEAMS = "from conversations.models import Team\nTeam.objects.create(name='Engineering')\nTeam.objects.create(name='Sales')"


@pytest.fixture(scope="module")
def provider():
    require_chromium()
    uris = [f"http://127.0.0.1:{port}/oidc/callback/" for port in (OPEN_PORT, CLOSED_PORT)]
    with OIDCProvider(redirect_uris=uris) as running:
        yield running


@pytest.fixture(scope="module")
def open_app(provider, tmp_path_factory):
    """Accounts are made at the first sign-in; the engineering group joins Engineering."""
    env = provider.app_env(CHAT_OIDC_TEAMS="engineering=Engineering;sales=Sales")
    directory = tmp_path_factory.mktemp("browser-sso")
    with demo_app(directory, users=[], demo_delay="0.02", setup=TEAMS, env=env, port=OPEN_PORT) as server:
        yield server


@pytest.fixture(scope="module")
def closed_app(provider, tmp_path_factory):
    """Only existing accounts sign in, and only through the provider: no passwords."""
    env = provider.app_env(CHAT_OIDC_CREATE_USERS="false", CHAT_PASSWORD_LOGIN="false")
    directory = tmp_path_factory.mktemp("browser-sso-closed")
    users = [("keeper", "keeper-password-123")]
    with demo_app(directory, users=users, demo_delay="0.02", env=env, port=CLOSED_PORT) as server:
        yield server


def accounts(server) -> list[dict]:
    """Every account in the app's database, with its teams."""
    code = (
        "import json\nfrom django.contrib.auth import get_user_model\n"
        "print(json.dumps([{'username': u.username, 'email': u.email, 'first_name': u.first_name,"
        " 'last_name': u.last_name, 'teams': sorted(t.name for t in u.teams.all())}"
        " for u in get_user_model().objects.order_by('pk')]))"
    )
    return json.loads(manage(server.env, "shell", "--no-imports", "--command", code).strip().splitlines()[-1])


def sign_in_at_provider(driver, server, login: str) -> None:
    """From the app's login page: click the button, log in at the provider and consent if it asks, and
    wait until the browser is back at the app."""
    driver.get(server.url + "/accounts/login/")
    button = by_id(driver, "sso-sign-in")
    assert button.text == "Sign in with Test ID"
    page = driver.find_element("tag name", "html")
    button.click()
    waiter(driver).until(replaced(page), "the provider's page")
    for _step in range(3):
        waiter(driver).until(
            lambda d: d.current_url.startswith(server.url) or css(d, "button.login-submit"), "a provider page or the app"
        )
        if driver.current_url.startswith(server.url):
            return
        if css(driver, "input[name=login]"):  # the provider's login form
            driver.find_element("css selector", "input[name=login]").send_keys(login)
            driver.find_element("css selector", "input[name=password]").send_keys("any password")
        page = driver.find_element("tag name", "html")
        driver.find_element("css selector", "button.login-submit").click()  # "Sign-in", then consent's "Continue"
        waiter(driver).until(replaced(page), "the next page")
    raise AssertionError(f"never came back to the app: {driver.current_url}")


def test_signing_in_through_the_provider_creates_the_account(open_app, open_browser):
    driver = open_browser(1000, 700)  # wide enough for the sidebar and its "Log out"
    driver.get(open_app.url + "/accounts/login/")
    assert css(driver, "#id_password"), "password logins are on here, beside the button"
    screenshot(driver, "login-sso.png")

    sign_in_at_provider(driver, open_app, "ada")

    waiter(driver).until(lambda d: css(d, "#new-chat-input"), "the home page, signed in")
    assert accounts(open_app) == [
        {
            "username": "ada",
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "teams": ["Engineering"],
        }
    ]
    driver.get(open_app.url + "/teams/")
    assert "Engineering" in driver.find_element("tag name", "body").text

    # Log out, and sign in again: the same account (the provider remembers her, so no password this time).
    page = driver.find_element("tag name", "html")
    driver.find_element("css selector", "form[action='/accounts/logout/'] button").click()
    waiter(driver).until(replaced(page), "the login page")
    assert css(driver, "#sso-sign-in")
    sign_in_at_provider(driver, open_app, "ada")
    waiter(driver).until(lambda d: css(d, "#new-chat-input"), "signed in again")
    assert [account["username"] for account in accounts(open_app)] == ["ada"]


def test_with_account_creation_off_an_unknown_person_is_refused(closed_app, browser):
    driver = browser
    sign_in_at_provider(driver, closed_app, "grace")

    message = waiter(driver).until(lambda d: css(d, ".sso-error"), "the refusal")[0].text
    assert "There is no account for you here yet" in message
    assert [account["username"] for account in accounts(closed_app)] == ["keeper"], "no account was made"

    # Back to the login page, which has no password form here.
    page = driver.find_element("tag name", "html")
    driver.find_element("link text", "Back to the login page").click()
    waiter(driver).until(replaced(page), "the login page")
    assert css(driver, "#sso-sign-in") and not css(driver, "#id_password")


def test_with_password_logins_off_the_form_is_gone_and_a_post_refused(closed_app, browser):
    driver = browser
    driver.get(closed_app.url + "/admin/")
    waiter(driver).until(lambda d: css(d, "#sso-sign-in"), "the admin sends people to the login page")
    assert not css(driver, "#id_password")

    with httpx.Client(base_url=closed_app.url) as client:
        # The page has no form, so no CSRF cookie either: a script sets its own (Django accepts any matching pair).
        token = "a" * 32
        client.cookies.set("csrftoken", token, domain="127.0.0.1")
        refused = client.post(
            "/accounts/login/",
            data={"username": "keeper", "password": "keeper-password-123", "csrfmiddlewaretoken": token},
            headers={"Referer": closed_app.url + "/accounts/login/"},
        )
        assert refused.status_code == 403
        assert "Signing in with a password is turned off" in refused.text
        assert client.get("/", follow_redirects=False).status_code == 302, "still logged out"

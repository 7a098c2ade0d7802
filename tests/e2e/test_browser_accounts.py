"""People's accounts in real headless Chromium against a real daphne process: the profile page (name, theme,
password), the language switcher (visitors and people), invitations by link and by email, and password reset.

The server's email goes to files (EMAIL_URL=file://…), which the tests read as a person reads their inbox.
"""

import re
import time
from pathlib import Path

import pytest

from tests.e2e.browser import by_id, css, enter, log_in, replaced, require_chromium, severe_errors, waiter
from tests.e2e.live import demo_app

pytestmark = pytest.mark.browser

# Each test has people of its own, so that what one changes (a password, a language) leaves the others alone.
PAM, LEO, PAT, OLIVE, RITA, ADA, JO = (
    ("pam", "pam-password-123"),
    ("leo", "leo-password-123"),
    ("pat", "pat-password-123"),
    ("olive", "olive-password-123"),
    ("rita", "rita-password-123"),
    ("ada", "ada-password-123"),
    ("jo", "jo-password-123"),
)
NEW_PASSWORD = "heron-lantern-5821"

SETUP = """
from django.contrib.auth import get_user_model
from conversations.models import Team, TeamMembership
people = get_user_model().objects
team = Team.objects.create(name="Otters")
TeamMembership.objects.create(team=team, user=people.get(username="olive"), role="owner")
people.filter(username="rita").update(email="rita@example.com")
people.filter(username="ada").update(is_staff=True, is_superuser=True)
"""


@pytest.fixture(scope="module")
def accounts_app(tmp_path_factory):
    require_chromium()
    directory = tmp_path_factory.mktemp("browser-accounts")
    mailbox = directory / "mail"
    mailbox.mkdir()
    with demo_app(
        directory, users=[PAM, LEO, PAT, OLIVE, RITA, ADA, JO], demo_delay="0.01", setup=SETUP, env={"EMAIL_URL": f"file://{mailbox}"}
    ) as server:
        server.mailbox = mailbox
        yield server


def mail_to(mailbox: Path, address: str, timeout: float = 10.0) -> str:
    """The text of the latest email to `address` that the server wrote (one file per email)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [path for path in sorted(mailbox.iterdir()) if f"To: {address}" in path.read_text()]
        if found:
            return found[-1].read_text()
        time.sleep(0.1)
    raise AssertionError(f"no email to {address}")


def link_in(text: str) -> str:
    return re.search(r"^(http://\S+)$", text, re.MULTILINE).group(1)


def html(driver, attribute: str) -> str:
    return driver.find_element("tag name", "html").get_attribute(attribute)


def submit(driver, form_id: str) -> None:
    """Press the form's submit button, and wait for the page it leads to."""
    page = driver.find_element("tag name", "html")
    css(driver, f"#{form_id} button[type=submit]")[0].click()
    waiter(driver).until(replaced(page), f"the page after {form_id}")


def click_and_wait(driver, selector: str) -> None:
    page = driver.find_element("tag name", "html")
    css(driver, selector)[0].click()
    waiter(driver).until(replaced(page), f"the page after clicking {selector}")


def test_profile_saves_the_display_name_and_the_theme(accounts_app, open_browser):
    from selenium.webdriver.support.ui import Select

    driver = open_browser()
    log_in(driver, accounts_app.url, *PAM)
    assert html(driver, "data-theme") == "system"
    click_and_wait(driver, "#profile-link")
    enter(driver, "id_display_name", "Pam the Otter")
    Select(by_id(driver, "id_theme")).select_by_value("dark")
    submit(driver, "profile-form")
    assert by_id(driver, "profile-link").text == "Pam the Otter"
    assert html(driver, "data-theme") == "dark"
    assert "Your profile is saved." in driver.page_source
    driver.get(accounts_app.url + "/")
    assert html(driver, "data-theme") == "dark", "the theme holds on every page"
    assert not severe_errors(driver)


def test_a_person_switches_to_chinese_and_back(accounts_app, open_browser):
    driver = open_browser()
    log_in(driver, accounts_app.url, *LEO)
    assert html(driver, "lang") == "en"
    click_and_wait(driver, '.account .language-switch button[value="zh-hans"]')
    assert html(driver, "lang") == "zh-hans"
    assert css(driver, "#new-chat-input"), "back on the page it was switched from"
    # Saved on the profile: another browser, whose own language is English, shows Chinese once logged in.
    other = open_browser()
    log_in(other, accounts_app.url, *LEO)
    assert html(other, "lang") == "zh-hans"
    click_and_wait(driver, '.account .language-switch button[value="en"]')
    assert html(driver, "lang") == "en"


def test_a_visitor_switches_the_login_page_language(accounts_app, open_browser):
    driver = open_browser()
    driver.get(accounts_app.url + "/accounts/login/")
    assert html(driver, "lang") == "en"
    click_and_wait(driver, '.language-switch button[value="zh-hans"]')
    assert html(driver, "lang") == "zh-hans" and "/accounts/login/" in driver.current_url
    assert driver.get_cookie("chat_language")["value"] == "zh-hans"
    click_and_wait(driver, '.language-switch button[value="en"]')
    assert html(driver, "lang") == "en"


def test_a_person_changes_their_password_and_logs_in_with_it(accounts_app, open_browser):
    driver = open_browser()
    log_in(driver, accounts_app.url, *PAT)
    click_and_wait(driver, "#profile-link")
    enter(driver, "id_old_password", PAT[1])
    enter(driver, "id_new_password1", NEW_PASSWORD)
    enter(driver, "id_new_password2", NEW_PASSWORD)
    submit(driver, "password-form")
    assert "Your password is changed." in driver.page_source
    assert css(driver, "#profile-link"), "still logged in"
    click_and_wait(driver, '.account form[action="/accounts/logout/"] button')
    log_in(driver, accounts_app.url, PAT[0], NEW_PASSWORD)


def accept_invitation(driver, link: str, username: str, password: str) -> None:
    driver.get(link)
    assert "Otters" in driver.find_element("tag name", "h1").text
    enter(driver, "id_username", username)
    enter(driver, "id_display_name", username.title())
    enter(driver, "id_password1", password)
    enter(driver, "id_password2", password)
    submit(driver, "invitation-form")


def open_team_page(driver, base_url: str) -> None:
    """From the Teams page, the team's own page (the owner's only team)."""
    driver.get(base_url + "/teams/")
    click_and_wait(driver, 'a[href^="/teams/"][href$="/"]:not([href="/teams/"])')


def new_link(owner) -> str:
    """Press Invite with no address: the link the page shows once."""
    submit(owner, "account-invitation-form")
    link = by_id(owner, "new-invitation-link").get_attribute("value")
    assert "/invite/" in link
    return link


def test_an_owner_invites_by_link_and_the_new_person_lands_in_the_team(accounts_app, open_browser):
    owner = open_browser()
    log_in(owner, accounts_app.url, *OLIVE)
    open_team_page(owner, accounts_app.url)
    team_url = owner.current_url
    link = new_link(owner)

    newcomer = open_browser()
    accept_invitation(newcomer, link, "nina", NEW_PASSWORD)
    assert newcomer.current_url == team_url
    assert "Welcome to Otters!" in newcomer.page_source
    assert "nina (you)" in newcomer.find_element("css selector", "table.members").text
    # The link worked once.
    stranger = open_browser()
    stranger.get(link)
    assert "used already" in stranger.find_element("tag name", "h1").text


def test_an_owner_invites_by_email_and_the_link_in_it_makes_the_account(accounts_app, open_browser):
    owner = open_browser()
    log_in(owner, accounts_app.url, *OLIVE)
    open_team_page(owner, accounts_app.url)
    enter(owner, "id_email", "ed@example.com")
    submit(owner, "account-invitation-form")
    assert "An invitation was sent to ed@example.com." in owner.page_source
    assert "ed@example.com" in by_id(owner, "account-invitations").text

    newcomer = open_browser()
    accept_invitation(newcomer, link_in(mail_to(accounts_app.mailbox, "ed@example.com")), "ed", NEW_PASSWORD)
    assert "Welcome to Otters!" in newcomer.page_source
    owner.refresh()
    assert not css(owner, "#account-invitations"), "an invitation used is no longer pending"


def test_password_reset_from_the_login_page_through_the_email(accounts_app, open_browser):
    driver = open_browser()
    driver.get(accounts_app.url + "/accounts/login/")
    click_and_wait(driver, 'a[href="/accounts/password-reset/"]')
    enter(driver, "id_email", "rita@example.com")
    submit(driver, "password-reset-form")
    assert css(driver, "#password-reset-sent")
    driver.get(link_in(mail_to(accounts_app.mailbox, "rita@example.com")))
    enter(driver, "id_new_password1", NEW_PASSWORD)
    enter(driver, "id_new_password2", NEW_PASSWORD)
    submit(driver, "password-set-form")
    click_and_wait(driver, "#password-reset-login")
    log_in(driver, accounts_app.url, RITA[0], NEW_PASSWORD)


def test_an_owner_revokes_a_link_and_it_stops_working(accounts_app, open_browser):
    owner = open_browser()
    log_in(owner, accounts_app.url, *OLIVE)
    open_team_page(owner, accounts_app.url)
    link = new_link(owner)
    open_team_page(owner, accounts_app.url)
    rows = len(css(owner, "#account-invitations tbody tr"))
    click_and_wait(owner, "#account-invitations tbody tr:first-child button[type=submit]")
    assert "its link no longer works" in owner.page_source
    assert len(css(owner, "#account-invitations tbody tr")) == rows - 1
    visitor = open_browser()
    visitor.get(link)
    assert "withdrawn" in visitor.find_element("tag name", "h1").text


def test_someone_logged_in_joins_the_team_with_their_account(accounts_app, open_browser):
    owner = open_browser()
    log_in(owner, accounts_app.url, *OLIVE)
    open_team_page(owner, accounts_app.url)
    team_url = owner.current_url
    link = new_link(owner)
    jo = open_browser()
    log_in(jo, accounts_app.url, *JO)
    jo.get(link)
    click_and_wait(jo, "#join-with-account")
    assert jo.current_url == team_url
    assert "jo (you)" in jo.find_element("css selector", "table.members").text


def test_an_admin_makes_an_invitation_in_the_admin(accounts_app, open_browser):
    from selenium.webdriver.support.ui import Select

    admin = open_browser()
    log_in(admin, accounts_app.url, *ADA)
    admin.get(accounts_app.url + "/admin/conversations/accountinvitation/add/")
    Select(by_id(admin, "id_team")).select_by_visible_text("Otters")
    click_and_wait(admin, 'input[name="_save"]')
    link = by_id(admin, "admin-invitation-link").text
    newcomer = open_browser()
    accept_invitation(newcomer, link, "ivy", NEW_PASSWORD)
    assert "Welcome to Otters!" in newcomer.page_source

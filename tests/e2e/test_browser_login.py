"""Guessing passwords in a real browser: the login form locks up after CHAT_LOGIN_FAILURES wrong passwords."""

import pytest

from tests.e2e.browser import by_id, css, replaced, require_chromium, waiter
from tests.e2e.live import demo_app

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "lou", "lou-password-123"


@pytest.fixture(scope="module")
def login_app(tmp_path_factory):
    """Its own app: a lockout keys on the address too, and would lock the other browser tests out."""
    require_chromium()
    with demo_app(tmp_path_factory.mktemp("browser-login"), users=[(USERNAME, PASSWORD)], demo_delay="0.02") as server:
        yield server


def submit_login(driver, base_url: str, password: str) -> None:
    from selenium.webdriver.common.keys import Keys

    driver.get(base_url + "/accounts/login/")
    page = driver.find_element("tag name", "html")
    by_id(driver, "id_username").send_keys(USERNAME)
    by_id(driver, "id_password").send_keys(password + Keys.ENTER)
    # The answer is another page: wait for it, not for the login page still there on a loaded machine.
    waiter(driver).until(replaced(page), "the page after logging in")
    waiter(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def test_ten_wrong_passwords_lock_the_login(login_app, browser):
    for attempt in range(9):
        submit_login(browser, login_app.url, f"wrong-{attempt}")
        assert css(browser, ".login-form .form-error"), "the form says the password was wrong"
    submit_login(browser, login_app.url, "wrong-again")
    waiter(browser).until(lambda d: "Too many failed logins" in d.page_source, "the lockout page")
    assert "Try again in 15 minutes" in browser.page_source

    submit_login(browser, login_app.url, PASSWORD)  # the right one, now refused too
    waiter(browser).until(lambda d: "Too many failed logins" in d.page_source, "still locked")
    assert not css(browser, "#new-chat-input")

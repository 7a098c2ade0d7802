"""The product as a person uses it: real headless Chromium against a real daphne process."""

import os
import shutil
import time

import pytest

from tests.e2e.live import LiveServer, app_env, manage, seed_users

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def require_chromium() -> None:
    if shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER):
        return
    message = "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """The app served by daphne from a fresh SQLite file, with the demo model and one person."""
    require_chromium()
    database = tmp_path_factory.mktemp("browser") / "db.sqlite3"
    env = app_env(f"sqlite:///{database}", CHAT_DEMO_DELAY="0.02")
    manage(env, "migrate", "--no-input")
    manage(env, "collectstatic", "--no-input", "--verbosity", "0")
    seed_users(env, [("bea", "bea-password-123")])
    with LiveServer(env) as server:
        yield server


def new_chrome(window_size: str = "420,900"):
    """A headless Chromium with its own profile (cookies, storage); the caller quits it."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={window_size}",
    ):
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch anything
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    return driver


@pytest.fixture
def browser():
    driver = new_chrome("420,900")  # phone width
    yield driver
    driver.quit()


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def last_reply(driver):
    from selenium.webdriver.common.by import By

    replies = driver.find_elements(By.CSS_SELECTOR, "li.message--assistant")
    return replies[-1] if replies else None


def log_in(driver, base_url: str, username: str = "bea", password: str = "bea-password-123") -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(base_url + "/accounts/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password + Keys.ENTER)
    wait_until(lambda: driver.find_elements(By.ID, "new-chat-input"))


def test_log_in_send_and_watch_the_reply_stream(live_app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    log_in(browser, live_app.url)
    assert "offline demo model" in browser.page_source
    browser.find_element(By.ID, "new-chat-input").send_keys("Hello from Chromium" + Keys.ENTER)
    wait_until(lambda: "/c/" in browser.current_url)

    # Typewriter: the reply is seen streaming, as text, and growing, before it completes.
    lengths = []

    def streaming_text_grew():
        reply = last_reply(browser)
        if reply is not None and reply.get_attribute("data-status") == "streaming":
            lengths.append(len(reply.find_element(By.CSS_SELECTOR, ".message-body").text))
        return len(set(length for length in lengths if length > 0)) >= 3

    wait_until(streaming_text_grew)
    assert browser.find_element(By.ID, "stop-button").is_displayed()

    wait_until(lambda: last_reply(browser).get_attribute("data-status") == "complete", timeout=30)
    body = last_reply(browser).find_element(By.CSS_SELECTOR, ".message-body")
    assert body.find_element(By.TAG_NAME, "strong").text == "Demo model"
    assert "Hello from Chromium" in body.find_element(By.TAG_NAME, "blockquote").text
    assert body.find_elements(By.CSS_SELECTOR, "pre.highlight code.language-python")
    assert not browser.find_element(By.ID, "stop-button").is_displayed()
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_reload_mid_reply_loses_nothing_and_stop_keeps_text(live_app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    log_in(browser, live_app.url)
    browser.find_element(By.ID, "new-chat-input").send_keys("Reload me" + Keys.ENTER)
    wait_until(lambda: "/c/" in browser.current_url)
    wait_until(
        lambda: last_reply(browser) is not None
        and len(last_reply(browser).find_element(By.CSS_SELECTOR, ".message-body").text) > 40
    )
    browser.refresh()  # mid-reply: the page renders the saved text, the socket brings the rest
    wait_until(lambda: last_reply(browser).get_attribute("data-status") == "complete", timeout=30)
    text = last_reply(browser).find_element(By.CSS_SELECTOR, ".message-body").text
    assert text.startswith("Demo model (offline)") and "Reload me" in text
    assert text.count("Demo model (offline)") == 1  # nothing repeated

    composer = browser.find_element(By.ID, "composer-input")
    composer.send_keys("Now stop this one" + Keys.ENTER)
    wait_until(
        lambda: last_reply(browser).get_attribute("data-status") == "streaming"
        and len(last_reply(browser).find_element(By.CSS_SELECTOR, ".message-body").text) > 20
    )
    browser.find_element(By.ID, "stop-button").click()
    wait_until(lambda: last_reply(browser).get_attribute("data-status") == "stopped")
    kept = last_reply(browser).find_element(By.CSS_SELECTOR, ".message-body").text
    assert kept.startswith("Demo model")
    browser.refresh()
    reply = wait_until(lambda: last_reply(browser))
    assert reply.get_attribute("data-status") == "stopped"
    assert reply.find_element(By.CSS_SELECTOR, ".message-body").text == kept


def test_dropped_connection_shows_offline_then_reconnects_by_itself(live_app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    log_in(browser, live_app.url)
    box = browser.find_element(By.ID, "new-chat-input")
    box.send_keys("first line")
    box.send_keys(Keys.SHIFT, Keys.ENTER)  # a new line, not a send
    box.send_keys("second line" + Keys.ENTER)
    wait_until(lambda: "/c/" in browser.current_url)
    user_message = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "li.message--user"))[0]
    assert user_message.text == "first line\nsecond line"
    wait_until(lambda: last_reply(browser) is not None and last_reply(browser).get_attribute("data-status") == "complete")

    # The badge may come and go while restart() waits for the new server, so the page records it.
    browser.execute_script(
        """
        const status = document.getElementById("connection-status");
        window.wentOffline = false;
        new MutationObserver(() => { if (!status.hidden) window.wentOffline = true; })
          .observe(status, {attributes: true, attributeFilter: ["hidden"]});
        """
    )
    live_app.restart()  # every socket drops while the server is away
    status = browser.find_element(By.ID, "connection-status")
    wait_until(lambda: browser.execute_script("return window.wentOffline"), timeout=10)  # "Offline, reconnecting…"
    wait_until(lambda: not status.is_displayed(), timeout=20)  # back, without a reload

    browser.find_element(By.ID, "composer-input").send_keys("after the reconnect" + Keys.ENTER)
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "li.message--assistant")) == 2)
    wait_until(lambda: last_reply(browser).get_attribute("data-status") == "complete", timeout=30)
    assert "after the reconnect" in last_reply(browser).text

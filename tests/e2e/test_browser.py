"""The product as a person uses it: real headless Chromium against a real daphne process."""

import pytest

from tests.e2e.browser import last_reply, log_in, require_chromium, severe_errors, waiter
from tests.e2e.live import demo_app

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "bea", "bea-password-123"


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """The app served by daphne with the demo model and one person."""
    require_chromium()
    with demo_app(tmp_path_factory.mktemp("browser"), users=[(USERNAME, PASSWORD)], demo_delay="0.02") as server:
        yield server


def test_log_in_send_and_watch_the_reply_stream(live_app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    log_in(browser, live_app.url, USERNAME, PASSWORD)
    assert "offline demo model" in browser.page_source
    browser.find_element(By.ID, "new-chat-input").send_keys("Hello from Chromium" + Keys.ENTER)
    waiter(browser).until(lambda d: "/c/" in d.current_url)

    # Typewriter: the reply is seen streaming, as text, and growing, before it completes.
    lengths = []

    def streaming_text_grew(driver):
        reply = last_reply(driver)
        if reply is not None and reply.get_attribute("data-status") == "streaming":
            lengths.append(len(reply.find_element(By.CSS_SELECTOR, ".message-body").text))
        return len({length for length in lengths if length > 0}) >= 3

    waiter(browser).until(streaming_text_grew)
    assert browser.find_element(By.ID, "stop-button").is_displayed()

    waiter(browser, 30).until(lambda d: last_reply(d).get_attribute("data-status") == "complete")
    body = last_reply(browser).find_element(By.CSS_SELECTOR, ".message-body")
    assert body.find_element(By.TAG_NAME, "strong").text == "Demo model"
    assert "Hello from Chromium" in body.find_element(By.TAG_NAME, "blockquote").text
    assert body.find_elements(By.CSS_SELECTOR, "pre.highlight code.language-python")
    assert not browser.find_element(By.ID, "stop-button").is_displayed()
    assert severe_errors(browser) == []


def test_reload_mid_reply_loses_nothing_and_stop_keeps_text(live_app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    log_in(browser, live_app.url, USERNAME, PASSWORD)
    browser.find_element(By.ID, "new-chat-input").send_keys("Reload me" + Keys.ENTER)
    waiter(browser).until(lambda d: "/c/" in d.current_url)
    waiter(browser).until(
        lambda d: last_reply(d) is not None
        and len(last_reply(d).find_element(By.CSS_SELECTOR, ".message-body").text) > 40
    )
    browser.refresh()  # mid-reply: the page renders the saved text, the socket brings the rest
    waiter(browser, 30).until(lambda d: last_reply(d).get_attribute("data-status") == "complete")
    text = last_reply(browser).find_element(By.CSS_SELECTOR, ".message-body").text
    assert text.startswith("Demo model (offline)") and "Reload me" in text
    assert text.count("Demo model (offline)") == 1  # nothing repeated

    composer = browser.find_element(By.ID, "composer-input")
    composer.send_keys("Now stop this one" + Keys.ENTER)
    waiter(browser).until(
        lambda d: last_reply(d).get_attribute("data-status") == "streaming"
        and len(last_reply(d).find_element(By.CSS_SELECTOR, ".message-body").text) > 20
    )
    browser.find_element(By.ID, "stop-button").click()
    waiter(browser).until(lambda d: last_reply(d).get_attribute("data-status") == "stopped")
    kept = last_reply(browser).find_element(By.CSS_SELECTOR, ".message-body").text
    assert kept.startswith("Demo model")
    browser.refresh()
    reply = waiter(browser).until(last_reply)
    assert reply.get_attribute("data-status") == "stopped"
    assert reply.find_element(By.CSS_SELECTOR, ".message-body").text == kept


def test_dropped_connection_shows_offline_then_reconnects_by_itself(live_app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    log_in(browser, live_app.url, USERNAME, PASSWORD)
    box = browser.find_element(By.ID, "new-chat-input")
    box.send_keys("first line")
    box.send_keys(Keys.SHIFT, Keys.ENTER)  # a new line, not a send
    box.send_keys("second line" + Keys.ENTER)
    waiter(browser).until(lambda d: "/c/" in d.current_url)
    user_message = waiter(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "li.message--user"))[0]
    assert user_message.find_element(By.CSS_SELECTOR, ".message-body").text == "first line\nsecond line"
    waiter(browser).until(
        lambda d: last_reply(d) is not None and last_reply(d).get_attribute("data-status") == "complete"
    )

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
    waiter(browser, 10).until(lambda d: d.execute_script("return window.wentOffline"))  # "Offline, reconnecting…"
    waiter(browser, 20).until(lambda d: not status.is_displayed())  # back, without a reload

    browser.find_element(By.ID, "composer-input").send_keys("after the reconnect" + Keys.ENTER)
    waiter(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.message--assistant")) == 2)
    waiter(browser, 30).until(lambda d: last_reply(d).get_attribute("data-status") == "complete")
    assert "after the reconnect" in last_reply(browser).text

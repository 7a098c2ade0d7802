"""Simplified Chinese in real headless Chromium against a real daphne process: a person whose language cookie
says zh-hans reads Chinese from the server's pages, from what chat.js writes (the JS catalog), from the demo
model's reply and from the websocket's error frames."""

import pytest

from tests.e2e.browser import by_id, css, log_in, severe_errors, waiter
from tests.e2e.live import demo_app
from tests.e2e.test_browser_conversation import wait_for_reply

pytestmark = pytest.mark.browser

READER = ("lin", "lin-password-123")


@pytest.fixture(scope="module")
def i18n_app(tmp_path_factory):
    with demo_app(tmp_path_factory.mktemp("browser-i18n"), users=[READER], demo_delay="0.01") as server:
        yield server


def test_a_person_reading_chinese_gets_chinese_from_pages_scripts_the_model_and_the_socket(i18n_app, open_browser):
    from selenium.webdriver.common.keys import Keys

    browser = open_browser()
    browser.get(i18n_app.url + "/accounts/login/")
    browser.add_cookie({"name": "chat_language", "value": "zh-hans", "path": "/"})
    log_in(browser, i18n_app.url, *READER)
    assert browser.find_element("tag name", "html").get_attribute("lang") == "zh-hans"
    assert by_id(browser, "new-chat-input").get_attribute("placeholder").startswith("输入消息")

    by_id(browser, "new-chat-input").send_keys("你好" + Keys.ENTER)
    wait_for_reply(browser, "complete", 1)
    reply = css(browser, "li.message--assistant")[-1]
    assert "演示模型" in reply.find_element("css selector", ".message-body").text  # the demo model answers in Chinese
    # The line under the reply is written by chat.js, with the JS catalog's ngettext and Intl's date.
    waiter(browser).until(lambda d: "个 token" in reply.find_element("css selector", ".message-meta").text, "a meta line")

    # An error frame, for a frame no page sends, arrives worded in the socket's language (the cookie's).
    message = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const chat = document.getElementById("chat");
        const socket = new WebSocket(location.origin.replace(/^http/, "ws") + chat.dataset.socketPath);
        socket.onopen = () => socket.send(JSON.stringify({type: "dance"}));
        socket.onmessage = (event) => {
          const frame = JSON.parse(event.data);
          if (frame.type === "error") { socket.close(); done(frame.message); }
        };
        setTimeout(() => done("no error frame"), 8000);
        """
    )
    assert message.startswith("未知的帧类型"), message
    assert severe_errors(browser) == []

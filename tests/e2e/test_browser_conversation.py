"""A conversation's own menus as a person uses them, in real headless Chromium against a real daphne process:
Settings (apply a preset, save a temperature and a system prompt), the line under a cut-off or failed reply,
a password-protected public link, rename and delete.

The model is tests/fake_openai.py on loopback, so a test can script what it answers and read what it was sent.
"""

import pytest

from tests.e2e.browser import by_id, choose, css, enter, flash, last_reply, log_in, require_chromium, severe_errors, waiter
from tests.e2e.live import demo_app
from tests.fake_openai import error, reply

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "cal", "cal-password-123"

SETUP = """
from conversations.models import ModelConfig, Preset, Provider
provider = Provider.objects.create(name="Fake", base_url={base_url!r}, timeout=10, allow_internal=True)  # on 127.0.0.1
ModelConfig.objects.create(
    display_name="Tunable", provider=provider, model="fake-model", is_default=True,
    allow_custom_temperature=True, temperature_min=0.0, temperature_max=1.5, allow_custom_system_prompt=True,
)
Preset.objects.create(name="Poet", temperature=0.9, system_prompt="Answer in verse.")
"""


@pytest.fixture(scope="module")
def fake_model_app(tmp_path_factory, fake_openai_server):
    """The app with one model, answered by the fake server, that lets people set their own settings."""
    require_chromium()
    directory = tmp_path_factory.mktemp("browser-conversation")
    setup = SETUP.format(base_url=fake_openai_server.base_url)
    with demo_app(directory, users=[(USERNAME, PASSWORD)], demo_delay="0.02", setup=setup) as server:
        yield server


def start_chat(driver, base_url: str, text: str) -> None:
    """Log in, start a chat from the home page and wait for its first reply."""
    from selenium.webdriver.common.keys import Keys

    log_in(driver, base_url, USERNAME, PASSWORD)
    by_id(driver, "new-chat-input").send_keys(text + Keys.ENTER)
    waiter(driver).until(lambda d: "/c/" in d.current_url)
    wait_for_reply(driver, "complete")


def wait_for_reply(driver, status: str, count: int | None = None) -> None:
    def ended(d) -> bool:
        replies = css(d, "li.message--assistant")
        return (count is None or len(replies) == count) and bool(replies) and replies[-1].get_attribute("data-status") == status

    waiter(driver, 20).until(ended, f"a reply ending {status}")


def send(driver, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    by_id(driver, "composer-input").send_keys(text + Keys.ENTER)


def open_menu(driver, menu_id_or_selector: str) -> None:
    """Open a <details> menu (Settings, ⋯) by clicking its summary, as a person does."""
    summary = css(driver, f"{menu_id_or_selector} > summary")[0]
    if summary.find_element("xpath", "..").get_attribute("open") is None:
        summary.click()


def submit(driver, form_selector: str) -> None:
    css(driver, f"{form_selector} button[type=submit]")[0].click()


def test_apply_a_preset_then_save_own_settings_and_the_next_reply_uses_them(fake_model_app, browser, upstream):
    start_chat(browser, fake_model_app.url, "Hello")

    open_menu(browser, "#conversation-settings")
    choose(browser, "apply-preset", "Poet")
    submit(browser, ".preset-form")
    waiter(browser).until(lambda d: "Preset “Poet” applied." in flash(d), "the preset's flash message")

    open_menu(browser, "#conversation-settings")
    assert by_id(browser, "settings-temperature").get_attribute("value") == "0.9"
    assert by_id(browser, "settings-system-prompt").get_attribute("value") == "Answer in verse."
    enter(browser, "settings-temperature", "0.3")
    enter(browser, "settings-system-prompt", "Answer briefly.")
    submit(browser, ".settings-form")
    waiter(browser).until(lambda d: "Settings saved; they apply from the next reply." in flash(d), "the settings' flash")

    send(browser, "Again")
    wait_for_reply(browser, "complete", count=2)
    body = upstream.requests[-1].body
    assert body["temperature"] == 0.3
    assert body["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert severe_errors(browser) == []


def test_the_line_under_a_reply_comes_from_the_server_live(fake_model_app, browser, upstream):
    start_chat(browser, fake_model_app.url, "Hello")

    upstream.push(reply("A short answer that", finish_reason="length"))
    send(browser, "Tell me everything")
    wait_for_reply(browser, "complete", count=2)
    note = last_reply(browser).find_element("css selector", ".message-note")
    assert note.text == "Cut off: the reply reached its length limit."

    upstream.push(error(401, "Incorrect API key provided."))
    send(browser, "And again")
    wait_for_reply(browser, "error", count=3)
    note = last_reply(browser).find_element("css selector", ".message-error")
    assert note.text.startswith("The model server did not accept the API key (401)")
    assert not last_reply(browser).find_elements("css selector", ".message-note")


def test_a_password_link_asks_a_logged_out_visitor_then_opens(fake_model_app, open_browser, upstream):
    owner = open_browser()
    start_chat(owner, fake_model_app.url, "A secret about otters")

    by_id(owner, "share-button").click()
    choose(owner, "id_kind", "Snapshot (as it is now)")
    enter(owner, "id_password", "open sesame")
    submit(owner, ".link-form")
    waiter(owner).until(lambda d: "Public link created." in flash(d), "the link's flash message")
    address = css(owner, "input.link-url")[0].get_attribute("value")

    visitor = open_browser()
    visitor.get(address)
    assert "A secret about otters" not in visitor.page_source
    enter(visitor, "id_password", "guess")
    submit(visitor, "form.stacked-form")
    waiter(visitor).until(lambda d: "That is not the password." in d.page_source, "the wrong-password error")
    enter(visitor, "id_password", "open sesame")
    submit(visitor, "form.stacked-form")
    waiter(visitor).until(lambda d: "A secret about otters" in d.page_source, "the conversation behind the password")
    assert "Hello from the fake model." in visitor.page_source
    assert "Continue in my own chat" not in visitor.page_source  # for people with an account

    # A logged-in reader copies what the link shows into a chat of their own.
    original = owner.current_url
    owner.get(address)
    enter(owner, "id_password", "open sesame")
    submit(owner, "form.stacked-form")
    waiter(owner).until(lambda d: css(d, "form[action$='/continue/'] button"), "the Continue button")
    submit(owner, "form[action$='/continue/']")
    waiter(owner).until(lambda d: "/c/" in d.current_url and d.current_url != original, "the copied conversation")
    assert [message.text for message in css(owner, "li.message .message-body")] == [
        "A secret about otters",
        "Hello from the fake model.",
    ]


def test_rename_then_delete_closes_the_other_tab(fake_model_app, open_browser, upstream):
    owner = open_browser()
    start_chat(owner, fake_model_app.url, "Short-lived")
    address = owner.current_url

    open_menu(owner, "details.menu:not(.settings-menu)")
    enter(owner, "rename-title", "Renamed chat")
    submit(owner, ".rename-form")
    waiter(owner).until(lambda d: by_id(d, "conversation-title").text == "Renamed chat", "the new title")
    assert "Renamed chat" in css(owner, ".sidebar-list")[0].text

    other_tab = open_browser()
    log_in(other_tab, fake_model_app.url, USERNAME, PASSWORD)
    other_tab.get(address)
    waiter(other_tab).until(lambda d: css(d, "li.message--assistant"), "the conversation in the other tab")

    open_menu(owner, "details.menu:not(.settings-menu)")
    submit(owner, "form[data-confirm]")
    owner.switch_to.alert.accept()  # "Delete this conversation for good?"
    waiter(owner).until(lambda d: css(d, "#new-chat-input"), "the home page")
    assert "Renamed chat" not in css(owner, ".sidebar-list")[0].text
    waiter(other_tab).until(
        lambda d: by_id(d, "chat-error").text == "This conversation was deleted.", "the other tab told it was deleted"
    )

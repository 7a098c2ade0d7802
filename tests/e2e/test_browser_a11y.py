"""Accessibility in real headless Chromium against a real daphne process.

The audit: axe-core (tests/e2e/a11y.py) finds no serious or critical WCAG 2.1 A/AA violation on any page a
person uses, with its dialogs and menus open, in a light and a dark system theme and with the theme forced
against the system's (<html data-theme>), in English and in Chinese.

Screen readers: a streaming reply is announced by a polite status region of its own, by whole sentences,
not per token, and its end is announced. Keyboard: Escape stops a reply and closes dialogs, the focus goes
into a dialog and back to what opened it, a skip link reaches the message box, "?" lists the shortcuts.
"""

import pytest

from tests.e2e.a11y import axe_violations, describe, emulate_color_scheme, force_theme, set_language
from tests.e2e.browser import by_id, css, last_reply, log_in, new_chrome, require_chromium, severe_errors, waiter
from tests.e2e.live import demo_app
from tests.e2e.test_browser_conversation import open_menu, send, wait_for_reply
from tests.fake_openai import reply

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "ada", "ada-password-123"
OPEN_LINK, PASSWORD_LINK, LIVE_LINK = "open-link-token-0123456789", "password-link-token-0123456", "live-link-token-0123456789"
INVITATION = "account-invitation-token-0123456789"

SETUP = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.utils import timezone
from datetime import timedelta
from conversations.models import AccountInvitation, Conversation, ImportJob, ModelConfig, Preset, Provider, PublicLink
from conversations.models import invitation_token_hash
from conversations.fulltext import index
from conversations.services.sharing import public_link_create
from tests import factories

ada = get_user_model().objects.get(username={username!r})
bob = factories.make_user(username="bob")
provider = Provider.objects.create(name="Fake", base_url={base_url!r}, timeout=10, allow_internal=True)
model = ModelConfig.objects.create(
    display_name="Tunable", provider=provider, model="fake-model", is_default=True, description="A fake model for tests",
    allow_custom_temperature=True, temperature_min=0.0, temperature_max=1.5, allow_custom_system_prompt=True,
)
ModelConfig.objects.create(display_name="Other", provider=provider, model="other-model")
Preset.objects.create(name="Poet", temperature=0.9, system_prompt="Answer in verse.")
Preset.objects.create(owner=ada, name="Brief", system_prompt="Answer briefly.")
team = factories.make_team(name="Otter researchers", owner=ada, members=[bob])
factories.make_invitation(team=factories.make_team(name="River keepers", owner=bob), invitee=ada, invited_by=bob)
chat, versions = factories.make_branched_conversation(owner=ada, title="Otters and rivers")
question = factories.make_message(conversation=chat, content="Show me code and a table.", parent=versions["a3"])
answer = factories.make_message(
    conversation=chat, role="assistant", parent=question, model_name="fake-model", prompt_tokens=30, completion_tokens=60,
    content="Mostly **fish**.\\n\\n> Sea otters eat urchins.\\n\\n"
    "```python\\ndef eat(food: str) -> None:\\n    print('otter eats', food, 42)  # yum\\n```\\n\\n"
    "| Otter | Food |\\n|---|---|\\n| River | Fish |\\n\\nInline `code` and a [link](https://example.com).",
)
Conversation.objects.filter(pk=chat.pk).update(current_leaf=answer)
factories.make_share(conversation=chat, user=bob)
factories.make_conversation(owner=ada, title="Old archived chat", archived_at=timezone.now())
factories.make_usage_record(user=ada, team=team, model_config=model, prompt_tokens=1200, completion_tokens=800,
                            message=answer, cost=Decimal("0.0123"))
for token, fields in (({open_link!r}, {{}}), ({password_link!r}, {{"password": "otters"}}), ({live_link!r}, {{"kind": "live"}})):
    link = public_link_create(conversation=chat, **{{"kind": "snapshot", "audience": "anyone", **fields}})
    PublicLink.objects.filter(pk=link.pk).update(token=token)
for title in ("Announced", "Stopped by Escape"):
    factories.make_conversation(owner=ada, title=title)
ImportJob.objects.create(owner=ada, filename="conversations.json", status="done", total=2, processed=2)
AccountInvitation.objects.create(
    team=team, email="new@example.com", invited_by=ada, token_hash=invitation_token_hash({invitation!r}),
    expires=timezone.now() + timedelta(days=7),
)
index.index_everything()
"""


@pytest.fixture(scope="module")
def a11y_app(tmp_path_factory, fake_openai_server):
    require_chromium()
    links = {"open_link": OPEN_LINK, "password_link": PASSWORD_LINK, "live_link": LIVE_LINK, "invitation": INVITATION}
    setup = SETUP.format(base_url=fake_openai_server.base_url, username=USERNAME, **links)
    directory = tmp_path_factory.mktemp("browser-a11y")
    with demo_app(directory, users=[(USERNAME, PASSWORD)], demo_delay="0.02", setup=setup) as server:
        yield server


@pytest.fixture(scope="module")
def auditor(a11y_app):
    """One logged-in desktop browser for the whole audit."""
    driver = new_chrome(1280, 900)
    log_in(driver, a11y_app.url, USERNAME, PASSWORD)
    yield driver
    driver.quit()


# --- the audit ----------------------------------------------------------------------------------

# (system colour scheme, <html data-theme>): following the system either way, and forced against it.
THEMES = {"light": ("light", None), "dark": ("dark", None), "forced-light": ("dark", "light"), "forced-dark": ("light", "dark")}


BACKGROUND = {"light": "rgb(255, 255, 255)", "dark": "rgb(22, 24, 28)"}  # app.css's --bg


def page_background(driver) -> str:
    return driver.execute_script("return getComputedStyle(document.documentElement).backgroundColor")


def conversation_url(driver, base_url: str, title: str = "Otters and rivers") -> str:
    driver.get(base_url + "/")
    return next(
        link.get_attribute("href") for link in css(driver, "#sidebar-own a") if link.get_attribute("textContent").strip() == title
    )


def team_url(driver, base_url: str) -> str:
    driver.get(base_url + "/teams/")
    return css(driver, "#my-teams a")[0].get_attribute("href")


def expect_results(driver) -> None:
    assert css(driver, ".search-result"), driver.page_source


def open_share(driver) -> None:
    by_id(driver, "share-button").click()
    waiter(driver).until(lambda d: by_id(d, "share-dialog").get_attribute("open") is not None)


def open_settings(driver) -> None:
    open_menu(driver, "#conversation-settings")


def open_picker(driver) -> None:
    by_id(driver, "model-picker").click()


def open_shortcuts(driver) -> None:
    by_id(driver, "shortcuts-button").click()
    waiter(driver).until(lambda d: by_id(d, "shortcuts-dialog").get_attribute("open") is not None)


def audit_states(driver, base_url: str) -> list:
    """(name, address, what to do once it has loaded) for every page and dialog the audit covers."""
    conversation, team = conversation_url(driver, base_url), team_url(driver, base_url)
    return [
        ("home", base_url + "/", None),
        ("conversation", conversation, None),
        ("conversation, Share dialog", conversation, open_share),
        ("conversation, Settings", conversation, open_settings),
        ("conversation, model picker", conversation, open_picker),
        ("conversation, shortcuts", conversation, open_shortcuts),
        ("search", base_url + "/search/?q=otters", expect_results),
        ("usage", base_url + "/usage/", None),
        ("teams", base_url + "/teams/", None),
        ("team", team, None),
        ("presets", base_url + "/presets/", None),
        ("import", base_url + "/import/", None),
        ("archived", base_url + "/archived/", None),
        ("profile", base_url + "/account/", None),
        ("public link", f"{base_url}/s/{OPEN_LINK}/", None),
        ("live public link", f"{base_url}/s/{LIVE_LINK}/", None),
        ("public link password", f"{base_url}/s/{PASSWORD_LINK}/", None),
        ("missing page", base_url + "/no-such-page/", None),
    ]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize("theme", list(THEMES))
def test_no_serious_violation_on_any_page(a11y_app, auditor, theme, language):
    scheme, forced = THEMES[theme]
    set_language(auditor, a11y_app.url, language)
    emulate_color_scheme(auditor, scheme)
    found = []
    for name, address, action in audit_states(auditor, a11y_app.url):
        auditor.get(address)
        force_theme(auditor, forced)
        assert auditor.find_element("css selector", "html").get_attribute("lang") == language
        assert page_background(auditor) == BACKGROUND[forced or scheme], f"{name} is not {forced or scheme}"
        if action:
            action(auditor)
        violations = axe_violations(auditor)
        if violations:
            found.append(f"--- {name} ({theme}, {language}) {address}\n{describe(violations)}")
    assert not found, "\n".join(found)


# The pages of someone not logged in.
VISITOR_PAGES = {
    "login": "/accounts/login/",
    "password reset": "/accounts/password-reset/",
    "account invitation": f"/invite/{INVITATION}/",
}


def test_visitor_pages_have_no_serious_violation(a11y_app, open_browser):
    driver = open_browser(1280, 900)
    found = []
    for language in ("en", "zh-hans"):
        set_language(driver, a11y_app.url, language)
        for theme, (scheme, forced) in THEMES.items():
            emulate_color_scheme(driver, scheme)
            for name, address in VISITOR_PAGES.items():
                driver.get(a11y_app.url + address)
                force_theme(driver, forced)
                assert driver.find_elements("css selector", "main form input:not([type=hidden])"), f"{name}: no form"
                if violations := axe_violations(driver):
                    found.append(f"--- {name} ({theme}, {language})\n{describe(violations)}")
    assert not found, "\n".join(found)


def test_a_phone_with_the_sidebar_open_has_no_serious_violation(a11y_app, open_browser):
    driver = open_browser(390, 844)
    log_in(driver, a11y_app.url, USERNAME, PASSWORD)
    found = []
    for scheme in ("light", "dark"):
        emulate_color_scheme(driver, scheme)
        driver.get(conversation_url(driver, a11y_app.url))
        css(driver, ".sidebar-toggle")[0].click()
        waiter(driver).until(
            lambda d: (
                focus_in(d, "#sidebar")
                and not d.execute_script("return document.getElementById('sidebar').getAnimations().length")
            ),
            "the sidebar open",
        )
        if violations := axe_violations(driver):
            found.append(f"--- phone, sidebar open ({scheme})\n{describe(violations)}")
    assert not found, "\n".join(found)


def test_the_audit_finds_what_it_should(a11y_app, auditor):
    """The audit can fail: a button without a name and grey text on white are reported."""
    emulate_color_scheme(auditor, "light")
    auditor.get(a11y_app.url + "/presets/")
    auditor.execute_script(
        """const page = document.querySelector(".page");
           const faint = document.createElement("p");
           faint.textContent = "A faint line of text";
           faint.style.color = "#bbb";  // through the CSSOM: the site's CSP refuses style attributes
           page.prepend(faint, document.createElement("button"));"""
    )
    found = {violation["id"] for violation in axe_violations(auditor)}
    assert {"button-name", "color-contrast"} <= found


# --- screen readers -----------------------------------------------------------------------------

RECORD_STATUS = """
window.statusLog = [];
new MutationObserver(() => {
  const reply = [...document.querySelectorAll("li.message--assistant")].at(-1);
  window.statusLog.push([document.getElementById("reply-status").textContent, reply ? reply.dataset.status : null]);
}).observe(document.getElementById("reply-status"), {childList: true, characterData: true, subtree: true});
"""


def open_conversation(driver, base_url: str, title: str) -> None:
    driver.get(conversation_url(driver, base_url, title))
    waiter(driver).until(lambda d: d.execute_script("return document.getElementById('chat') && window.chatRender"), "the page")


def active(driver) -> str:
    """Who has the focus: its id, else its tag and classes."""
    return driver.execute_script(
        "const e = document.activeElement; return e.id || `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}`;"
    )


def focus_in(driver, selector: str) -> bool:
    return driver.execute_script("return document.querySelector(arguments[0]).contains(document.activeElement)", selector)


def top_of_page(driver) -> None:
    """Put the keyboard at the top of the page, as when it is entered without a field taking the focus."""
    driver.execute_script(
        "document.activeElement.blur(); document.body.tabIndex = -1; document.body.focus();"
        " document.body.removeAttribute('tabindex');"
    )


def press(driver, *keys) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def test_a_streaming_reply_is_announced_by_whole_sentences_then_its_end(a11y_app, open_browser, upstream):
    text = (
        "Otters hold *hands* while they sleep. They eat a quarter of their weight every day! "
        "Do they like cold water? Yes, 水獭喜欢鱼。 And the last words come without a full stop"
    )
    words = text.split(" ")
    driver = open_browser(1280, 900)
    log_in(driver, a11y_app.url, USERNAME, PASSWORD)
    open_conversation(driver, a11y_app.url, "Announced")
    status = by_id(driver, "reply-status")
    assert status.get_attribute("role") == "status" and status.get_attribute("aria-live") == "polite"
    assert by_id(driver, "messages").get_attribute("aria-live") is None  # the list itself is not read out
    driver.execute_script(RECORD_STATUS)

    upstream.push(reply(text, delay=0.12))
    send(driver, "Tell me about otters")
    wait_for_reply(driver, "complete")
    finished = "return window.statusLog.length && window.statusLog.at(-1)[0].endsWith('Reply finished.')"
    waiter(driver).until(lambda d: d.execute_script(finished), "the end announced")
    log = driver.execute_script("return window.statusLog")

    during = [said for said, reply_status in log[:-1] if reply_status == "streaming"]
    assert during, f"nothing was announced while the reply streamed: {log}"
    assert all(said[-1] in ".!?。" for said in during), log  # whole sentences only
    assert len(log) <= len(words) // 4, f"{len(log)} announcements for {len(words)} tokens: {log}"
    final = log[-1][0]
    assert final.endswith("And the last words come without a full stop Reply finished.")
    heard = " ".join(said for said, _ in log).replace(" Reply finished.", "")
    assert heard.replace("。 ", "。") == text.replace("*", "").replace("。 ", "。")  # all of it once, Markdown left out
    assert status.get_attribute("textContent") == final  # and it stays said
    assert severe_errors(driver) == []


# --- keyboard -----------------------------------------------------------------------------------


def test_escape_closes_a_dialog_first_then_stops_the_reply_keeping_its_text(a11y_app, open_browser, upstream):
    from selenium.webdriver.common.keys import Keys

    driver = open_browser(1280, 900)
    log_in(driver, a11y_app.url, USERNAME, PASSWORD)
    open_conversation(driver, a11y_app.url, "Stopped by Escape")
    driver.execute_script(RECORD_STATUS)
    upstream.push(reply("otter " * 200, delay=0.05))
    send(driver, "Count otters slowly")
    waiter(driver).until(lambda d: (r := last_reply(d)) and len(r.text) > 20 and r.get_attribute("data-status") == "streaming")

    by_id(driver, "share-button").click()
    waiter(driver).until(lambda d: by_id(d, "share-dialog").get_attribute("open") is not None)
    press(driver, Keys.ESCAPE)
    waiter(driver).until(lambda d: by_id(d, "share-dialog").get_attribute("open") is None, "the dialog closed")
    assert active(driver) == "share-button"
    assert last_reply(driver).get_attribute("data-status") == "streaming"  # that Escape was the dialog's

    press(driver, Keys.ESCAPE)
    wait_for_reply(driver, "stopped")
    kept = last_reply(driver).find_element("css selector", ".message-body").text
    assert kept.startswith("otter otter") and len(kept) < len("otter " * 200)
    waiter(driver).until(lambda d: by_id(d, "reply-status").get_attribute("textContent").endswith("Reply stopped."))
    driver.refresh()
    wait_for_reply(driver, "stopped")
    assert last_reply(driver).find_element("css selector", ".message-body").text.startswith(kept[:20])


def test_dialogs_and_menus_take_the_focus_and_escape_gives_it_back(a11y_app, open_browser):
    from selenium.webdriver.common.keys import Keys

    driver = open_browser(1280, 900)
    log_in(driver, a11y_app.url, USERNAME, PASSWORD)
    open_conversation(driver, a11y_app.url, "Otters and rivers")

    by_id(driver, "share-button").click()
    waiter(driver).until(lambda d: focus_in(d, "#share-dialog"), "the focus in the dialog")
    press(driver, Keys.ESCAPE)
    waiter(driver).until(lambda d: by_id(d, "share-dialog").get_attribute("open") is None)
    assert active(driver) == "share-button"

    css(driver, "#conversation-settings > summary")[0].click()
    waiter(driver).until(lambda d: focus_in(d, "#conversation-settings .menu-body"), "the focus in Settings")
    press(driver, Keys.ESCAPE)
    waiter(driver).until(lambda d: by_id(d, "conversation-settings").get_attribute("open") is None)
    assert driver.execute_script("return document.activeElement === document.querySelector('#conversation-settings > summary')")

    picker = by_id(driver, "model-picker")
    picker.click()
    press(driver, Keys.ESCAPE)
    assert active(driver) == "model-picker"
    assert picker.get_attribute("value") == picker.find_element("css selector", "option[selected]").get_attribute("value")

    by_id(driver, "shortcuts-button").click()
    waiter(driver).until(lambda d: by_id(d, "shortcuts-dialog").get_attribute("open") is not None)
    assert focus_in(driver, "#shortcuts-dialog")
    press(driver, Keys.ESCAPE)
    waiter(driver).until(lambda d: by_id(d, "shortcuts-dialog").get_attribute("open") is None)
    assert active(driver) == "shortcuts-button"
    assert severe_errors(driver) == []


def test_question_mark_lists_the_shortcuts_unless_typing(a11y_app, open_browser):
    from selenium.webdriver.common.keys import Keys

    driver = open_browser(1280, 900)
    log_in(driver, a11y_app.url, USERNAME, PASSWORD)
    open_conversation(driver, a11y_app.url, "Otters and rivers")
    box = by_id(driver, "composer-input")
    box.send_keys("Why?")
    assert box.get_attribute("value") == "Why?" and by_id(driver, "shortcuts-dialog").get_attribute("open") is None

    css(driver, "#conversation-title")[0].click()  # out of the box
    press(driver, "?")
    dialog = by_id(driver, "shortcuts-dialog")
    waiter(driver).until(lambda d: dialog.get_attribute("open") is not None, "the shortcuts list")
    listed = dialog.text
    for key in ("Enter", "Shift", "Esc", "Ctrl", "K", "?"):
        assert key in listed
    press(driver, Keys.ESCAPE)
    waiter(driver).until(lambda d: dialog.get_attribute("open") is None)
    assert box.get_attribute("value") == "Why?"


def test_the_skip_link_comes_first_and_moves_the_focus(a11y_app, open_browser):
    from selenium.webdriver.common.keys import Keys

    driver = open_browser(1280, 900)
    log_in(driver, a11y_app.url, USERNAME, PASSWORD)
    for address, name, target in (
        (conversation_url(driver, a11y_app.url), "Skip to message box", "composer-input"),
        (a11y_app.url + "/", "Skip to message box", "new-chat-input"),
        (a11y_app.url + "/presets/", "Skip to main content", "main-content"),
    ):
        driver.get(address)
        top_of_page(driver)
        link = css(driver, ".skip-link")[0]
        assert link.rect["y"] + link.rect["height"] <= 0  # out of sight until it has the focus
        press(driver, Keys.TAB)
        assert driver.execute_script("return document.activeElement.classList.contains('skip-link')")
        assert link.accessible_name == name and link.rect["y"] >= 0
        press(driver, Keys.ENTER)
        waiter(driver).until(lambda d, target=target: active(d) == target, f"the focus on {target}")


def test_every_control_shows_the_keyboard_focus(a11y_app, open_browser):
    from selenium.webdriver.common.keys import Keys

    driver = open_browser(1280, 900)
    log_in(driver, a11y_app.url, USERNAME, PASSWORD)
    driver.get(conversation_url(driver, a11y_app.url))
    top_of_page(driver)
    unmarked, seen = [], 0
    for _ in range(150):
        press(driver, Keys.TAB)
        again, element, outline = driver.execute_script(
            """const e = document.activeElement, style = getComputedStyle(e);
               window.tabbed = window.tabbed || new Set();
               const again = window.tabbed.has(e) || e === document.body;
               window.tabbed.add(e);
               return [again, e.outerHTML.slice(0, 120), [style.outlineStyle, parseFloat(style.outlineWidth)]];"""
        )
        if again:
            break
        seen += 1
        if outline[0] == "none" or outline[1] < 2:
            unmarked.append(element)
    assert seen > 30  # the sidebar, the messages' buttons, the composer
    assert unmarked == []

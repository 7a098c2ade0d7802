"""The sidebar as a person uses it, in real headless Chromium against a real daphne process: date groups and more
conversations loaded as the list is scrolled, Pin and Archive in a conversation's menu, the Archived page,
"Select" to delete several at once, and a title written by a model arriving live.

The model is tests/fake_openai.py on loopback, so the title test scripts both the reply and the title.
"""

import re
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.browser import by_id, css, flash, log_in, not_found, require_chromium, severe_errors, waiter
from tests.e2e.live import demo_app
from tests.e2e.test_browser_conversation import open_menu, wait_for_reply
from tests.fake_openai import reply

pytestmark = pytest.mark.browser

# Each test has a person of its own, so that what one test pins, archives or deletes leaves the others' alone.
MANY, ORGANISER, SELECTOR, TITLED, TRAVELLER = (
    ("max", "max-password-123"),
    ("oli", "oli-password-123"),
    ("sel", "sel-password-123"),
    ("tia", "tia-password-123"),
    ("zed", "zed-password-123"),
)
TOTAL = 120  # max's conversations (with the one every seeded person starts with)

SETUP = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from conversations.models import Conversation, ModelConfig, Provider
provider = Provider.objects.create(name="Fake", base_url={base_url!r}, timeout=10, allow_internal=True)
ModelConfig.objects.create(display_name="Fake", provider=provider, model="fake-model", is_default=True)
now = timezone.now()
# max: 120 conversations, 20 today, 20 yesterday, 20 in the previous 7 and 30 days, 40 over three earlier months.
max_ = get_user_model().objects.get(username="max")
spread = [timedelta(seconds=1)] * 20 + [timedelta(days=1)] * 20 + [timedelta(days=4)] * 20 + [timedelta(days=15)] * 20
spread += [timedelta(days=50)] * 14 + [timedelta(days=85)] * 13 + [timedelta(days=120)] * 13
Conversation.objects.filter(owner=max_).update(updated=now - timedelta(seconds=1))
Conversation.objects.bulk_create(
    Conversation(owner=max_, title=f"Chat {{number:03}}", updated=now - back - timedelta(seconds=number))
    for number, back in enumerate(spread[1:], start=1)
)
# oli and sel: a few each, all of today.
for name in ("oli", "sel"):
    person = get_user_model().objects.get(username=name)
    Conversation.objects.bulk_create(
        Conversation(owner=person, title=f"{{name}} {{number}}", updated=now - timedelta(seconds=number))
        for number in range(1, 6)
    )
# zed: one conversation on the other side of midnight in zed's browser's time zone from where it is in UTC.
Conversation.objects.create(
    owner=get_user_model().objects.get(username="zed"), title="Edge of the day", updated={edge!r},
)
"""


def far_zone() -> tuple[str, datetime, str]:
    """A time zone whose date is not UTC's now, a moment that is today in one and yesterday in the other, and
    the group that moment falls in there: far east of UTC in the afternoon (UTC), far west in the morning."""
    now = datetime.now(UTC)
    name = "Pacific/Kiritimati" if now.hour >= 12 else "Etc/GMT+12"  # UTC+14, UTC-12
    midnight = now.astimezone(ZoneInfo(name)).replace(hour=0, minute=0, second=0, microsecond=0)
    if now.hour >= 12:  # a minute before midnight there: yesterday there, today in UTC
        return name, midnight - timedelta(minutes=1), "Yesterday"
    return name, midnight + timedelta(minutes=1), "Today"  # today there, yesterday in UTC


ZONE = {}


@pytest.fixture(scope="module")
def sidebar_app(tmp_path_factory, fake_openai_server):
    require_chromium()
    directory = tmp_path_factory.mktemp("browser-sidebar")
    ZONE["name"], edge, ZONE["group"] = far_zone()
    setup = SETUP.format(base_url=fake_openai_server.base_url, edge=edge.astimezone(UTC).isoformat())
    users = [MANY, ORGANISER, SELECTOR, TITLED, TRAVELLER]
    with demo_app(directory, users=users, demo_delay="0.02", setup=setup) as server:
        yield server


def links(driver, list_id: str = "sidebar-own") -> list[str]:
    """The conversations a sidebar list shows, as their addresses, in order."""
    return [link.get_attribute("href") for link in css(driver, f"#{list_id} a[data-conversation]")]


def group_headings(driver) -> list[str]:
    return [heading.text for heading in css(driver, "#sidebar-own .sidebar-group")]


def group_of(driver, title: str) -> str | None:
    """The date group heading above a conversation in the sidebar."""
    group = None
    for element in css(driver, "#sidebar-own > li"):
        if "sidebar-group" in element.get_attribute("class"):
            group = element.text
        elif element.text == title:
            return group
    raise AssertionError(f"no {title!r} in the sidebar")


def sidebar_link(driver, title: str):
    found = [link for link in css(driver, ".sidebar-list a[data-conversation]") if link.text == title]
    return found[0] if found else None


def scroll_sidebar_down(driver) -> None:
    """Turn the mouse wheel over the sidebar's list, as a person scrolls it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(by_id(driver, "sidebar-list")), 0, 5000).perform()


def test_the_sidebar_groups_by_date_and_loads_more_as_it_scrolls(sidebar_app, open_browser):
    browser = open_browser()
    log_in(browser, sidebar_app.url, *MANY)
    nav = by_id(browser, "sidebar-list")
    assert browser.execute_script("return arguments[0].scrollHeight > arguments[0].clientHeight;", nav)
    time.sleep(0.5)  # time enough for a page nobody scrolled to to arrive
    assert len(links(browser)) == 50
    assert group_headings(browser) == ["Today", "Yesterday", "Previous 7 days"]

    seen = [len(links(browser))]
    while seen[-1] < TOTAL:
        scroll_sidebar_down(browser)
        waiter(browser).until(lambda d: len(links(d)) > seen[-1], f"more than {seen[-1]} conversations after a scroll")
        seen.append(len(links(browser)))
    assert seen == [50, 100, 120]
    addresses = links(browser)
    assert len(set(addresses)) == TOTAL  # nothing twice
    titles = [link.text for link in css(browser, "#sidebar-own a[data-conversation]")]
    assert titles == ["Seeded"] + [f"Chat {number:03}" for number in range(1, TOTAL)]  # newest first, none skipped

    headings = group_headings(browser)
    assert headings[:4] == ["Today", "Yesterday", "Previous 7 days", "Previous 30 days"]
    months = headings[4:]
    assert len(months) == len(set(months)) >= 2  # each group once, though its rows came on different pages
    assert all(re.fullmatch(r"[A-Z][a-z]+ \d{4}", month) for month in months)
    assert not css(browser, ".sidebar-sentinel")  # the last page came: nothing more to ask for
    assert severe_errors(browser) == []


def test_date_groups_are_the_browsers_days(sidebar_app, open_browser):
    browser = open_browser()
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ZONE["name"]})
    log_in(browser, sidebar_app.url, *TRAVELLER)  # the login page tells the server the browser's time zone
    browser.refresh()
    assert group_of(browser, "Edge of the day") == ZONE["group"], f"in {ZONE['name']}"


def test_pin_from_the_menu_then_unpin(sidebar_app, open_browser):
    browser = open_browser()
    log_in(browser, sidebar_app.url, *ORGANISER)
    sidebar_link(browser, "oli 3").click()
    waiter(browser).until(lambda d: by_id(d, "conversation-title").text == "oli 3", "the conversation")
    address = browser.current_url

    open_menu(browser, "details.menu:not(.settings-menu)")
    by_id(browser, "pin-button").click()
    waiter(browser).until(lambda d: links(d, "sidebar-pinned") == [address], "the conversation under Pinned")
    headings = [heading.text for heading in css(browser, "#sidebar-list .sidebar-heading, #sidebar-list .sidebar-group")]
    assert headings[0].lower() == "pinned"  # above the date groups
    assert address not in links(browser)  # once, at the top

    browser.refresh()
    assert links(browser, "sidebar-pinned") == [address]
    open_menu(browser, "details.menu:not(.settings-menu)")
    assert by_id(browser, "pin-button").text == "Unpin"
    by_id(browser, "pin-button").click()
    waiter(browser).until(lambda d: not css(d, "#sidebar-pinned"), "no Pinned list")
    assert address in links(browser)
    assert severe_errors(browser) == []


def test_archive_from_the_menu_then_unarchive_on_the_archived_page(sidebar_app, open_browser):
    browser = open_browser()
    log_in(browser, sidebar_app.url, *ORGANISER)
    sidebar_link(browser, "oli 4").click()
    waiter(browser).until(lambda d: by_id(d, "conversation-title").text == "oli 4", "the conversation")
    address = browser.current_url

    open_menu(browser, "details.menu:not(.settings-menu)")
    by_id(browser, "archive-button").click()
    waiter(browser).until(lambda d: "listed under Archived" in flash(d), "the archive's flash message")
    assert address not in links(browser)
    assert by_id(browser, "archived-badge").is_displayed()

    by_id(browser, "archived-link").click()
    waiter(browser).until(lambda d: css(d, "#archived-list"), "the Archived page")
    [item] = css(browser, "#archived-list li")
    assert item.find_element("css selector", "a").get_attribute("href") == address
    item.find_element("css selector", "input[type=checkbox]").click()
    css(browser, "#archived-form button[value=unarchive]")[0].click()
    waiter(browser).until(lambda d: "1 conversation unarchived." in flash(d), "the unarchive's flash message")
    assert "Nothing archived." in browser.page_source
    assert address in links(browser)
    assert severe_errors(browser) == []


def test_select_two_in_the_sidebar_and_delete_them(sidebar_app, open_browser):
    browser = open_browser()
    log_in(browser, sidebar_app.url, *SELECTOR)
    before = links(browser)
    items = css(browser, "#sidebar-own .sidebar-item")
    assert not items[0].find_element("css selector", ".sidebar-check").is_displayed()

    by_id(browser, "sidebar-select").click()
    chosen = [items[1], items[3]]
    for item in chosen:
        item.find_element("css selector", ".sidebar-check").click()
    doomed = [item.find_element("css selector", "a").get_attribute("href") for item in chosen]
    css(browser, "#sidebar-bulk button[value=delete]")[0].click()
    alert = waiter(browser).until(lambda d: d.switch_to.alert, "the confirm dialog")
    assert alert.text == "Delete the selected conversations for good?"
    alert.accept()
    waiter(browser).until(lambda d: "2 conversations deleted." in flash(d), "the delete's flash message")
    assert links(browser) == [address for address in before if address not in doomed]
    assert severe_errors(browser) == []  # before the 404s below, which the console reports
    for address in doomed:
        browser.get(address)
        assert not_found(browser)


def test_a_title_written_by_the_model_arrives_without_a_reload(sidebar_app, open_browser, upstream):
    from selenium.webdriver.common.keys import Keys

    upstream.push(reply("Otters hold hands while they sleep."))
    upstream.push(reply("Sleeping otters", delay=0.5))  # the title, asked after the reply
    browser = open_browser()
    log_in(browser, sidebar_app.url, *TITLED)
    by_id(browser, "new-chat-input").send_keys("Tell me about otters" + Keys.ENTER)
    waiter(browser).until(lambda d: "/c/" in d.current_url, "the new conversation")
    browser.execute_script("window.notReloaded = true;")
    wait_for_reply(browser, "complete")
    conversation = browser.current_url.rstrip("/").rsplit("/", 1)[-1]
    assert by_id(browser, "conversation-title").text == "Tell me about otters"

    waiter(browser).until(lambda d: by_id(d, "conversation-title").text == "Sleeping otters", "the model's title")
    assert browser.title == "Sleeping otters · Team Chat"
    link = css(browser, f'.sidebar-list a[data-conversation="{conversation}"]')[0]
    assert link.text == "Sleeping otters"
    assert browser.execute_script("return window.notReloaded === true;")
    assert upstream.requests[-1].body["messages"][0]["role"] == "system"  # the title's instruction
    assert severe_errors(browser) == []

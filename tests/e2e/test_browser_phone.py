"""Phone widths and error pages in real headless Chromium: the sidebar that slides over the page opens and
closes (its button, Escape, a tap outside) with the focus following it, My usage fits 390 px, the usage
admin shows every column at 1280 px, and a missing page is the site's own 404 with a way home.
"""

import pytest

from tests.e2e.browser import by_id, css, log_in, not_found, require_chromium, severe_errors, waiter
from tests.e2e.live import demo_app

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "pia", "pia-password-123"
ADMIN, ADMIN_PASSWORD = "root", "pw-root"  # as factories.make_superuser makes them
PHONE = (390, 844)

# Usage with long names and large numbers, the widest the usage tables get, for pia (My usage) and for
# the admin's list; a superuser to read that list.
SETUP = f"""
from decimal import Decimal
from django.contrib.auth import get_user_model
from conversations.models import Limit
from tests import factories

pia = get_user_model().objects.get(username="{USERNAME}")
factories.make_superuser(username="{ADMIN}")
model = factories.make_model_config(
    provider=factories.make_provider(name="Research lab"), display_name="gpt-4o-mini-2024-07-18 (long context)"
)
team = factories.make_team(name="Interdisciplinary research group", members=[pia])
Limit.objects.create(user=pia, daily_tokens=50_000_000, monthly_tokens=900_000_000, requests_per_minute=60)
Limit.objects.create(team=team, monthly_tokens=900_000_000)
chat = factories.make_conversation(owner=pia, title="A fairly long conversation title about otters and rivers")
for number in range(5):
    factories.make_usage_record(
        user=pia, team=team, model_config=model, prompt_tokens=1_234_567, completion_tokens=765_432,
        message=factories.make_message(conversation=chat, role="assistant", content="Otters."),
        cost=Decimal("12.345678"), estimated=bool(number % 2),
    )
"""


@pytest.fixture(scope="module")
def phone_app(tmp_path_factory):
    """The app served by daphne with pia (who has usage) and a superuser."""
    require_chromium()
    with demo_app(tmp_path_factory.mktemp("browser-phone"), users=[(USERNAME, PASSWORD)], demo_delay="0", setup=SETUP) as server:
        yield server


# --- helpers ----------------------------------------------------------------------


def sidebar_state(driver) -> dict:
    """Where the sidebar is, whether it is open (and still sliding), and who has the focus."""
    return driver.execute_script(
        """
        const sidebar = document.getElementById("sidebar");
        const toggle = document.querySelector(".sidebar-toggle");
        const box = sidebar.getBoundingClientRect();
        return {
          open: document.body.classList.contains("sidebar-open"),
          expanded: toggle.getAttribute("aria-expanded"),
          left: Math.round(box.left),
          right: Math.round(box.right),
          visibility: getComputedStyle(sidebar).visibility,
          focusInSidebar: sidebar.contains(document.activeElement),
          focusOnToggle: document.activeElement === toggle,
          moving: sidebar.getAnimations().length > 0,
        };
        """
    )


def settled(driver) -> dict | bool:
    """The sidebar's state once it has stopped sliding, else False (for waiting on)."""
    state = sidebar_state(driver)
    return False if state["moving"] else state


def open_sidebar(driver) -> None:
    """Press ☰; the sidebar slides in with the focus in it."""
    toggle = css(driver, ".sidebar-toggle")[0]
    assert toggle.is_displayed() and toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    state = waiter(driver).until(lambda d: (s := settled(d)) and s["open"] and s)
    assert state["expanded"] == "true"
    assert state["left"] == 0 and state["visibility"] == "visible"
    assert state["focusInSidebar"]
    assert by_id(driver, "sidebar").is_displayed()


def assert_closed(driver) -> None:
    """The sidebar is off-screen and hidden (not reachable by Tab), and the focus is back on ☰."""
    state = waiter(driver).until(lambda d: (s := settled(d)) and not s["open"] and s)
    assert state["expanded"] == "false"
    assert state["right"] <= 0 and state["visibility"] == "hidden"
    assert not by_id(driver, "sidebar").is_displayed()
    assert state["focusOnToggle"]


def tap(driver, x: int, y: int) -> None:
    """A finger's tap at (x, y) in the page, on whatever is drawn there."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    actions = ActionBuilder(driver, mouse=PointerInput(interaction.POINTER_TOUCH, "finger"))
    actions.pointer_action.move_to_location(x, y).pointer_down().pointer_up()
    actions.perform()


# --- the phone sidebar ------------------------------------------------------------


def test_phone_sidebar_closes_by_its_button_by_escape_and_by_a_tap_outside(phone_app, open_browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver = open_browser(*PHONE)
    log_in(driver, phone_app.url, USERNAME, PASSWORD)
    start = sidebar_state(driver)
    assert start["right"] <= 0 and start["expanded"] == "false" and not by_id(driver, "sidebar").is_displayed()

    open_sidebar(driver)
    close = css(driver, "#sidebar .sidebar-close")[0]
    assert close.is_displayed() and close.accessible_name == "Close the conversation list"
    box = close.rect
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0] and box["y"] >= 0
    close.click()  # Selenium refuses to click what something else covers
    assert_closed(driver)

    open_sidebar(driver)
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    assert_closed(driver)

    open_sidebar(driver)
    sidebar_right = sidebar_state(driver)["right"]
    tap(driver, (sidebar_right + PHONE[0]) // 2, PHONE[1] // 2)  # the dimmed page beside the sidebar
    assert_closed(driver)
    assert severe_errors(driver) == []


# --- pages that must fit ----------------------------------------------------------


def test_my_usage_fits_a_phone_without_sideways_scrolling(phone_app, open_browser):
    driver = open_browser(*PHONE)
    log_in(driver, phone_app.url, USERNAME, PASSWORD)
    driver.get(phone_app.url + "/usage/")
    waiter(driver).until(lambda d: css(d, "#usage-recent"))
    assert css(driver, "#usage-limits") and css(driver, "#usage-models")
    widths = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth];")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"
    # Each number is still on screen, labelled with what it counts.
    cost = css(driver, "#usage-recent tbody tr td[data-field=cost]")[0]
    assert cost.is_displayed() and cost.text == "12.345678" and cost.get_attribute("data-label") == "Cost"
    assert severe_errors(driver) == []


def test_usage_admin_shows_every_column_at_1280(phone_app, open_browser):
    driver = open_browser(1280, 900)
    driver.get(phone_app.url + "/admin/login/?next=/admin/conversations/usagerecord/")
    by_id(driver, "id_username").send_keys(ADMIN)
    by_id(driver, "id_password").send_keys(ADMIN_PASSWORD)
    css(driver, "#login-form [type=submit]")[0].click()
    waiter(driver).until(lambda d: css(d, "#result_list tbody tr"))
    assert by_id(driver, "nav-sidebar").is_displayed()  # the admin's own sidebar open, as it starts
    fits = driver.execute_script(
        """
        const results = document.querySelector("#changelist .results");
        const costs = [...document.querySelectorAll("#result_list .column-cost, #result_list td.field-cost")];
        return {
          page: document.documentElement.scrollWidth <= window.innerWidth,
          table: results.scrollWidth <= results.clientWidth,
          costs: costs.length,
          costsInView: costs.every((cell) => {
            const box = cell.getBoundingClientRect();
            return box.left >= 0 && box.right <= window.innerWidth && box.width > 0;
          }),
        };
        """
    )
    assert fits == {"page": True, "table": True, "costs": 6, "costsInView": True}


# --- error pages ------------------------------------------------------------------


def test_a_missing_page_is_the_sites_own_404_with_a_working_link_home(phone_app, open_browser):
    from selenium.webdriver.common.by import By

    driver = open_browser(*PHONE)
    log_in(driver, phone_app.url, USERNAME, PASSWORD)
    driver.get(phone_app.url + "/no-such-page/")
    waiter(driver).until(not_found)
    assert driver.find_element(By.TAG_NAME, "h1").text == "Page not found"
    # In the site's look: its stylesheet applied (its system font, not the browser's default serif).
    assert driver.execute_script("return getComputedStyle(document.body).fontFamily;").startswith("system-ui")
    # Nothing refused (a style or script the policy blocks would be logged), only the 404 itself.
    assert [error["message"] for error in severe_errors(driver)] == [
        f"{phone_app.url}/no-such-page/ - Failed to load resource: the server responded with a status of 404 (Not Found)"
    ]
    driver.find_element(By.LINK_TEXT, "Back to your conversations").click()
    waiter(driver).until(lambda d: css(d, "#new-chat-input"))
    assert driver.current_url == phone_app.url + "/"

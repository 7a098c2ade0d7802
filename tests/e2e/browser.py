"""Headless Chromium for the browser tests: the driver (Debian's chromium and chromium-driver, never a
download), and the page helpers the tests read with: waiting, finding, typing, choosing, logging in,
the latest reply, flash messages, console errors and screenshots for the README.

The fixtures that open and quit browsers are in tests/e2e/conftest.py. Selenium is imported inside the
functions, so collecting the suite needs no browser.
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.live import ROOT

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DOCS = ROOT / "docs"  # where the README's screenshots live


def require_chromium() -> None:
    """Skip without Chromium, but fail on CI, which installs it (.ci/run)."""
    if shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER):
        return
    message = "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def new_chrome(width: int, height: int):
    """A headless Chromium with its own profile (cookies, storage) whose page is `width` x `height`;
    the caller quits it."""
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
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch anything
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    # Headless Chromium keeps room for window decorations: grow the window until the
    # page itself (and so a screenshot) is width x height.
    extra_width, extra_height = driver.execute_script("return [outerWidth - innerWidth, outerHeight - innerHeight];")
    if extra_width or extra_height:
        driver.set_window_size(width + extra_width, height + extra_height)
    return driver


def waiter(driver, timeout: float = 15.0):
    """WebDriverWait that looks again when a page reloads under it, and says where it gave up."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    class Wait(WebDriverWait):
        def until(self, method, message: str = ""):
            try:
                return super().until(method, message)
            except TimeoutException as exc:
                what = message or getattr(method, "__name__", repr(method))
                raise TimeoutException(f"{what}: gave up on {driver.current_url} ({driver.title!r})") from exc

    # Pages reload under the test (a form posts and comes back, a reply re-renders), so an
    # element found a moment ago may be gone: look again rather than fail.
    return Wait(
        driver, timeout, poll_frequency=0.02, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    )


def replaced(element):
    """A wait condition: `element`'s page has been replaced by the next one. Selenium's staleness_of, except that
    Chromium, mid-navigation, can also answer "Node with given id does not belong to the document"."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    def gone(_driver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return gone


def by_id(driver, element_id: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def css(driver, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def enter(driver, name: str, text: str) -> None:
    """Replace what the field with id `name` holds by `text`."""
    field = by_id(driver, name)
    field.clear()
    field.send_keys(text)


def type_and_send(driver, element_id: str, text: str) -> None:
    """Type `text` into a box and press Enter once the box holds all of it. On a loaded machine, keys typed
    just after a modal dialog closes can arrive while the page is still inert and be lost (the keydown
    events fire, no text goes in): type again until the box holds the text."""
    from selenium.webdriver.common.keys import Keys

    box = by_id(driver, element_id)
    for _attempt in range(5):
        box.clear()
        box.send_keys(text)
        try:
            waiter(driver, 2).until(lambda d: box.get_attribute("value") == text, "the text in the box")
            break
        except Exception:
            continue
    box.send_keys(Keys.ENTER)


def choose(driver, select_id: str, visible_text: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(by_id(driver, select_id)).select_by_visible_text(visible_text)


def log_in(driver, base_url: str, username: str, password: str) -> None:
    """Log in through the form, and wait for the home page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(base_url + "/accounts/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password + Keys.ENTER)
    waiter(driver).until(lambda d: css(d, "#new-chat-input"))


def last_reply(driver):
    """The conversation's latest reply, or None before the first."""
    replies = css(driver, "li.message--assistant")
    return replies[-1] if replies else None


def flash(driver) -> str:
    return " ".join(item.text for item in css(driver, ".flash li"))


def severe_errors(driver) -> list:
    """The page's console errors."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def not_found(driver) -> bool:
    """The site's 404 page (templates/404.html): Selenium sees no status code, only the page."""
    return bool(css(driver, 'main.error-page[data-status="404"]'))


def screenshot(driver, name: str) -> Path:
    """A screenshot of the page, saved as docs/`name` for the README."""
    DOCS.mkdir(exist_ok=True)
    path = DOCS / name
    assert driver.save_screenshot(str(path))
    return path

"""Importing conversations as a person does, in real headless Chromium against a real daphne process: Import
from the sidebar, a ChatGPT export chosen with the file input, its progress and then the summary, the imported
conversation opened from the sidebar on its current branch; then a malformed file, and the error that says why.

The export is built by the test (tests/chatgpt_export.py), large enough that the import is seen under way.
"""

import re

import pytest

from tests.chatgpt_export import OTTER_BRANCH, START, many_conversations, otter_chat, write_zip
from tests.e2e.browser import by_id, css, flash, log_in, require_chromium, severe_errors, waiter
from tests.e2e.live import demo_app

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "ines", "ines-password-123"


@pytest.fixture(scope="module")
def import_app(tmp_path_factory):
    require_chromium()
    directory = tmp_path_factory.mktemp("browser-import")
    with demo_app(directory, users=[(USERNAME, PASSWORD)], demo_delay="0.02") as server:
        yield server


def open_import_page(driver) -> None:
    by_id(driver, "import-link").click()
    waiter(driver).until(lambda d: css(d, "#import-file"), "the Import page")


def choose_and_submit(driver, path) -> None:
    by_id(driver, "import-file").send_keys(str(path))
    css(driver, "#import-form button[type=submit]")[0].click()
    waiter(driver).until(lambda d: f"Importing “{path.name}”" in flash(d), "the upload's flash message")


def newest_job(driver):
    return css(driver, ".import-job")[0]


def test_import_a_chatgpt_export_then_open_its_conversation_and_see_a_broken_file_refused(import_app, open_browser, tmp_path):
    chat, _ = otter_chat(start=START + 10_000_000)  # the newest: first in the sidebar
    conversations = [*many_conversations(400, 20), chat.as_dict()]
    export = write_zip(tmp_path / "chatgpt-export.zip", conversations, split=150)
    browser = open_browser()
    log_in(browser, import_app.url, USERNAME, PASSWORD)

    open_import_page(browser)
    choose_and_submit(browser, export)
    progress = re.compile(r"^\d+ of 401 conversations$")
    waiter(browser, 30).until(
        lambda d: progress.match(newest_job(d).find_element("css selector", ".import-state").text), "the progress"
    )
    assert newest_job(browser).find_element("css selector", "progress").is_displayed()

    def summary(d) -> str:
        element = newest_job(d).find_element("css selector", ".import-summary")
        return element.text if element.is_displayed() else ""

    def imported_link(d):
        """Once done, the page reloads so that the sidebar lists the imported conversations: the link, then."""
        done = newest_job(d).find_element("css selector", ".import-state").text == "Done."
        links = [link for link in css(d, ".sidebar-list a") if link.text == "Otter diets"]
        return done and summary(d) == "Imported: 401. Skipped (imported before): 0. Not imported: 0." and links and links[0]

    waiter(browser, 90).until(imported_link, "the summary, and the sidebar listing the imported conversations").click()
    waiter(browser).until(lambda d: css(d, "li.message--assistant"), "the imported conversation")
    assert [message.text for message in css(browser, "li.message .message-body")] == OTTER_BRANCH
    assert severe_errors(browser) == []

    broken = tmp_path / "broken.json"
    broken.write_text('[{"title": "x", "mapping": {}}\n{"title": "y"}]')
    open_import_page(browser)
    choose_and_submit(browser, broken)
    waiter(browser, 30).until(
        lambda d: newest_job(d).find_elements("css selector", ".import-error")
        and newest_job(d).find_element("css selector", ".import-error").text
        == "Failed: broken.json is not valid JSON: Expecting ',' delimiter at line 2, column 1.",
        "the error for the broken file",
    )
    assert not newest_job(browser).find_element("css selector", ".import-summary").is_displayed()
    assert severe_errors(browser) == []

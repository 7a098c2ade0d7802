"""The provider admin as a superuser uses it, in real headless Chromium against a real daphne process: add a
provider on this machine, see Test connection refuse it until it is marked an internal server, test it, import
its models, and try to move it to another server without entering the key again.

Both model servers are tests/fake_openai.py on loopback, so the test reads what each was sent.
"""

import pytest

from tests.e2e.browser import by_id, choose, css, enter, replaced, require_chromium, severe_errors, waiter
from tests.e2e.live import demo_app
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.browser

ADMIN, ADMIN_PASSWORD = "root", "pw-root"  # as factories.make_superuser makes them
KEY, OTHER_KEY = "sk-lab-0123456789abcdef", "sk-elsewhere-9876543210"
SETUP = "from tests import factories\nfactories.make_superuser(username='root')"


@pytest.fixture(scope="module")
def admin_app(tmp_path_factory):
    require_chromium()
    with demo_app(tmp_path_factory.mktemp("browser-admin"), users=[], demo_delay="0", setup=SETUP) as server:
        yield server


@pytest.fixture
def elsewhere():
    """A second model server: where someone who may edit providers would like the key to go."""
    server = FakeOpenAI().start()
    yield server
    server.stop()


def admin_log_in(driver, base_url: str, next_path: str) -> None:
    driver.get(f"{base_url}/admin/login/?next={next_path}")
    by_id(driver, "id_username").send_keys(ADMIN)
    by_id(driver, "id_password").send_keys(ADMIN_PASSWORD)
    css(driver, "#login-form [type=submit]")[0].click()
    waiter(driver).until(lambda d: "/login/" not in d.current_url)


def admin_messages(driver) -> str:
    return " ".join(item.text for item in css(driver, ".messagelist li"))


def save_and_continue(driver) -> None:
    """Press "Save and continue editing" and wait for the page it leads to (on a loaded machine the old page
    is still there for a moment after the click)."""
    page = driver.find_element("tag name", "html")
    css(driver, "input[name=_continue]")[0].click()
    waiter(driver).until(replaced(page), "the page after saving")
    waiter(driver).until(lambda d: css(d, ".messagelist li, .errornote"))


def press_test_connection(driver) -> str:
    buttons = [b for b in css(driver, ".object-tools button") if b.text.strip().lower() == "test connection"]
    buttons[0].click()
    waiter(driver).until(lambda d: "Lab:" in admin_messages(d))
    return admin_messages(driver)


def authorizations(server: FakeOpenAI) -> list[str]:
    return [request.headers.get("authorization", "") for request in server.requests]


def test_a_provider_on_this_machine_is_refused_then_allowed_tested_imported_and_its_key_stays_put(
    admin_app, open_browser, upstream, elsewhere
):
    from selenium.webdriver.support.ui import Select

    driver = open_browser(1280, 900)
    admin_log_in(driver, admin_app.url, "/admin/conversations/provider/add/")

    # Added with its key; the model server is on 127.0.0.1, so Test connection refuses it.
    by_id(driver, "id_name").send_keys("Lab")
    choose(driver, "id_kind", "OpenAI-compatible (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter…)")
    enter(driver, "id_base_url", upstream.base_url)
    by_id(driver, "id_api_key").send_keys(KEY)
    save_and_continue(driver)
    assert "was added successfully" in admin_messages(driver)
    assert by_id(driver, "id_api_key").get_attribute("value") == ""  # never sent back to the browser
    refused = press_test_connection(driver)
    assert "127.0.0.1 is a loopback address" in refused and "marked as an internal server" in refused
    assert upstream.requests == []

    # Marked as an internal server (the key is not typed again: the address did not change), it answers.
    by_id(driver, "id_allow_internal").click()
    save_and_continue(driver)
    assert "was changed successfully" in admin_messages(driver)
    report = press_test_connection(driver)
    assert "1 model listed" in report and "one token from fake-model" in report
    assert set(authorizations(upstream)) == {f"Bearer {KEY}"}

    # Import models, from the list's actions.
    driver.get(f"{admin_app.url}/admin/conversations/provider/")
    css(driver, "#result_list input.action-select")[0].click()
    Select(css(driver, "#changelist-form select[name=action]")[0]).select_by_visible_text("Import models (added disabled)")
    css(driver, "#changelist-form button[name=index]")[0].click()
    waiter(driver).until(lambda d: "added, disabled" in admin_messages(d))
    assert "Lab: 1 model added, disabled" in admin_messages(driver)

    # Moved to another server without the key: refused, and the other server hears nothing.
    css(driver, "#result_list tbody th a")[0].click()
    waiter(driver).until(lambda d: css(d, "#id_base_url"))
    upstream.reset()
    enter(driver, "id_base_url", elsewhere.base_url)
    save_and_continue(driver)
    assert "Enter the API key again" in css(driver, ".field-api_key .errorlist")[0].text
    driver.get(driver.current_url)
    assert by_id(driver, "id_base_url").get_attribute("value") == upstream.base_url  # nothing was saved
    assert "Lab:" in press_test_connection(driver)
    assert elsewhere.requests == [] and set(authorizations(upstream)) == {f"Bearer {KEY}"}

    # With a key entered for it, the provider moves, and only that key goes there.
    enter(driver, "id_base_url", elsewhere.base_url)
    by_id(driver, "id_api_key").send_keys(OTHER_KEY)
    save_and_continue(driver)
    assert "was changed successfully" in admin_messages(driver)
    assert "one token from fake-model" in press_test_connection(driver)
    assert set(authorizations(elsewhere)) == {f"Bearer {OTHER_KEY}"}
    assert severe_errors(driver) == []

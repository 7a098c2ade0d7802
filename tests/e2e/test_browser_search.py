"""Search as a person uses it, in real headless Chromium against a real daphne process: Ctrl+K focuses the
sidebar's box, results show with the match marked, and a result opens its conversation on the found message's
branch (an older version, not the current one), scrolled to it and highlighted."""

import pytest

from tests.e2e.browser import by_id, css, log_in, require_chromium, severe_errors, waiter
from tests.e2e.live import demo_app

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "sam", "sam-password-123"

# A long conversation whose current branch ends on "Crayfish."; the reply that says "quagga" is on the other
# version of the last question, deep enough that the page must scroll to show it. Saved, then indexed as
# migration 0010 indexes what is already there.
SETUP = """
from django.contrib.auth import get_user_model
from conversations.fulltext import index
from conversations.models import Conversation, Message
from conversations.rendering import render_markdown
owner = get_user_model().objects.get(username="sam")
chat = Conversation.objects.create(owner=owner, title="Zoo notes")
parent = None
for number in range(30):
    role = "user" if number % 2 == 0 else "assistant"
    content = f"Line {number} " + "words " * 40
    parent = Message.objects.create(conversation=chat, role=role, content=content, parent=parent,
                                    author=owner if role == "user" else None, html=render_markdown(content))
old = Message.objects.create(conversation=chat, role="user", content="Which zebra died out?", parent=parent, author=owner)
found = Message.objects.create(conversation=chat, role="assistant", content="The quagga, in 1883.", parent=old,
                               html=render_markdown("The quagga, in 1883."))
new = Message.objects.create(conversation=chat, role="user", content="Which horse is wild?", parent=parent, author=owner)
leaf = Message.objects.create(conversation=chat, role="assistant", content="Crayfish.", parent=new, html="<p>Crayfish.</p>")
Conversation.objects.filter(pk=chat.pk).update(current_leaf=leaf)
Conversation.objects.create(owner=owner, title="Other chat")
index.index_everything()
"""


@pytest.fixture(scope="module")
def search_app(tmp_path_factory):
    require_chromium()
    directory = tmp_path_factory.mktemp("browser-search")
    with demo_app(directory, users=[(USERNAME, PASSWORD)], demo_delay="0.02", setup=SETUP) as server:
        yield server


def test_ctrl_k_search_and_open_the_result_on_its_branch_scrolled_to_the_message(search_app, open_browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver = open_browser(1280, 700)
    log_in(driver, search_app.url, USERNAME, PASSWORD)
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("k").key_up(Keys.CONTROL).perform()
    waiter(driver).until(lambda d: d.switch_to.active_element.get_attribute("id") == "sidebar-search-input", "Ctrl+K focus")
    driver.switch_to.active_element.send_keys("quaggas" + Keys.ENTER)

    waiter(driver).until(lambda d: css(d, ".search-result"), "results")
    (result,) = css(driver, ".search-result")
    assert "Zoo notes" in result.text
    assert [mark.text for mark in result.find_elements("css selector", ".search-snippet mark")] == ["quagga"]
    result.find_element("css selector", "a").click()

    waiter(driver).until(lambda d: css(d, "li.message.is-found"), "the found message highlighted")
    (found,) = css(driver, "li.message.is-found")
    assert "The quagga, in 1883." in found.text
    assert "Crayfish." not in by_id(driver, "chat").text  # the found message's branch, not the current one
    in_view = driver.execute_script(
        "const box = arguments[0].getBoundingClientRect(); return box.top >= 0 && box.top < window.innerHeight;", found
    )
    assert in_view, "scrolled to the found message"
    assert not severe_errors(driver)

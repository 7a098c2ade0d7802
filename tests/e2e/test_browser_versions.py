"""Every version kept, as people use it in real headless Chromium against a real daphne process: edit a
question, regenerate an earlier answer, move between versions with ‹ ›, reload and find the same branch,
and a teammate watching live who sees the new reply stream and can look at versions but not change them.

The model is tests/fake_openai.py on loopback, so the test reads exactly which messages each reply was sent.
"""

import pytest

from tests.e2e.browser import by_id, css, log_in, require_chromium, severe_errors, waiter
from tests.e2e.live import demo_app
from tests.fake_openai import reply

pytestmark = pytest.mark.browser

OWNER, VIEWER = ("ann", "ann-password-123"), ("ben", "ben-password-123")

SETUP = """
from django.contrib.auth import get_user_model
from conversations.models import Conversation, Message, ModelConfig, Provider, Share
from conversations.rendering import render_markdown
provider = Provider.objects.create(name="Fake", base_url={base_url!r}, timeout=10, allow_internal=True)
ModelConfig.objects.create(display_name="Fake", provider=provider, model="fake-model", is_default=True)
ann, ben = (get_user_model().objects.get(username=name) for name in ("ann", "ben"))
chat = Conversation.objects.create(owner=ann, title="Versions")
for role, text in [("user", "First question"), ("assistant", "First answer"),
                   ("user", "Second question"), ("assistant", "Second answer")]:
    Message.objects.create(conversation=chat, role=role, content=text, author=ann if role == "user" else None,
                           html=render_markdown(text) if role == "assistant" else "")
Share.objects.create(conversation=chat, user=ben, role=Share.Role.VIEWER)
print(chat.pk)
"""


@pytest.fixture(scope="module")
def versions_app(tmp_path_factory, fake_openai_server):
    require_chromium()
    directory = tmp_path_factory.mktemp("browser-versions")
    setup = SETUP.format(base_url=fake_openai_server.base_url)
    with demo_app(directory, users=[OWNER, VIEWER], demo_delay="0.02", setup=setup) as server:
        yield server


def texts(driver) -> list[str]:
    """The branch the page shows: each message's text, in order."""
    return [element.text for element in css(driver, "li.message .message-body")]


def message(driver, text: str):
    """The message the page shows with this text."""
    for element in css(driver, "li.message"):
        if element.find_element("css selector", ".message-body").text == text:
            return element
    raise AssertionError(f"no message reads {text!r}; the page shows {texts(driver)}")


def versions(driver, text: str) -> str:
    """The "n / m" beside a message, or "" when it has one version."""
    nav = message(driver, text).find_element("css selector", ".versions")
    return nav.text.replace("‹", "").replace("›", "").strip() if nav.is_displayed() else ""


def click(driver, text: str, button: str) -> None:
    message(driver, text).find_element("css selector", button).click()


def shows(driver, expected: list[str], timeout: float = 20) -> None:
    def settled(d) -> bool:
        return texts(d) == expected and not css(d, 'li.message[data-status="streaming"]')

    try:
        waiter(driver, timeout).until(settled, f"the page to show {expected}")
    except Exception as exc:
        raise AssertionError(f"expected {expected}, the page shows {texts(driver)}") from exc


def sent_history(upstream) -> list[str]:
    return [turn["content"] for turn in upstream.requests[-1].body["messages"] if turn["role"] != "system"]


def open_conversation(driver, base_url: str, account: tuple[str, str]) -> None:
    log_in(driver, base_url, *account)
    driver.find_element("partial link text", "Versions").click()
    waiter(driver).until(lambda d: "/c/" in d.current_url and css(d, "li.message"))


def test_edit_regenerate_and_move_between_versions_while_a_teammate_watches(versions_app, open_browser, upstream):
    from selenium.webdriver.common.keys import Keys

    ann, ben = open_browser(), open_browser()
    open_conversation(ann, versions_app.url, OWNER)
    open_conversation(ben, versions_app.url, VIEWER)
    original = ["First question", "First answer", "Second question", "Second answer"]
    shows(ann, original)

    # 0. Edit, then Cancel: the question is back as it was, and nothing was sent.
    click(ann, "Second question", ".message-edit")
    editor = css(ann, ".message-editor textarea")[0]
    editor.send_keys(" (never sent)")
    css(ann, ".message-editor .edit-cancel")[0].click()
    assert not css(ann, ".message-editor") and texts(ann) == original and upstream.requests == []

    # 1. ann edits her second question. The old one stays as version 1 of 2; the model is sent only the
    #    branch the new question is on; ben, watching, sees the new reply stream in.
    upstream.push(reply("A rephrased answer, streamed word by word.", delay=0.08))
    click(ann, "Second question", ".message-edit")
    editor = css(ann, ".message-editor textarea")[0]
    assert editor.get_attribute("value") == "Second question"
    editor.clear()
    editor.send_keys("Second question, rephrased")
    css(ann, ".message-editor .edit-save")[0].click()
    waiter(ben, 10).until(
        lambda d: css(d, 'li.message--assistant[data-status="streaming"]'), "ben to see the new reply streaming"
    )
    edited = ["First question", "First answer", "Second question, rephrased", "A rephrased answer, streamed word by word."]
    shows(ann, edited)
    shows(ben, edited)
    assert sent_history(upstream) == ["First question", "First answer", "Second question, rephrased"]
    assert versions(ann, "Second question, rephrased") == versions(ben, "Second question, rephrased") == "2 / 2"

    # 2. ann regenerates the FIRST answer, not the last: a new version of it, sent only the first question.
    upstream.push(reply("Another first answer."))
    click(ann, "First answer", ".message-regenerate")
    shows(ann, ["First question", "Another first answer."])
    assert sent_history(upstream) == ["First question"]
    assert versions(ann, "Another first answer.") == "2 / 2"
    shows(ben, ["First question", "Another first answer."])  # ben's page follows the new reply

    # 3. ‹ goes back to the first answer and the newest branch below it; a reload shows the same branch.
    click(ann, "Another first answer.", ".version-previous")
    shows(ann, edited)
    assert versions(ann, "First answer") == "1 / 2"
    ann.refresh()
    shows(ann, edited)
    click(ann, "Second question, rephrased", ".version-previous")
    shows(ann, original)
    assert versions(ann, "Second question") == "1 / 2"
    ann.refresh()
    shows(ann, original)

    # 4. ben, a viewer, moves between versions too, but cannot edit or regenerate, and his choice is his own:
    #    ann's reload still shows the branch she chose.
    assert not css(ben, ".message-edit") and not css(ben, ".message-regenerate")
    click(ben, "Another first answer.", ".version-previous")
    shows(ben, edited)
    click(ben, "Second question, rephrased", ".version-previous")
    shows(ben, original)
    ann.refresh()
    shows(ann, original)

    # 5. A send answers the branch on the page: ann, on the original branch, asks a third question.
    upstream.push(reply("Third answer."))
    by_id(ann, "composer-input").send_keys("Third question" + Keys.ENTER)
    shows(ann, [*original, "Third question", "Third answer."])
    assert sent_history(upstream) == [*original, "Third question"]
    assert not severe_errors(ann) and not severe_errors(ben)

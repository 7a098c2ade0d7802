"""Markdown in the browser and the Copy buttons, in real headless Chromium against a real daphne process:
a streaming reply shows formatted Markdown that nothing in it can turn into live markup, the server's HTML
replaces it at `done`, and the Copy buttons of a code block and of a message put the right text on the
clipboard. The page's CSP (`script-src 'self'`) is on throughout: any violation is a console error.

The model is tests/fake_openai.py on loopback, streaming a scripted reply slowly enough to watch.
"""

import pytest

from tests.e2e.browser import by_id, css, last_reply, log_in, require_chromium, severe_errors, waiter
from tests.fake_openai import reply

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "dee", "dee-password-123"

SETUP = """
from conversations.models import ModelConfig, Provider
provider = Provider.objects.create(name="Fake", base_url={base_url!r}, timeout=10, allow_internal=True)  # on 127.0.0.1
ModelConfig.objects.create(display_name="Fake", provider=provider, model="fake-model", is_default=True)
"""

CODE = "print('hi')\nprint(\"there\")"

# A reply that formats, then tries what a prompt injection might: each attempt would set window.__xss.
PIECES = [
    "Some **bold** text, ",
    "then a quote:\n\n",
    "> quoted words\n\n",
    "```python\n",
    CODE + "\n",
    "```\n\n",
    '<img src=x onerror="window.__xss = 1">\n\n',
    "[click me](javascript:window.__xss=2) ",
    "[me too](JaVaScRiPt:window.__xss=3)\n\n",
    "<script>window.__xss = 4</script>\n\n",
    '<iframe src="javascript:window.__xss = 5"></iframe>\n\n',
    '<a href="javascript:window.__xss = 6">raw link</a> ',
    "![pic](https://images.example/p.png)\n\n",
    "The end.",
]
SOURCE = "".join(PIECES)

# What the page finds in the latest reply, read in one go (so status and body belong together).
SNAPSHOT = """
const reply = [...document.querySelectorAll("li.message--assistant")].pop();
if (!reply) return null;
const body = reply.querySelector(".message-body");
const attributes = [...body.querySelectorAll("*")].flatMap((element) => [...element.attributes]);
return {
  status: reply.dataset.status,
  text: body.textContent,
  strong: body.querySelector("strong")?.textContent ?? null,
  quote: body.querySelector("blockquote")?.textContent.trim() ?? null,
  code: body.querySelector("pre.highlight > code.language-python")?.textContent ?? null,
  label: body.querySelector("pre.highlight > .code-lang")?.textContent ?? null,
  highlighted: body.querySelectorAll("pre code span").length,
  imageButton: body.querySelector("button.remote-image")?.dataset.src ?? null,
  live: body.querySelectorAll("img, script, iframe, object, embed").length,
  scriptUrls: attributes.filter((a) => /^\\s*javascript:/i.test(a.value)).length,
  handlers: attributes.filter((a) => a.name.startsWith("on")).length,
  rels: [...body.querySelectorAll("a")].map((a) => a.rel),
  xss: window.__xss ?? null,
  violations: window.__violations ?? [],
  everLive: window.__everLive ?? false,
};
"""

# From the moment the conversation page is up: any element that could run or load something, ever
# present in a message for a moment, is remembered, and so is any CSP violation.
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
const list = document.getElementById("messages");
new MutationObserver(() => {
  if (list.querySelector(".message-body :is(img, script, iframe, object, embed, [href^='javascript:' i])")) {
    window.__everLive = true;
  }
}).observe(list, { childList: true, subtree: true, attributes: true });
"""

# Markdown the browser and the server must turn into the same page (code aside, which only the server colours).
PARITY_SAMPLES = [
    "**bold** *em* ~~del~~ `code` [link](https://x.example \"t\") <https://auto.example> [rel](/a/b) [m](mailto:a@b.c)",
    "# H1\n## H2\n###### H6\n\n---\n\n> quote\n> more\n\n1. one\n2. two\n\n5. five\n\n- a\n- b\n\n  - nested",
    "```nolang extra words\nx < y && \"q\" 'a'\n```\n\n```\nplain\n```\n\n    indented code\n\n```c++\nint main();\n```",
    "| a | b | c |\n|:-|:-:|-:|\n| 1 | 2 | 3 |\n| x |\n",
    "![alt *x*](https://e.example/p.png \"t\") ![a](/local.png) ![](http://h.example:8080/q?a=1&b=2) ![z](ftp://f/x)",
    "[l](javascript:alert(1)) [d](data:text/html,x) [t](tel:123) [f](file:///etc/passwd) <b onclick=x>raw</b> <!-- c -->",
    "line one  \nline two\\\nline three &amp; &copy; &#x27; &nbsp; [x][ref]\n\n[ref]: https://r.example \"Ref\"",
    "<img src=x onerror=alert(1)>\n\n<script>alert(1)</script>\n\n<iframe src=x></iframe>\n\n<div style=\"x\">d</div>",
    "![b](https://пример.example/p.png) [title](https://x.example \"javascript:not-a-url\") *unclosed **nesting",
]

# The browser's rendering of each text, and the server's HTML as the browser reads it, colours taken out.
RENDER_BOTH = """
const [texts, serverHtml] = arguments;
return texts.map((text, index) => {
  const ours = document.createElement("div");
  chatRender.markdown(ours, text);
  const theirs = document.createElement("div");
  theirs.innerHTML = serverHtml[index];
  theirs.querySelectorAll("pre code span").forEach((span) => span.replaceWith(span.textContent));
  theirs.normalize();
  return [ours.innerHTML, theirs.innerHTML];
});
"""

READ_CLIPBOARD = """
const done = arguments[arguments.length - 1];
navigator.clipboard.readText().then(done, (error) => done(`ERROR ${error}`));
"""


@pytest.fixture(scope="module")
def render_app(tmp_path_factory, fake_openai_server):
    """The app (static files collected, as in production) with one model, answered by the fake server."""
    from tests.e2e.live import demo_app

    require_chromium()
    directory = tmp_path_factory.mktemp("browser-render")
    setup = SETUP.format(base_url=fake_openai_server.base_url)
    with demo_app(directory, users=[(USERNAME, PASSWORD)], demo_delay="0.02", setup=setup) as server:
        yield server


@pytest.fixture
def desktop(open_browser, render_app):
    """A desktop-sized browser (a mouse: Copy buttons show on hover) that may use the clipboard."""
    driver = open_browser(1280, 900)
    driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"], "origin": render_app.url},
    )
    return driver


def snapshot(driver) -> dict | None:
    return driver.execute_script(SNAPSHOT)


def start_chat(driver, base_url: str, text: str) -> None:
    """Log in and start a chat from the home page; the page then watches its messages (WATCH)."""
    from selenium.webdriver.common.keys import Keys

    log_in(driver, base_url, USERNAME, PASSWORD)
    by_id(driver, "new-chat-input").send_keys(text + Keys.ENTER)
    waiter(driver).until(lambda d: "/c/" in d.current_url and css(d, "#messages"), "the conversation page")
    driver.execute_script(WATCH)


def wait_complete(driver) -> None:
    waiter(driver, 30).until(
        lambda d: last_reply(d) is not None and last_reply(d).get_attribute("data-status") == "complete",
        "the reply to complete",
    )


def click_when_shown(driver, container, button) -> None:
    """Point at `container` (with a mouse, a Copy button shows on hover), then click `button`."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(container).perform()
    waiter(driver, 5).until(lambda d: button.is_displayed(), "the Copy button to show")
    button.click()


def read_clipboard(driver) -> str:
    driver.set_script_timeout(5)
    return driver.execute_async_script(READ_CLIPBOARD)


def test_a_streaming_reply_shows_markdown_that_cannot_run_anything(render_app, desktop, upstream):
    upstream.push(reply(PIECES, delay=0.25))
    start_chat(desktop, render_app.url, "Format something")

    # Mid-stream, once everything up to the image has arrived (the image is its button's label by then):
    # formatted, and inert.
    def all_but_the_end_streamed(driver) -> dict | None:
        seen = snapshot(driver)
        if seen and seen["status"] == "streaming" and "Show image from images.example: pic" in seen["text"]:
            return seen
        return None

    streaming = waiter(desktop, 20).until(all_but_the_end_streamed, "the reply mid-stream, past its attacks")
    assert streaming["strong"] == "bold"
    assert streaming["quote"] == "quoted words"
    assert streaming["code"] == CODE + "\n"
    assert streaming["label"] == "python"
    assert streaming["highlighted"] == 0  # the browser does not colour code; the server does
    assert streaming["imageButton"] == "https://images.example/p.png"  # a button, as the server renders it
    # Raw HTML is shown as text, as the server shows it; a javascript: link is no link.
    assert '<img src=x onerror="window.__xss = 1">' in streaming["text"]
    assert "<script>window.__xss = 4</script>" in streaming["text"]
    assert "[click me](javascript:window.__xss=2)" in streaming["text"]
    assert streaming["live"] == 0
    assert streaming["scriptUrls"] == 0
    assert streaming["handlers"] == 0

    wait_complete(desktop)
    final = snapshot(desktop)
    assert final["highlighted"] > 0  # the server's HTML (Pygments) replaced the browser's
    assert final["code"] == CODE + "\n"
    assert final["strong"] == "bold" and final["quote"] == "quoted words"
    assert final["live"] == 0 and final["scriptUrls"] == 0 and final["handlers"] == 0
    assert not final["everLive"]  # not even for a moment, while streaming or after
    assert final["xss"] is None
    assert final["violations"] == []
    assert severe_errors(desktop) == []


def test_the_browser_renders_markdown_as_the_server_does(render_app, desktop):
    from conversations.rendering import render_markdown

    desktop.get(render_app.url + "/accounts/login/")  # any page: base.html loads render.js everywhere
    server = [render_markdown(text) for text in PARITY_SAMPLES]
    rendered = desktop.execute_script(RENDER_BOTH, PARITY_SAMPLES, server)
    for text, (ours, theirs) in zip(PARITY_SAMPLES, rendered, strict=True):
        assert ours == theirs, text
    assert severe_errors(desktop) == []


def test_the_code_copy_button_copies_the_code_without_its_label(render_app, desktop, upstream):
    upstream.push(reply(PIECES, delay=0.01))
    start_chat(desktop, render_app.url, "Some code please")
    wait_complete(desktop)

    pre = last_reply(desktop).find_element("css selector", ".message-body pre")
    button = pre.find_element("css selector", "button.code-copy")
    assert button.get_attribute("aria-label") == "Copy code"
    # Headless Chromium has no mouse ("hover: none"), so the button shows as on a touch screen: always,
    # beside the language label.
    label = pre.find_element("css selector", ".code-lang")
    assert button.is_displayed() and label.is_displayed()
    assert label.rect["x"] + label.rect["width"] <= button.rect["x"]
    click_when_shown(desktop, pre, button)
    waiter(desktop, 5).until(lambda d: button.text == "Copied", "the Copied feedback")
    assert read_clipboard(desktop) == CODE
    waiter(desktop, 5).until(lambda d: button.text == "Copy", "the button's label back after a moment")
    assert button.get_attribute("aria-label") == "Copy code"

    # Without the Clipboard API (a plain-http page elsewhere than localhost): the selection fallback.
    desktop.execute_async_script("navigator.clipboard.writeText('something else').then(arguments[0], arguments[0])")
    assert read_clipboard(desktop) == "something else"
    desktop.execute_script("Object.defineProperty(navigator, 'clipboard', {value: undefined, configurable: true})")
    click_when_shown(desktop, pre, button)
    waiter(desktop, 5).until(lambda d: button.text == "Copied", "the Copied feedback, copied without the API")
    desktop.execute_script("delete navigator.clipboard")  # the API back, to read what was copied
    assert read_clipboard(desktop) == CODE
    assert not css(desktop, ".copy-buffer")  # the fallback's textarea is gone again

    # A page loaded with the reply in it has the button too, once per block however often it is enhanced.
    desktop.refresh()
    waiter(desktop).until(lambda d: css(d, "li.message--assistant .message-body pre button.code-copy"), "the button")
    desktop.execute_script("chatRender.enhance(document); chatRender.enhance(document.body)")
    assert len(css(desktop, "button.code-copy")) == len(css(desktop, ".message-body pre")) == 1
    assert severe_errors(desktop) == []


def test_the_message_copy_button_copies_the_markdown_source(render_app, desktop, upstream):
    upstream.push(reply(PIECES, delay=0.01))
    start_chat(desktop, render_app.url, "Copy *this* question")
    wait_complete(desktop)

    # Every message has one (chat.js gives it the message's JSON address); a reload keeps them.
    desktop.refresh()
    waiter(desktop).until(lambda d: len(css(d, "li.message button.message-copy")) == 2, "the Copy buttons")
    answer_button = css(desktop, "li.message--assistant button.message-copy")[0]
    question_button = css(desktop, "li.message--user button.message-copy")[0]
    assert answer_button.get_attribute("data-source-url").endswith(
        f"/messages/{css(desktop, 'li.message--assistant')[0].get_attribute('data-id')}/"
    )

    answer_button.click()
    waiter(desktop, 5).until(lambda d: answer_button.text == "Copied", "the Copied feedback")
    assert read_clipboard(desktop) == SOURCE  # the Markdown, asterisks and all, not the page's text
    waiter(desktop, 5).until(lambda d: answer_button.text == "Copy", "the button's label back")

    question_button.click()
    waiter(desktop, 5).until(lambda d: question_button.text == "Copied", "the Copied feedback")
    assert read_clipboard(desktop) == "Copy *this* question"
    assert snapshot(desktop)["violations"] == []
    assert severe_errors(desktop) == []

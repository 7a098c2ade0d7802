"""render_markdown: the allow-list between untrusted model output and the page."""

import re
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest

from conversations.rendering import render_markdown, render_plain

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "span", "button",
    "sup", "sub",
}  # fmt: skip
SAFE_SCHEMES = {"http", "https", "mailto"}
URL_ATTRIBUTES = {"href", "src", "data-src", "action", "formaction", "xlink:href", "background", "poster"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.elements.append(Element(tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text += data


def parse(html: str) -> _Collector:
    """The elements and text a browser would build from `html` (attribute values with entities decoded)."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector


def elements(html: str, tag: str | None = None) -> list[Element]:
    return [element for element in parse(html).elements if tag is None or element.tag == tag]


def scheme_of(url: str) -> str:
    """The scheme a browser would see: control characters and whitespace dropped, case folded."""
    cleaned = re.sub(r"[\x00-\x20]", "", url).lower()
    match = re.match(r"([a-z][a-z0-9+.\-]*):", cleaned)
    return match.group(1) if match else ""


def assert_safe(html: str) -> None:
    """Only allowed tags, no event handlers or inline styles, and only safe URL schemes."""
    for element in parse(html).elements:
        assert element.tag in ALLOWED_TAGS, f"<{element.tag}> survived in {html!r}"
        for name, value in element.attrs.items():
            assert not name.startswith("on"), f"event handler {name}= on <{element.tag}> in {html!r}"
            assert name != "style", f"inline style on <{element.tag}> in {html!r}"
            assert name != "src", f"src= on <{element.tag}> in {html!r}"
            if name in URL_ATTRIBUTES and scheme_of(value):
                assert scheme_of(value) in SAFE_SCHEMES, f"{name}={value!r} in {html!r}"
    assert "<img" not in html.lower()
    assert "<script" not in html.lower()


HOSTILE = [
    # scripts
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    "```\n</code></pre><script>alert(1)</script>\n```",
    "`<script>alert(1)</script>`",
    "> <script>alert(1)</script>",
    "- <script>alert(1)</script>",
    "| a |\n|---|\n| <script>alert(1)</script> |",
    # event handlers
    "<img src=x onerror=alert(1)>",
    '<img src="x" onerror="alert(1)">',
    "<IMG SRC=x OnError=alert(1)>",
    '<a href="x" onmouseover=alert(1)>hover</a>',
    "<div onclick=\"alert(1)\">click</div>",
    "<body onload=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    '[x](https://ok.example "t\\" onclick=\\"alert(1)")',
    '![x" onerror="alert(1)](https://a.example/x.png)',
    '![x](https://a.example/"onerror="alert(1))',
    "<p style=\"background:url(javascript:alert(1))\">x</p>",
    # links
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](java&#115;cript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](java\\\nscript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](VBSCRIPT:msgbox(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](DATA:text/html,x)",
    "[x](file:///etc/passwd)",
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "[x][ref]\n\n[ref]: data:text/html,x",
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html,x>",
    '<a href="javascript:alert(1)">x</a>',
    # images
    "![](https://elsewhere.example/p.png?q=SECRET)",
    "![](javascript:alert(1))",
    "![](data:image/svg+xml,<svg onload=alert(1)>)",
    "![a][img]\n\n[img]: https://elsewhere.example/p.png",
    "[![inner](https://elsewhere.example/p.png)](https://ok.example)",
    '<img src="https://elsewhere.example/p.png">',
    # containers and active content
    "<iframe src=https://evil.example></iframe>",
    "<svg><script>alert(1)</script></svg>",
    "<svg onload=alert(1)>",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
    '<form action="https://evil.example"><button>go</button></form>',
    "<style>body{display:none}</style>",
    "<object data=x></object>",
    "<embed src=x>",
    "<base href=https://evil.example/>",
    "<meta http-equiv=refresh content=0;url=https://evil.example>",
    "<link rel=stylesheet href=https://evil.example/x.css>",
    "<!-- <script>alert(1)</script> -->",
    "<![CDATA[<script>alert(1)</script>]]>",
    # code fences
    '```x" onclick="alert(1)\ncode\n```',
    "```python onload=alert(1)\nx = 1\n```",
    "```<script>alert(1)</script>\nx\n```",
    "```javascript\nalert('<img src=x onerror=alert(1)>')\n```",
    "~~~html\n<script>alert(1)</script>\n~~~",
    "    <script>alert(1)</script>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_renders_only_allowed_markup(text):
    assert_safe(render_markdown(text))


@pytest.mark.parametrize("text", [t for t in HOSTILE if "script" in t.lower()])
def test_no_script_element_survives(text):
    html = render_markdown(text)
    assert not elements(html, "script")
    assert "<script" not in html.lower()


@pytest.mark.parametrize(
    "text",
    [
        "<img src=x onerror=alert(1)>",
        '<a href="x" onmouseover=alert(1)>hover</a>',
        "<div onclick=alert(1)>x</div>",
        "<svg onload=alert(1)>",
        '[x](https://ok.example "a\\" onclick=\\"alert(1)")',
        '![y" onerror="alert(1)](https://a.example/x.png)',
        '```x" onclick="alert(1)\ncode\n```',
    ],
)
def test_no_event_handler_attribute_survives_in_any_form(text):
    html = render_markdown(text)
    handlers = [name for element in parse(html).elements for name in element.attrs if name.startswith("on")]
    assert handlers == []


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<javascript:alert(1)>",
        "<vbscript:msgbox(1)>",
        "<data:text/html,x>",
        "[x][r]\n\n[r]: javascript:alert(1)",
        "[x](java&#115;cript:alert(1))",
    ],
)
def test_dangerous_link_schemes_never_become_links(text):
    html = render_markdown(text)
    hrefs = [element.attrs.get("href", "") for element in elements(html, "a")]
    assert all(scheme_of(href) in SAFE_SCHEMES for href in hrefs), hrefs


def test_dangerous_link_is_shown_as_text():
    html = render_markdown("[x](javascript:alert(1))")
    assert not elements(html, "a")
    assert "javascript:alert(1)" in parse(html).text


@pytest.mark.parametrize(
    ("text", "href"),
    [
        ("[site](https://ok.example/a?b=1)", "https://ok.example/a?b=1"),
        ("[plain](http://ok.example)", "http://ok.example"),
        ("<https://ok.example/auto>", "https://ok.example/auto"),
        ("[mail](mailto:a@ok.example)", "mailto:a@ok.example"),
    ],
)
def test_safe_links_are_kept(text, href):
    (link,) = elements(render_markdown(text), "a")
    assert link.attrs["href"] == href


@pytest.mark.parametrize("text", ["[site](https://ok.example)", "<https://ok.example>", "[r][1]\n\n[1]: https://ok.example"])
def test_links_open_without_referrer_or_opener_and_are_not_endorsed(text):
    (link,) = elements(render_markdown(text), "a")
    assert link.attrs["rel"] == "noopener noreferrer nofollow"


def test_link_attributes_are_limited_to_href_title_and_rel():
    (link,) = elements(render_markdown('[site](https://ok.example "Title")'), "a")
    assert set(link.attrs) == {"href", "title", "rel"}
    assert link.attrs["title"] == "Title"


# --- images ------------------------------------------------------------------------


def test_remote_image_becomes_a_button_that_loads_nothing():
    html = render_markdown("![](https://elsewhere.example/p.png?q=SECRET)")
    assert "<img" not in html
    (button,) = elements(html, "button")
    assert button.attrs["class"] == "remote-image"
    assert button.attrs["type"] == "button"
    assert button.attrs["data-src"] == "https://elsewhere.example/p.png?q=SECRET"
    assert not [element for element in parse(html).elements if "src" in element.attrs]
    assert not re.search(r"(?<![-\w])src\s*=", html)


def test_remote_image_button_names_the_host_and_the_alt_text():
    html = render_markdown("![a cat](https://elsewhere.example/cat.png)")
    assert parse(html).text.strip() == "Show image from elsewhere.example: a cat"


def test_remote_image_from_a_reference_becomes_a_button():
    html = render_markdown("![a][img]\n\n[img]: https://elsewhere.example/p.png")
    assert "<img" not in html
    assert elements(html, "button")[0].attrs["data-src"] == "https://elsewhere.example/p.png"


def test_image_inside_a_link_is_still_a_button():
    html = render_markdown("[![inner](https://elsewhere.example/p.png)](https://ok.example)")
    assert "<img" not in html
    assert elements(html, "button")


@pytest.mark.parametrize(
    "src",
    [
        "data:image/png;base64,iVBORw0KGgo=",
        "DATA:image/png;base64,AAAA",
        "/relative/p.png",
        "p.png",
        "//elsewhere.example/p.png",
        "ftp://elsewhere.example/p.png",
    ],
)
def test_image_that_is_not_an_absolute_web_url_becomes_its_alt_text(src):
    html = render_markdown(f"![the alt]({src})")
    assert parse(html).text.strip() == "the alt"
    assert not elements(html, "button")
    assert "<img" not in html


def test_image_with_a_script_url_is_not_an_image_at_all():
    html = render_markdown("![the alt](javascript:alert(1))")
    assert not elements(html, "button")
    assert parse(html).text.strip() == "![the alt](javascript:alert(1))"


def test_image_alt_text_is_escaped():
    html = render_markdown("![<b>bold</b>](/p.png)")
    assert not elements(html, "b")
    assert "<b>bold</b>" in parse(html).text


def test_raw_html_image_is_shown_as_text():
    html = render_markdown('<img src="https://elsewhere.example/p.png">')
    assert "<img" not in html
    assert '<img src="https://elsewhere.example/p.png">' in parse(html).text


# --- code --------------------------------------------------------------------------


def test_code_fence_is_highlighted_with_pygments_classes():
    html = render_markdown("```python\ndef f():\n    return 1\n```")
    (pre,) = elements(html, "pre")
    assert pre.attrs["class"] == "highlight"
    (code,) = elements(html, "code")
    assert code.attrs["class"] == "language-python"
    token_classes = {element.attrs.get("class") for element in elements(html, "span")}
    assert {"k", "nf", "mi"} <= token_classes  # keyword, function name, integer


def test_code_fence_shows_its_language_label():
    html = render_markdown("```Python\nx = 1\n```")
    assert '<span class="code-lang">python</span>' in html


def test_unknown_language_is_escaped_not_highlighted():
    html = render_markdown("```nosuchlanguage\n<b>x</b> & y\n```")
    (code,) = elements(html, "code")
    assert code.attrs["class"] == "language-nosuchlanguage"
    assert not elements(html, "b")
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in html


def test_fence_without_language_is_escaped_without_a_class():
    html = render_markdown("```\n<i>x</i>\n```")
    (code,) = elements(html, "code")
    assert "class" not in code.attrs
    assert not elements(html, "i")
    assert "<i>x</i>" in parse(html).text


@pytest.mark.parametrize(
    "info",
    ['x" onclick="y', "x' onclick='y", 'python" style="color:red', "x><script>alert(1)</script>", "x\" data-a=\"1"],
)
def test_hostile_fence_language_cannot_add_an_attribute(info):
    html = render_markdown(f"```{info}\ncode\n```")
    (code,) = elements(html, "code")
    assert set(code.attrs) == {"class"}
    assert re.fullmatch(r"language-[\w+\-#.]+", code.attrs["class"])
    for element in parse(html).elements:
        assert set(element.attrs) <= {"class"}, element


def test_highlighted_code_keeps_markup_in_strings_as_text():
    html = render_markdown("```javascript\nconst s = '<img src=x onerror=alert(1)>';\n```")
    assert "<img" not in html
    assert "<img src=x onerror=alert(1)>" in parse(html).text


def test_inline_code_is_escaped():
    html = render_markdown("`<b>x</b>`")
    assert not elements(html, "b")
    assert "<b>x</b>" in parse(html).text


# --- raw HTML, tables, forbidden elements --------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<b>bold</b>", "<b>bold</b>"),
        ("Hello <em>there</em>", "Hello <em>there</em>"),
        ('<a href="https://ok.example">x</a>', '<a href="https://ok.example">x</a>'),
        ("<div>\nblock\n</div>", "<div>"),
    ],
)
def test_raw_html_in_markdown_is_shown_as_escaped_text(text, shown):
    html = render_markdown(text)
    assert shown in parse(html).text
    assert "&lt;" in html


def test_raw_html_is_not_markup_even_for_allowed_tags():
    assert not elements(render_markdown("<em>x</em> <a href='https://ok.example'>y</a>"), "em")
    assert not elements(render_markdown("<a href='https://ok.example'>y</a>"), "a")


def test_table_alignment_becomes_classes():
    html = render_markdown("| l | c | r | n |\n|:--|:-:|--:|---|\n| 1 | 2 | 3 | 4 |")
    cells = [element for element in parse(html).elements if element.tag in ("th", "td")]
    assert [cell.attrs.get("class") for cell in cells] == ["align-left", "align-center", "align-right", None] * 2
    assert "style" not in html


@pytest.mark.parametrize(
    "text",
    [
        "| a | b |\n|:-:|--:|\n| 1 | 2 |",
        '<p style="color:red">x</p>',
        "<span style=x>y</span>",
        '[x](https://ok.example "style=x")',
        "```css\np { style: x }\n```",
    ],
)
def test_no_style_attribute_anywhere(text):
    html = render_markdown(text)
    assert not [element for element in parse(html).elements if "style" in element.attrs]
    assert not re.search(r"<[^>]*\sstyle\s*=", html)


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("<iframe src=https://evil.example></iframe>", "iframe"),
        ("<svg><circle r=1 /></svg>", "svg"),
        ("<math><mi>x</mi></math>", "math"),
        ("<form><input name=a></form>", "form"),
        ("<style>*{color:red}</style>", "style"),
        ("<object data=x></object>", "object"),
        ("<embed src=x>", "embed"),
        ("<img src=x>", "img"),
        ("<video src=x></video>", "video"),
        ("<textarea>x</textarea>", "textarea"),
    ],
)
def test_forbidden_elements_never_survive(text, tag):
    for rendering in (text, f"para\n\n{text}", f"> {text}", f"- {text}", f"| a |\n|---|\n| {text} |"):
        html = render_markdown(rendering)
        assert not elements(html, tag), html
        assert f"<{tag}" not in html.lower()


# --- ordinary Markdown still works ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("**bold**", "strong"),
        ("*em*", "em"),
        ("~~gone~~", "s"),
        ("# Title", "h1"),
        ("> quote", "blockquote"),
        ("- item", "ul"),
        ("1. item", "ol"),
        ("---", "hr"),
        ("a  \nb", "br"),
    ],
)
def test_ordinary_markdown_renders(text, tag):
    assert elements(render_markdown(text), tag)


def test_ordered_list_keeps_its_start():
    (ol,) = elements(render_markdown("3. three\n4. four"), "ol")
    assert ol.attrs == {"start": "3"}


def test_empty_text_renders_empty():
    assert render_markdown("") == ""


# --- render_plain --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('a & b "c" \'d\'', "a &amp; b &quot;c&quot; &#x27;d&#x27;"),
        ("**not markdown**", "**not markdown**"),
        ("line one\nline two", "line one\nline two"),
    ],
)
def test_render_plain_escapes_and_keeps_text_as_written(text, expected):
    assert render_plain(text) == expected


def test_render_plain_output_has_no_elements():
    assert parse(render_plain('<img src=x onerror=alert(1)><a href="javascript:x">y</a>')).elements == []

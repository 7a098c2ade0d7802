"""Finders of text a person would see that is not marked for translation: in templates, JavaScript and
Python. tests/test_i18n.py runs them over the project and over planted violations."""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

from django.template.base import Lexer, TokenType

ROOT = Path(__file__).resolve().parent.parent

# Words that read the same in every language: product, API and parameter names, units, formats.
ALLOWED_WORDS = {
    "OpenAI", "Ollama", "Azure", "OPENAI_API_KEY", "OPENAI_BASE_URL", "API", "JSON", "Markdown", "ChatGPT", "URL", "HTTP",
    "temperature", "max_tokens", "top_p", "logit_bias", "stop", "seed", "presence_penalty", "frequency_penalty",
    "Ctrl", "K", "Enter", "Shift", "Esc", "Tab", "Alt", "ID", "id", "UTC", "JS", "SSO", "OIDC", "zip", "CSV", "md", "txt", "json",
}
# Attributes whose value is shown or read out to a person.
VISIBLE_ATTRIBUTES = {"placeholder", "title", "aria-label", "alt", "aria-description", "aria-roledescription", "label"}
VISIBLE_DATA_PREFIX = ("data-confirm", "data-label", "data-text", "data-message")

WORD = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)
PLACEHOLDER = "\x00"


def unallowed_words(text: str) -> list[str]:
    """The words of `text` that need a translation (letters, not on the allow list, not a template value)."""
    words = []
    for word in WORD.findall(text.replace(PLACEHOLDER, " ")):
        if word in ALLOWED_WORDS or not any(ch.isalpha() and ch.isascii() for ch in word):
            continue
        words.append(word)
    return words


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip = 0
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        is_submit = tag == "input" and dict(attrs).get("type") in ("submit", "button")
        for name, value in attrs:
            if not value:
                continue
            if name in VISIBLE_ATTRIBUTES or name.startswith(VISIBLE_DATA_PREFIX) or (is_submit and name == "value"):
                self.found.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.found.append(data)


_DEFAULT_LITERAL = re.compile(r"""\|default(?:_if_none)?:["']([^"']*)["']""")


def template_violations(source: str) -> list[str]:
    """Visible text in a Django template that is outside {% translate %} and {% blocktranslate %}."""
    parts: list[str] = []
    violations: list[str] = []
    closing: str | None = None  # inside blocktranslate/comment/verbatim until this tag
    for token in Lexer(source).tokenize():
        content = token.contents.strip()
        if closing:
            if token.token_type == TokenType.BLOCK and content.split()[:1] == [closing]:
                closing = None
            parts.append(PLACEHOLDER)
            continue
        if token.token_type == TokenType.TEXT:
            parts.append(token.contents)
            continue
        if token.token_type == TokenType.BLOCK:
            name = content.split()[0] if content else ""
            if name in ("blocktranslate", "blocktrans", "comment", "verbatim"):
                closing = "end" + name
            elif content.split()[:2] == ["block", "body_class"]:
                closing = "endblock"  # CSS class names, not words
        elif token.token_type == TokenType.VAR:
            # A default written into the template: {{ value|default:"the conversation’s model" }}
            for literal in _DEFAULT_LITERAL.findall(content):
                if " " in literal and unallowed_words(literal):
                    violations.append(literal)
        parts.append(PLACEHOLDER)
    parser = _VisibleText()
    parser.feed("".join(parts))
    parser.close()
    return violations + [" ".join(text.replace(PLACEHOLDER, " ").split()) for text in parser.found if unallowed_words(text)]


# --- JavaScript -----------------------------------------------------------------------------------------
# A literal put where a person sees it: into text, a visible attribute, a dialog, or an error shown.
_JS_SINK = re.compile(
    r"""(?:\.(?:textContent|innerText|placeholder|title|alt|ariaLabel)\s*=\s*"""
    r"""|setAttribute\(\s*["'](?:aria-label|title|placeholder|alt)["']\s*,\s*"""
    r"""|\b(?:alert|confirm|prompt|showError)\(\s*"""
    r"""|\.(?:append|prepend|replaceChildren)\(\s*)"""
    r"""(?P<literal>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`)"""
)


def js_violations(source: str) -> list[str]:
    """String literals with words written into the page by JavaScript without gettext()."""
    found = []
    for match in _JS_SINK.finditer(source):
        literal = re.sub(r"\$\{[^}]*\}", PLACEHOLDER, match.group("literal")[1:-1])
        if unallowed_words(literal):
            found.append(match.group(0))
    return found


# --- Python ---------------------------------------------------------------------------------------------
_MESSAGE_FUNCTIONS = {"success", "info", "warning", "error", "debug", "add_message", "message_user"}
# Not Http404: the 404 page never shows its message.
_EXCEPTIONS = {
    "ValidationError", "PermissionDenied", "BadRequest",  # Django's (not SuspiciousOperation: its page says nothing of it)
    "ChatError", "InvalidChange", "Forbidden", "LimitExceeded", "ImportRefused", "ConversationRefused",  # ours
}
_TEXT_KEYWORDS = {"verbose_name", "verbose_name_plural", "help_text", "label", "description", "empty_label",
                  "short_description", "empty_value_display"}
_TEXT_ASSIGNED = {"verbose_name", "verbose_name_plural", "short_description", "empty_value_display", "site_header",
                  "site_title", "index_title", "message", "title"}
_TEXT_DICT_KEYS = {"message", "note", "error", "detail", "reason", "description"}
_TEXT_DICTS = {"help_texts", "labels", "error_messages"}  # a ModelForm's Meta: field -> text (or -> code -> text)


def _literal_text(node: ast.AST) -> str | None:
    """The wording of an unmarked literal expression (a plain or f-string, or one formatted), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _literal_text(node.left)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _literal_text(node.func.value)
    return None


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def python_violations(source: str, filename: str = "<string>") -> list[str]:
    """Literal strings given to messages, form/model/admin labels, errors people read and `error` frames."""
    return [f"{filename}:{node.lineno}: {_literal_text(node)!r}" for node in python_violation_nodes(source)]


def python_violation_nodes(source: str) -> list[ast.AST]:
    found: list[ast.AST] = []

    def check(node: ast.AST | None) -> None:
        text = _literal_text(node) if node is not None else None
        if text is not None and unallowed_words(text):
            found.append(node)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name in _MESSAGE_FUNCTIONS and isinstance(node.func, ast.Attribute):
                for arg in node.args[1:3]:
                    check(arg)
                for keyword in node.keywords:
                    if keyword.arg == "message":
                        check(keyword.value)
            if name in _EXCEPTIONS and node.args:
                if isinstance(node.args[0], ast.Dict):  # ValidationError({"field": "…"})
                    for value in node.args[0].values:
                        check(value)
                check(node.args[0])
            if name == "FrameError" and len(node.args) > 1:
                check(node.args[1])
            for keyword in node.keywords:
                if keyword.arg in _TEXT_KEYWORDS:
                    check(keyword.value)
                elif keyword.arg == "error_messages" and isinstance(keyword.value, ast.Dict):
                    for value in keyword.value.values:
                        check(value)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                attr = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""
                if attr in _TEXT_ASSIGNED:
                    check(node.value)
                elif attr in _TEXT_DICTS and isinstance(node.value, ast.Dict):
                    for value in node.value.values:
                        for text in value.values if isinstance(value, ast.Dict) else [value]:
                            check(text)
                elif attr == "fieldsets" and isinstance(node.value, ast.List | ast.Tuple):
                    for fieldset in node.value.elts:  # (title, {"fields": …})
                        if isinstance(fieldset, ast.Tuple) and fieldset.elts:
                            check(fieldset.elts[0])
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in _TEXT_DICT_KEYS:
                    check(value)
        elif isinstance(node, ast.ClassDef) and any(
            isinstance(base, (ast.Name, ast.Attribute)) and getattr(base, "attr", getattr(base, "id", "")) in
            ("TextChoices", "IntegerChoices") for base in node.bases
        ):
            # Choices: NAME = value, "Label". Without a label Django makes one from the name, in English.
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.value, ast.Tuple) and len(item.value.elts) > 1:
                    check(item.value.elts[-1])
                elif isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant):
                    found.append(item.value)
    return found


def project_files(pattern: str, under: str, exclude: tuple[str, ...] = ()) -> list[Path]:
    return sorted(p for p in (ROOT / under).rglob(pattern) if not any(part in p.parts for part in exclude))

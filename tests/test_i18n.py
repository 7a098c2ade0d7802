"""Translations: every string a person sees is marked, Simplified Chinese is complete and compiled, and a
person reading Chinese meets no English on any page.

The catalogs are checked with polib; the strings not yet in them are found by running makemessages on a
copy of the project (xgettext must be installed: this fails, never skips, without it).
"""

import html as htmllib
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polib
import pytest
from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone, translation

from conversations import services
from conversations.languages import scope_language
from conversations.llm.client import _after_attempts
from conversations.llm.errors import READ_TIMEOUT, STATUS_ERRORS, TRY_AGAIN_IN, UNREACHABLE
from conversations.llm.types import UpstreamError
from conversations.metering import duration
from conversations.models import PublicLink, Share
from conversations.selectors.conversations import error_text
from tests import i18n_scan
from tests.factories import make_conversation, make_message, make_share, make_team, make_usage_record
from tests.helpers import is_error, login, open_socket, page, receive_until

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
CATALOGS = [LOCALE / "zh_Hans" / "LC_MESSAGES" / f"{domain}.po" for domain in ("django", "djangojs")]
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}


def untranslated(catalog: polib.POFile) -> list[str]:
    """Entries with no Chinese, or only msgmerge's guess (fuzzy)."""
    return [
        entry.msgid
        for entry in catalog
        if not entry.obsolete
        and ("fuzzy" in entry.flags or not (entry.msgstr or (all(entry.msgstr_plural.values()) and entry.msgstr_plural)))
    ]


# --- the catalogs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CATALOGS, ids=lambda path: path.name)
def test_every_entry_has_chinese_and_none_is_fuzzy(path):
    catalog = polib.pofile(str(path))
    assert len(catalog) > 20
    assert untranslated(catalog) == []
    assert not catalog.metadata_is_fuzzy
    assert catalog.metadata["Plural-Forms"] == "nplurals=1; plural=0;"


@pytest.mark.parametrize("path", CATALOGS, ids=lambda path: path.name)
def test_the_committed_mo_is_the_po_compiled(path):
    """`make run` on a fresh machine serves Chinese with no gettext tools: the .mo must be committed and current."""
    compiled = polib.mofile(str(path.with_suffix(".mo")))

    def entries(catalog):
        return {
            (entry.msgctxt, entry.msgid): entry.msgstr or tuple(sorted(entry.msgstr_plural.items()))
            for entry in catalog
            if entry.msgid and not entry.obsolete
        }

    assert entries(compiled) == entries(polib.pofile(str(path)))


def test_a_string_marked_but_not_yet_in_the_catalog_fails(tmp_path):
    """makemessages over a copy of the project adds nothing the committed catalogs lack."""
    if shutil.which("xgettext") is None or shutil.which("msgmerge") is None:
        pytest.fail("makemessages needs GNU gettext: install it (Debian: apt-get install gettext; macOS: brew install gettext)")
    copy = _project_copy(tmp_path)
    assert _new_untranslated(copy) == {}
    # The check itself: a newly marked string is found.
    (copy / "templates" / "planted.html").write_text('{% load i18n %}<p>{% translate "A string nobody translated" %}</p>')
    assert _new_untranslated(copy) == {"django.po": ["A string nobody translated"]}


def _project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns("vendor", "__pycache__", "*.pyc", "*.mo")
    for part in ("chatsite", "conversations", "templates", "static", "locale", "manage.py"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=ignore)
        else:
            shutil.copy(source, copy / part)
    return copy


def _new_untranslated(copy: Path) -> dict[str, list[str]]:
    """Run the README's makemessages commands in `copy`; the entries left without Chinese, per catalog."""
    common = ["-l", "zh_Hans", "--ignore=.venv", "--ignore=staticfiles", "--ignore=tests", "--ignore=bench"]
    for extra in ([], ["-d", "djangojs", "--ignore=static/conversations/vendor/*"]):
        subprocess.run([sys.executable, "manage.py", "makemessages", *common, *extra], cwd=copy, check=True, capture_output=True)
    found = {}
    for path in CATALOGS:
        missing = untranslated(polib.pofile(str(copy / path.relative_to(ROOT))))
        if missing:
            found[path.name] = missing
    return found


# --- marked for translation -----------------------------------------------------------------------------

# Sources whose text is not for people, with why.
PYTHON_EXEMPT = {
    "conversations/views/demo.py",  # the demo model's API errors, in the OpenAI API's JSON, for programs
}


def test_every_template_string_is_marked():
    found = {}
    for path in i18n_scan.project_files("*.html", "templates"):
        if violations := i18n_scan.template_violations(path.read_text()):
            found[str(path.relative_to(ROOT))] = violations
    assert found == {}


@pytest.mark.parametrize(
    "source, expected",
    [
        ("<p>Hello there</p>", ["Hello there"]),
        ('<input placeholder="Type here">', ["Type here"]),
        ('<button aria-label="Close it">✕</button>', ["Close it"]),
        ('<form data-confirm="Delete it?">', ["Delete it?"]),
        ('<img alt="{{ name }} photo">', ["photo"]),
        ('{{ value|default:"nothing at all" }}', ["nothing at all"]),
        ("{% block title %}Presets{% endblock %}", ["Presets"]),
        ('{% load i18n %}<p>{% translate "Hello" %} · {{ name }}</p>', []),
        ("{% load i18n %}<p>{% blocktranslate %}Hi {{ name }}{% endblocktranslate %}</p>", []),
        ("<script>const words = 'not shown';</script><code>OPENAI_API_KEY</code> ✕ ☰", []),
        ("<body class=\"{% block body_class %}page-login{% endblock %}\">", []),
    ],
)
def test_the_template_check_finds_planted_strings(source, expected):
    assert i18n_scan.template_violations(source) == expected


def test_every_javascript_string_a_person_sees_goes_through_gettext():
    found = {}
    for path in i18n_scan.project_files("*.js", "static/conversations/js"):
        if violations := i18n_scan.js_violations(path.read_text()):
            found[path.name] = violations
    assert found == {}


@pytest.mark.parametrize(
    "source, count",
    [
        ('note.textContent = "Offline, reconnecting";', 1),
        ("button.setAttribute('aria-label', 'Copy code');", 1),
        ("window.confirm(`Delete ${name} for good?`);", 1),
        ('element.title = "Show more";', 1),
        ('note.textContent = gettext("Offline, reconnecting");', 0),
        ("line.textContent = `${count} · ${when}`;", 0),
        ('label.textContent = title;', 0),
    ],
)
def test_the_javascript_check_finds_planted_strings(source, count):
    assert len(i18n_scan.js_violations(source)) == count


def test_every_python_string_a_person_sees_is_marked():
    found = []
    for path in i18n_scan.project_files("*.py", "conversations", exclude=("migrations", "llm")):
        if str(path.relative_to(ROOT)) not in PYTHON_EXEMPT:
            found += i18n_scan.python_violations(path.read_text(), str(path.relative_to(ROOT)))
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        'messages.success(request, "Saved it.")',
        'messages.error(request, f"{name} was removed.")',
        'raise ValidationError("Enter a number.")',
        'raise ValidationError({"field": "Choose one."})',
        'raise InvalidChange("You cannot do that %s." % name)',
        'name = forms.CharField(label="Your name")',
        'title = models.CharField(max_length=9, help_text="Shown on top.")',
        "class Meta:\n    verbose_name = 'public link'",
        'frame = {"type": "error", "message": "Too many frames."}',
        "class Kind(models.TextChoices):\n    LIVE = 'live', 'Live view'",
        "class Status(models.TextChoices):\n    DONE = 'done'",
        '@admin.display(description="Members")\ndef members(self, obj): pass',
        'fieldsets = [("Request parameters", {"fields": ["a"]})]',
        'raise FrameError("invalid", "Not JSON.")',
    ],
)
def test_the_python_check_finds_planted_strings(source):
    assert len(i18n_scan.python_violations(source)) == 1


@pytest.mark.parametrize(
    "source",
    [
        'messages.success(request, _("Saved it."))',
        'raise ValidationError(_("%(name)s is taken.") % {"name": name}, code="taken")',
        'name = forms.CharField(label=_("Your name"))',
        "class Kind(models.TextChoices):\n    LIVE = 'live', _('Live view')",
        'raise Http404("No such thing.")',
    ],
)
def test_the_python_check_lets_marked_strings_pass(source):
    assert i18n_scan.python_violations(source) == []


def test_the_llm_library_marks_its_phrases_without_django():
    from conversations.llm import errors, phrases

    assert errors.STATUS_ERRORS[401][1] in phrases.PHRASES
    assert "django" not in phrases.__dict__.get("__builtins__", {})  # it is plain Python (test_llm_library checks imports)


# --- the language chosen --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_accept_language_picks_chinese_and_the_cookie_overrides_it(client):
    chinese = page(client.get("/accounts/login/", **ZH))
    assert '<html lang="zh-hans"' in chinese and "登录" in chinese
    client.cookies["chat_language"] = "en"
    english = page(client.get("/accounts/login/", **ZH))
    assert '<html lang="en"' in english and "Log in" in english
    client.cookies["chat_language"] = "zh-hans"
    assert '<html lang="zh-hans"' in page(client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en"))
    assert '<html lang="en"' in page(Client().get("/accounts/login/"))


@pytest.mark.django_db
def test_the_switcher_names_each_language_in_its_own(client):
    """Whoever cannot read the page's language still finds theirs."""
    for headers in (ZH, {"HTTP_ACCEPT_LANGUAGE": "en"}):
        html = page(client.get("/accounts/login/", **headers))
        assert re.search(r'value="en" lang="en"[^>]*>English</button>', html)
        assert re.search(r'value="zh-hans" lang="zh-hans"[^>]*>简体中文</button>', html)


def test_a_socket_takes_its_language_as_a_page_would():
    def scope(cookies=None, accept=""):
        return {"cookies": cookies or {}, "headers": [(b"accept-language", accept.encode())] if accept else []}

    assert scope_language(scope(accept="zh-CN,zh;q=0.9")) == "zh-hans"
    assert scope_language(scope({"chat_language": "en"}, accept="zh-CN")) == "en"
    assert scope_language(scope({"chat_language": "zh-hans"}, accept="en-GB")) == "zh-hans"
    assert scope_language(scope()) == "en"
    assert scope_language(scope(accept="fr-FR,de")) == "en"


@pytest.mark.django_db(transaction=True)
async def test_a_socket_words_its_error_frames_in_the_persons_language(user, conversation):
    from asgiref.sync import sync_to_async

    from conversations.selectors.accounts import profile_of

    english = await open_socket(user, conversation)
    await english.send_json_to({"type": "dance"})
    assert (await receive_until(english, is_error))[-1]["message"].startswith("Unknown frame type")

    @sync_to_async
    def prefer_chinese():
        profile = profile_of(user)
        profile.language = "zh-hans"
        profile.save()

    await prefer_chinese()
    chinese = await open_socket(user, conversation)
    await chinese.send_json_to({"type": "dance"})
    assert (await receive_until(chinese, is_error))[-1]["message"].startswith("未知的帧类型")


def test_durations_and_stored_errors_read_in_the_readers_language():
    wait = timedelta(hours=3, minutes=12)
    with translation.override("en"):
        assert duration(wait) == "3 h 12 min"
    with translation.override("zh-hans"):
        assert duration(wait) == "3 小时 12 分钟"
        assert duration(timedelta(seconds=5)) == "5 秒"
        assert error_text(services.replies.INTERRUPTED) == "回复被中断：服务器在生成过程中停止了。"
        # The model server's own words stay; the app's phrase around them is translated.
        assert error_text("The model server did not accept the API key (401): Incorrect key") == (
            "模型服务器不接受该 API 密钥 (401): Incorrect key"
        )


def test_upstream_errors_with_values_in_them_read_in_chinese_around_the_same_values():
    """Phrases like "at %(host)s" are stored worded in English; a reader gets their language, values unchanged."""
    unreachable = _after_attempts(UpstreamError("unreachable", UNREACHABLE % {"host": "gpu-box:8000"}), 3).message
    assert unreachable == "Could not connect to the model server at gpu-box:8000. Is it running? (after 3 attempts)."
    limited = f"{STATUS_ERRORS[429][1]} (429); {TRY_AGAIN_IN % {'seconds': 20}}: Slow down"
    with translation.override("zh-hans"):
        assert error_text(unreachable) == "无法连接到位于 gpu-box:8000 的模型服务器。它在运行吗？ （已尝试 3 次）。"
        assert error_text(limited).endswith("(429); 请在 20 秒后重试: Slow down"), error_text(limited)
        assert error_text(READ_TIMEOUT % {"seconds": "60"}) == "模型服务器 60 秒内没有发送任何内容，因此放弃了这次回复。"
    with translation.override("en"):
        assert error_text(unreachable) == unreachable


# --- no English left on a page read in Chinese ----------------------------------------------------------

# Words that read the same in Chinese: product and API names, formats, and what the tests below create.
ALLOWED = {
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "logit_bias", "stop", "seed", "token", "tokens",
    "presence_penalty", "frequency_penalty", "response_format", "reasoning_effort", "omit_parameters",
    "OpenAI", "Azure", "Ollama", "vLLM", "ChatGPT", "Markdown", "JSON", "ZIP", "API", "URL", "UTC", "Ctrl", "K",
    "Enter", "Shift", "Esc", "Tab", "Alt", "Cookie", "OPENAI_API_KEY", "OPENAI_BASE_URL", "CHAT_ENCRYPTION_KEYS", "conversations",
    "json", "md", "gpt", "mini", "o", "Django", "zip", "ID", "Unicode", "NUL", "localhost", "HTTP", "Referer",
    "Bearer", "KEY", "BASE_URL", "schema", "name", "type", "text", "json_object", "json_schema", "api", "key",
    "version", "openai", "com", "https", "http", "v", "example", "chat", "X", "Team", "research", "mapping",
    "stream", "streaming", "streams", "word", "image", "prompt", "completion", "vs", "AM", "PM", "a", "m", "p",
    "KB", "MB", "GB", "bytes",
    # made by the tests below
    "alice", "bob", "carol", "root", "Otters", "otters", "Research", "Fake", "model", "fake", "Notes", "sesame",
    "Do", "hold", "hands", "They", "do", "zebras", "fake-model", "WXYZ", "LM", "Studio", "llama", "cpp",
}
# In the admin: Django's own Chinese keeps a few words (an icon's alt, keys to press), django-axes is a name,
# and help texts quote addresses, headers and JSON as they are typed.
ADMIN_ALLOWED = {
    "Django", "Axes", "True", "False", "Control", "Command", "Mac", "Authorization", "DEPLOYMENT", "ENDPOINT",
    "RESOURCE", "VERSION", "api-key", "api-version", "azure", "deployments", "completions", "OpenAI-Organization",
    "OpenAI-Project", "HTTP-Referer", "OpenRouter", "stream_options", "nUser", "user", "gpt-", "o-mini",
    "s", "sk-", "openai_compatible",  # /s/ links, a masked key, the test provider's name
    "Search", "HTML",  # the search box's icon (alt written in Django's template), a field named for its format
}


def english_words(html: str, allowed: set[str] = frozenset()) -> list[str]:
    """Latin words a person sees: text and visible attributes, without scripts, styles, code or inputs' values."""
    html = re.sub(r"(?is)<(script|style|code|pre|template|textarea|select)\b.*?</\1>", " ", html)
    html = re.sub(r"(?is)<!--.*?-->", " ", html)
    html = re.sub(r'(?is)<(\w+)\b[^>]*\blang="en"[^>]*>.*?</\1>', " ", html)  # marked English: "English" in the switcher
    html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", " ", html)  # ids
    visible = []
    for attribute in ("placeholder", "title", "aria-label", "alt", "data-confirm", "data-confirm-delete", "data-label"):
        visible += re.findall(rf'\b{attribute}="([^"]*)"', html)
    text = re.sub(r"(?s)<[^>]*>", " ", html)
    words = re.findall(r"[A-Za-z][A-Za-z'’_-]*", htmllib.unescape(" ".join([text, *visible])))
    allowed = {word.lower() for word in ALLOWED | set(allowed)}  # "Max_tokens" is a label's capitalised max_tokens
    return sorted({word for word in words if word.lower() not in allowed})


@pytest.fixture
def scene(db, user, bob, model_config):
    """What the pages show: a conversation with a reply, shared with bob, a team, a preset, usage, links."""
    owner_client = login(user, **ZH)  # flash messages are worded when they are made
    chat = make_conversation(owner=user, title="Otters", model_config=model_config)
    question = make_message(conversation=chat, role="user", content="Do otters hold hands?")
    make_message(conversation=chat, role="assistant", content="They do.", parent=question)
    make_share(conversation=chat, user=bob, role=Share.Role.VIEWER)
    team = make_team(name="Research", owner=user, members=[bob])
    make_usage_record(user=user, model_config=model_config)
    owner_client.post("/presets/new/", {"name": "Notes", "model": model_config.pk, "temperature": "0.5", "system_prompt": "x"})
    links = {}
    for kind, fields in {"open": {}, "password": {"password": "sesame"}, "gone": {}}.items():
        owner_client.post(
            f"/c/{chat.id}/links/", {"kind": "snapshot", "audience": "anyone", "password": "", "expires_on": "", **fields}
        )
        links[kind] = chat.public_links.order_by("-pk").first()
    PublicLink.objects.filter(pk=links["gone"].pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    return {"chat": chat, "team": team, "links": links, "owner": owner_client, "bob": login(bob)}


def chinese(client, url: str, expect: tuple[int, ...] = (200,)) -> str:
    response = client.get(url, follow=True, **ZH)
    assert response.status_code in expect, url
    html = page(response)
    assert '<html lang="zh-hans"' in html, url
    return html


@pytest.mark.django_db
def test_every_page_reads_in_chinese(scene):
    chat, owner, links = scene["chat"], scene["owner"], scene["links"]
    pages = {
        "home": (owner, "/"),
        "conversation (owner, with the share dialog and settings)": (owner, f"/c/{chat.id}/"),
        "conversation (viewer)": (scene["bob"], f"/c/{chat.id}/"),
        "search with results": (owner, "/search/?q=otters"),
        "search without results": (owner, "/search/?q=zebras"),
        "usage": (owner, "/usage/"),
        "teams": (owner, "/teams/"),
        "a team": (owner, f"/teams/{scene['team'].pk}/"),
        "presets": (owner, "/presets/"),
        "import": (owner, "/import/"),
        "archived": (owner, "/archived/"),
        "profile": (owner, "/account/"),
        "password reset": (Client(), "/accounts/password-reset/"),
        "public link": (Client(), f"/s/{links['open'].token}/"),
        "public link with a password": (Client(), f"/s/{links['password'].token}/"),
    }
    found = {name: english_words(chinese(client, url)) for name, (client, url) in pages.items()}
    found["public link gone"] = english_words(chinese(Client(), f"/s/{links['gone'].token}/", expect=(410,)))
    found["login"] = english_words(chinese(Client(), "/accounts/login/"))
    found["404"] = english_words(chinese(owner, "/c/00000000-0000-0000-0000-000000000000/", expect=(404,)))
    found["403"] = english_words(
        page(scene["bob"].post(f"/c/{chat.id}/rename/", {"title": "x"}, **ZH))
    )
    assert {name: words for name, words in found.items() if words} == {}


def test_error_pages_read_in_chinese(db):
    from django.template.loader import render_to_string

    with translation.override("zh-hans"):
        for template in ("400.html", "403.html", "403_csrf.html", "404.html", "500.html"):
            html = render_to_string(template)
            assert '<html lang="zh-hans"' in html, template
            assert english_words(html) == [], template


@pytest.mark.django_db
def test_a_csrf_failure_reads_in_chinese(user):
    client = login(user, enforce_csrf_checks=True)
    response = client.post("/presets/new/", {"name": "x"}, **ZH)
    assert response.status_code == 403
    assert "此页面已过期" in page(response) and english_words(page(response)) == []


def _our_admin_models():
    return [model for model in admin.site._registry if model._meta.app_label == "conversations"]


@pytest.mark.django_db
def test_the_admin_reads_in_chinese(scene, superuser):
    """The index, and every changelist, add and change form of our models."""
    client = login(superuser)
    request = RequestFactory().get("/admin/")
    request.user = superuser
    allowed = ADMIN_ALLOWED | {"Otters", "Research", "Notes", "Do", "hold", "hands", "They", "do", "Fake"}
    found = {"/admin/": english_words(chinese(client, "/admin/"), allowed)}
    for model in _our_admin_models():
        info = (model._meta.app_label, model._meta.model_name)
        urls = [reverse("admin:{}_{}_changelist".format(*info))]
        found[urls[0]] = english_words(chinese(client, urls[0]), allowed)  # may create a singleton (site settings)
        if admin.site._registry[model].has_add_permission(request):
            urls.append(reverse("admin:{}_{}_add".format(*info)))
        if (instance := model.objects.first()) is not None:
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[instance.pk]))
        for url in urls[1:]:
            found[url] = english_words(chinese(client, url), allowed)
    assert {url: words for url, words in found.items() if words} == {}

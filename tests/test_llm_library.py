"""conversations.llm is a library: it imports nothing of Django or of the app, and its modules meet at public names.

The app's side of that seam is streaming.upstream_options, which turns the settings into the client's options.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from django.utils.translation import gettext

from conversations.llm import ClientOptions
from conversations.streaming import upstream_options
from tests.factories import TEST_OPTIONS

ROOT = Path(__file__).resolve().parents[1]
LLM = ROOT / "conversations" / "llm"
MODULES = {
    "addresses", "checks", "chunks", "client", "demo", "errors", "phrases", "prompts", "providers", "sse", "transport", "types"
}

# Imports every module of the package, then any named on the command line, and prints what else came with them.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
import conversations.llm as package
modules = sorted(info.name for info in pkgutil.iter_modules(package.__path__))
for name in [f"conversations.llm.{module}" for module in modules] + sys.argv[1:]:
    importlib.import_module(name)
def foreign(name):
    if name == "django" or name.startswith("django."):
        return True
    return name.startswith("conversations.") and name != "conversations.llm" and not name.startswith("conversations.llm.")
print(json.dumps({"modules": modules, "foreign": sorted(filter(foreign, sys.modules))}))
"""


def import_all(*extra: str) -> dict:
    """Import the whole package in a fresh interpreter with no Django settings; what it loaded besides."""
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def private_imports(source: str) -> list[str]:
    """Names starting with "_" that `source` takes from a sibling module of conversations.llm.

    Both `from .client import _merge` and `from . import client` followed by `client._merge` count.
    """
    tree = ast.parse(source)
    found, siblings = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("conversations.llm")):
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(alias.name)
                if node.level == 1 and not node.module:  # `from . import client`: a sibling module
                    siblings.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in siblings:
            if node.attr.startswith("_"):
                found.append(f"{node.value.id}.{node.attr}")
    return found


# --- no Django, no app -----------------------------------------------------------------------------


def test_the_package_imports_without_django_or_the_rest_of_the_app():
    loaded = import_all()

    assert MODULES <= set(loaded["modules"])
    assert loaded["foreign"] == []


def test_the_import_check_sees_django_and_the_app_when_they_come():
    loaded = import_all("django.conf", "conversations.events")

    assert {"django", "django.conf", "conversations.events"} <= set(loaded["foreign"])


# --- public seams between the modules --------------------------------------------------------------


def test_no_module_takes_a_private_name_from_a_sibling():
    found = {path.name: private_imports(path.read_text()) for path in sorted(LLM.glob("*.py"))}

    assert {name[:-3] for name in found} >= MODULES
    assert {name: names for name, names in found.items() if names} == {}


def test_the_private_import_check_sees_both_ways_of_reaching_in():
    source = "from .client import _merge, stream_reply\nfrom . import errors\nerrors._seconds(1)\nerrors.scrub\n"

    assert private_imports(source) == ["_merge", "errors._seconds"]


# --- the app's side: options from the settings ------------------------------------------------------


def test_upstream_options_are_the_settings_at_call_time(settings):
    settings.CHAT_UPSTREAM_RETRIES = 5
    settings.CHAT_UPSTREAM_RETRY_MAX_WAIT = 3.0
    settings.CHAT_UPSTREAM_MAX_CONNECTIONS = 10
    settings.CHAT_DEMO_DELAY = 0.5

    expected = ClientOptions(retries=5, retry_max_wait=3.0, max_connections=10, demo_delay=0.5, translate=gettext)
    assert upstream_options() == expected


def test_tests_that_call_the_client_pass_what_the_app_would_under_test_settings():
    assert upstream_options() == TEST_OPTIONS

"""exports.py: a conversation with branches as JSON (every message, its parent, the current leaf) and as
Markdown (the branch the page shows), through the export view."""

import json
import re

import pytest

from tests.factories import make_branched_conversation
from tests.helpers import login, page

pytestmark = pytest.mark.django_db


@pytest.fixture
def branched(alice):
    return make_branched_conversation(owner=alice)


def test_json_export_has_every_branch_with_parents_and_the_current_leaf(branched, alice):
    conversation, m = branched
    data = json.loads(page(login(alice).get(f"/c/{conversation.id}/export/?format=json")))
    assert (data["format"], data["version"]) == ("teamchat.conversation", 2)
    assert (data["id"], data["title"], data["owner"]) == (str(conversation.id), "Otter diets", "alice")
    assert data["current_leaf"] == m["a3"].id
    assert [(message["id"], message["parent_id"], message["content"]) for message in data["messages"]] == [
        (m["q1"].id, None, "What do otters eat?"),
        (m["a1"].id, m["q1"].id, "Mostly fish."),
        (m["q2"].id, m["a1"].id, "And sea otters?"),
        (m["a2"].id, m["q2"].id, "Sea urchins."),
        (m["q2b"].id, m["a1"].id, "And river otters?"),
        (m["a3"].id, m["q2b"].id, "Crayfish."),
        (m["a3b"].id, m["q2b"].id, "Crayfish and **frogs**."),
    ]
    regenerated = data["messages"][-1]
    assert regenerated == {
        "id": m["a3b"].id,
        "parent_id": m["q2b"].id,
        "role": "assistant",
        "author": None,
        "content": "Crayfish and **frogs**.",
        "status": "complete",
        "error": "",
        "finish_reason": "",
        "model": "gpt-otter-2",
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "created": m["a3b"].created.isoformat(),
    }
    assert data["messages"][0]["author"] == "alice"


def test_markdown_export_is_the_current_branch_in_order(branched, alice):
    conversation, _ = branched
    text = page(login(alice).get(f"/c/{conversation.id}/export/?format=md"))
    assert re.findall(r"^## (.*)$", text, re.M) == ["alice", "Assistant (gpt-otter-1)", "alice", "Assistant (gpt-otter-1)"]
    bodies = [line for line in text.splitlines() if line and not line.startswith(("#", "Exported"))]
    assert bodies == ["What do otters eat?", "Mostly fish.", "And river otters?", "Crayfish."]


def test_with_no_saved_leaf_exports_follow_the_newest_branch(branched, alice):
    conversation, m = branched
    type(conversation).objects.filter(pk=conversation.pk).update(current_leaf=None)
    client = login(alice)
    assert json.loads(page(client.get(f"/c/{conversation.id}/export/?format=json")))["current_leaf"] == m["a3b"].id
    assert "\nCrayfish and **frogs**.\n" in page(client.get(f"/c/{conversation.id}/export/?format=md"))

"""ChatGPT data exports built the way ChatGPT writes them, for the import tests, the browser test and
bench/import_load.py: a conversation's `mapping` of nodes (a message-less root, ChatGPT's hidden system
message, then the turns), `current_node`, and the ZIP in either layout (one conversations.json, or the
newer conversations-000.json, conversations-001.json ...) next to files the import ignores.

No Django here: bench/ imports it before Django is set up.
"""

import json
import uuid
import zipfile
from pathlib import Path

START = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def text(value: str) -> dict:
    return {"content_type": "text", "parts": [value]}


class Conversation:
    """One ChatGPT conversation. `add` appends a message below `parent` (by default the last one added) and
    makes it the current node, as sending or regenerating in ChatGPT does; `current` may be set after."""

    def __init__(self, title: str | None = "A chat", *, conversation_id: str | None = None, start: float = START,
                 default_model: str = "gpt-4o", system_root: bool = True):
        self.id = conversation_id or str(uuid.uuid4())
        self.title, self.start, self.default_model = title, start, default_model
        self.clock = start
        self.mapping: dict[str, dict] = {}
        self.current = self.node(None, parent=None, node_id="client-created-root")
        if system_root:
            self.current = self.add("system", "", hidden=True)

    def node(self, message: dict | None, *, parent: str | None, node_id: str | None = None) -> str:
        node_id = node_id or str(uuid.uuid4())
        self.mapping[node_id] = {"id": node_id, "message": message, "parent": parent, "children": []}
        if parent is not None:
            self.mapping[parent]["children"].append(node_id)
        return node_id

    def add(self, role: str, content, *, parent: str | None = None, hidden: bool = False, model: str | None = None,
            name: str | None = None, status: str = "finished_successfully", created: float | None = None,
            metadata: dict | None = None) -> str:
        """A message (`content`: a string, or a content dict as ChatGPT writes it); its node id."""
        self.clock += 7.5
        meta = dict(metadata or {})
        if hidden:
            meta["is_visually_hidden_from_conversation"] = True
        if model is not None:
            meta["model_slug"] = model
        message = {
            "id": str(uuid.uuid4()),
            "author": {"role": role, "name": name, "metadata": {}},
            "create_time": self.clock if created is None else created,
            "update_time": None,
            "content": text(content) if isinstance(content, str) else content,
            "status": status,
            "end_turn": role == "assistant",
            "weight": 1.0,
            "metadata": meta,
            "recipient": "all",
            "channel": None,
        }
        self.current = self.node(message, parent=self.current if parent is None else parent)
        return self.current

    def as_dict(self) -> dict:
        return {
            "title": self.title,
            "create_time": self.start,
            "update_time": self.clock,
            "mapping": self.mapping,
            "moderation_results": [],
            "current_node": self.current,
            "plugin_ids": None,
            "conversation_id": self.id,
            "conversation_template_id": None,
            "gizmo_id": None,
            "is_archived": False,
            "safe_urls": [],
            "default_model_slug": self.default_model,
            "id": self.id,
        }


def otter_chat(title: str | None = "Otter diets", **options) -> tuple[Conversation, dict[str, str]]:
    """A ChatGPT conversation with an edited question and a regenerated answer; the page showed the first answer
    to the edited question (not the newest message)."""
    chat = Conversation(title, **options)
    ids = {"q1": chat.add("user", "What do otters eat?")}
    ids["a1"] = chat.add("assistant", "Mostly fish.", model="gpt-4o")
    ids["q2"] = chat.add("user", "And sea otters?")
    ids["a2"] = chat.add("assistant", "Sea urchins.", model="gpt-4o")
    ids["q2b"] = chat.add("user", "And river otters?", parent=ids["a1"])  # the question, edited
    ids["a3"] = chat.add("assistant", "Crayfish.", model="gpt-4o")
    ids["a3b"] = chat.add("assistant", "Crayfish and **frogs**.", parent=ids["q2b"], model="o1")  # regenerated
    chat.current = ids["a3"]
    return chat, ids


OTTER_BRANCH = ["What do otters eat?", "Mostly fish.", "And river otters?", "Crayfish."]


def write_zip(path: Path, conversations: list[dict], *, split: int | None = None) -> Path:
    """The export ZIP as ChatGPT mails it: conversations.json, or with `split`, conversations-000.json ... of at
    most `split` conversations each; with the other files an export has, which the import ignores."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if split is None:
            archive.writestr("conversations.json", json.dumps(conversations))
        else:
            for number, first in enumerate(range(0, max(len(conversations), 1), split)):
                archive.writestr(f"conversations-{number:03d}.json", json.dumps(conversations[first : first + split]))
        archive.writestr("chat.html", "<html><body>Your conversations</body></html>")
        archive.writestr("user.json", json.dumps({"id": "user-123", "email": "someone@example.com"}))
        archive.writestr("message_feedback.json", "[]")
        archive.writestr("file-AbCdEf123-image.png", b"\x89PNG\r\n\x1a\n" + bytes(64))
    return path


def many_conversations(count: int, messages: int, *, branch_every: int = 10, prefix: str = "Chat") -> list[dict]:
    """`count` conversations of `messages` messages each (a question and a Markdown answer in turn); every
    `branch_every`-th one also has a regenerated answer and an edited question."""
    answer = (
        "Here is how it works:\n\n- first, **the setup**\n- then `the call`\n\n"
        "```python\ndef add(a, b):\n    return a + b\n```\n\nThat is all there is to it."
    )
    conversations = []
    for number in range(count):
        chat = Conversation(f"{prefix} {number}", start=START + number * 3600)
        for turn in range(messages // 2):
            question = chat.add("user", f"Question {turn} of chat {number}: how does <this> & that work?")
            chat.add("assistant", f"{answer}\n\nAnswer {turn}.", model="gpt-4o")
        if number % branch_every == 0 and messages >= 4:
            chat.add("assistant", "A regenerated answer.", parent=question, model="gpt-4o-mini")
            edited = chat.add("user", "An edited question.", parent=chat.mapping[question]["parent"])
            chat.add("assistant", "The answer to the edit.", parent=edited, model="gpt-4o")
        conversations.append(chat.as_dict())
    return conversations

"""Importing conversations (conversations/imports/, services.imports, views/imports.py, the command): ChatGPT
exports of both layouts with their branches, our own exports back again, importing twice, hostile files, the
page over HTTP (CSRF, the status URL's access check, the background job) and `manage.py import_conversations`.

Every file is built here, real ZIPs and JSON on disk (tests/chatgpt_export.py writes ChatGPT's shape)."""

import io
import json
import os
import struct
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from conversations import exports, selectors, services
from conversations.imports import jsonstream, runner
from conversations.imports.parsed import ImportRefused, Limits
from conversations.imports.sources import Source, _CappedReader
from conversations.models import Conversation, ImportJob, Message
from tests.chatgpt_export import OTTER_BRANCH, START, many_conversations, otter_chat, write_zip
from tests.chatgpt_export import Conversation as ChatGPT
from tests.factories import make_branched_conversation
from tests.helpers import login, page

pytestmark = pytest.mark.django_db


# --- helpers ---------------------------------------------------------------------------------------


def import_file(owner, path: Path, filename: str | None = None) -> ImportJob:
    """The background job's code path, run here and now."""
    job = services.imports.import_job_create(owner=owner, filename=filename or path.name)
    return runner.import_run(job_id=job.id, path=str(path))


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def shape(conversation: Conversation) -> list[tuple[str, str, str | None]]:
    """Every message as (role, content, the content of the message it follows), oldest first."""
    messages = list(conversation.messages.order_by("id"))
    content = {message.id: message.content for message in messages}
    return [(message.role, message.content, content.get(message.parent_id)) for message in messages]


def current_branch(conversation: Conversation) -> list[str]:
    conversation.refresh_from_db()
    tree = selectors.conversations.conversation_tree(conversation.id)
    content = dict(conversation.messages.values_list("id", "content"))
    return [content[message_id] for message_id in tree.branch(conversation.current_leaf_id)]


def epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


OTTER_SHAPE = [
    ("user", "What do otters eat?", None),
    ("assistant", "Mostly fish.", "What do otters eat?"),
    ("user", "And sea otters?", "Mostly fish."),
    ("assistant", "Sea urchins.", "And sea otters?"),
    ("user", "And river otters?", "Mostly fish."),
    ("assistant", "Crayfish.", "And river otters?"),
    ("assistant", "Crayfish and **frogs**.", "And river otters?"),
]


def assert_otters_imported(conversation: Conversation, chat: ChatGPT, ids: dict, owner) -> None:
    assert shape(conversation) == OTTER_SHAPE
    assert current_branch(conversation) == OTTER_BRANCH
    assert conversation.title == "Otter diets"
    assert conversation.import_key == f"chatgpt:{chat.id}"
    assert (conversation.created, conversation.updated) == (epoch(chat.start), epoch(chat.clock))
    messages = {message.content: message for message in conversation.messages.all()}
    for name, node_id in ids.items():
        message = messages[chat.mapping[node_id]["message"]["content"]["parts"][0]]
        assert message.created == epoch(chat.mapping[node_id]["message"]["create_time"]), name
        assert message.status == Message.Status.COMPLETE
        assert message.author == (owner if message.role == Message.Role.USER else None)
    assert [(m.content, m.model_name) for m in conversation.messages.filter(role="assistant").order_by("id")] == [
        ("Mostly fish.", "gpt-4o"), ("Sea urchins.", "gpt-4o"), ("Crayfish.", "gpt-4o"), ("Crayfish and **frogs**.", "o1"),
    ]
    assert messages["Crayfish and **frogs**."].html == "<p>Crayfish and <strong>frogs</strong>.</p>\n"


def nothing_imported() -> bool:
    return not Conversation.objects.exists() and not Message.objects.exists()


# --- ChatGPT exports: both layouts, the tree, what is kept ------------------------------------------


def test_chatgpt_zip_with_conversations_json_keeps_the_tree_current_branch_titles_times_and_models(alice, tmp_path):
    chat, ids = otter_chat()
    job = import_file(alice, write_zip(tmp_path / "export.zip", [chat.as_dict()]))
    assert (job.status, job.total, job.processed, job.imported, job.skipped, job.failed) == ("done", 1, 1, 1, 0, 0)
    (conversation,) = Conversation.objects.filter(owner=alice)
    assert_otters_imported(conversation, chat, ids, alice)


def test_chatgpt_zip_split_into_numbered_files_imports_them_all_in_order(alice, tmp_path):
    chat, ids = otter_chat()
    others = [ChatGPT(f"Chat {number}", start=START + number) for number in range(4)]
    for number, other in enumerate(others):
        other.add("user", f"Question {number}")
        other.add("assistant", f"Answer {number}")
    conversations = [chat.as_dict()] + [other.as_dict() for other in others]
    path = write_zip(tmp_path / "export.zip", conversations, split=2)
    assert sorted(zipfile.ZipFile(path).namelist())[:3] == ["chat.html", "conversations-000.json", "conversations-001.json"]

    job = import_file(alice, path)
    assert (job.status, job.total, job.imported) == ("done", 5, 5)
    assert list(Conversation.objects.order_by("created").values_list("title", flat=True)) == [
        "Otter diets", "Chat 0", "Chat 1", "Chat 2", "Chat 3",
    ]
    assert_otters_imported(Conversation.objects.get(title="Otter diets"), chat, ids, alice)
    assert shape(Conversation.objects.get(title="Chat 3")) == [
        ("user", "Question 3", None), ("assistant", "Answer 3", "Question 3"),
    ]


def test_a_bare_conversations_json_upload(alice, tmp_path):
    chat, ids = otter_chat()
    job = import_file(alice, write_json(tmp_path / "conversations.json", [chat.as_dict()]))
    assert (job.status, job.imported) == ("done", 1)
    assert_otters_imported(Conversation.objects.get(owner=alice), chat, ids, alice)


def test_siblings_follow_their_parents_children_order(alice, tmp_path):
    chat, ids = otter_chat()
    chat.mapping[ids["a1"]]["children"].reverse()  # the edited question listed first
    chat.mapping[ids["q2b"]]["children"].reverse()  # the regenerated answer listed first
    import_file(alice, write_json(tmp_path / "conversations.json", [chat.as_dict()]))
    conversation = Conversation.objects.get()
    tree = selectors.conversations.conversation_tree(conversation.id)
    content = dict(conversation.messages.values_list("id", "content"))
    a1 = conversation.messages.get(content="Mostly fish.").id
    q2b = conversation.messages.get(content="And river otters?").id
    assert [content[i] for i in tree.versions_under(a1)] == ["And river otters?", "And sea otters?"]
    assert [content[i] for i in tree.versions_under(q2b)] == ["Crayfish and **frogs**.", "Crayfish."]
    assert current_branch(conversation) == OTTER_BRANCH


def test_nodes_without_messages_hidden_and_empty_are_skipped_and_their_children_joined_to_the_nearest_kept(alice, tmp_path):
    chat = ChatGPT("Skips")
    question = chat.add("user", "Hello")
    chat.current = chat.node(None, parent=question)  # a node with no message
    chat.add("assistant", "tool plumbing", hidden=True)
    chat.add("assistant", {"content_type": "text", "parts": [""]})  # an empty message
    answer = chat.add("assistant", "Hi there")
    chat.add("user", "Custom instructions", hidden=True)
    chat.add("system", "Be brief.")  # visible and not empty: kept, as system
    chat.add("system", "  ")  # empty: skipped
    chat.current = chat.add("user", {"content_type": "user_editable_context", "user_profile": "x"}, hidden=True)
    import_file(alice, write_json(tmp_path / "conversations.json", [chat.as_dict()]))

    conversation = Conversation.objects.get()
    assert shape(conversation) == [
        ("user", "Hello", None), ("assistant", "Hi there", "Hello"), ("system", "Be brief.", "Hi there"),
    ]
    # The current node was hidden: its nearest kept ancestor is the leaf.
    assert current_branch(conversation) == ["Hello", "Hi there", "Be brief."]
    assert chat.mapping[answer]["parent"] != question  # it was joined across three skipped nodes


def test_with_no_current_node_the_newest_branch_is_current(alice, tmp_path):
    chat, _ = otter_chat()
    data = chat.as_dict()
    del data["current_node"]
    import_file(alice, write_json(tmp_path / "conversations.json", [data]))
    assert current_branch(Conversation.objects.get()) == [*OTTER_BRANCH[:-1], "Crayfish and **frogs**."]


def test_a_missing_title_comes_from_the_first_question(alice, tmp_path):
    chat = ChatGPT(None)
    chat.add("user", "Why do otters   hold hands while they sleep?")
    chat.add("assistant", "So they do not drift apart.")
    import_file(alice, write_json(tmp_path / "conversations.json", [chat.as_dict()]))
    assert Conversation.objects.get().title == "Why do otters hold hands while they sleep?"


def test_titles_are_plain_text_trimmed_to_fit(alice, tmp_path):
    chat = ChatGPT("<b>Otters</b>\n and   more " + "x" * 300)
    chat.add("user", "Hi")
    import_file(alice, write_json(tmp_path / "conversations.json", [chat.as_dict()]))
    title = Conversation.objects.get().title
    assert title.startswith("<b>Otters</b> and more xxx") and len(title) == 200
    assert "&lt;b&gt;Otters" in page(login(alice).get("/"))  # escaped where shown


def test_content_of_every_kind_becomes_text_with_placeholders(alice, tmp_path):
    chat = ChatGPT("Kinds")
    image = {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-abc", "width": 10, "height": 10}
    chat.add("user", {"content_type": "multimodal_text", "parts": [image, "What is this?"]})
    chat.add("user", {"content_type": "multimodal_text", "parts": [
        {"content_type": "audio_transcription", "text": "Hello by voice"},
        {"content_type": "audio_asset_pointer", "asset_pointer": "sediment://file-1"},
        {"content_type": "video_container_asset_pointer"},
    ]})
    chat.add("assistant", {"content_type": "code", "language": "python", "text": "print(1)"})
    chat.add("tool", {"content_type": "execution_output", "text": "1"}, name="python")
    chat.add("tool", {"content_type": "tether_quote", "url": "https://example.com/otters", "domain": "example.com",
                      "text": "Otters hold hands.", "title": "Otter facts"}, name="browser")
    browsing = {"content_type": "tether_browsing_display", "result": "# Otters\nThey swim.", "summary": None}
    chat.add("tool", browsing, name="browser")
    chat.add("tool", {"content_type": "multimodal_text", "parts": [image]}, name="dalle.text2im")
    chat.add("assistant", {"content_type": "system_error", "name": "tool_error", "text": "The tool failed."})
    chat.add("assistant", {"content_type": "thoughts", "thoughts": [{"summary": "Otter diets", "content": "They eat fish."}]})
    chat.add("assistant", {"content_type": "reasoning_recap", "content": "Thought for 4 seconds"})
    chat.add("assistant", {"content_type": "hologram", "data": "?"})
    chat.add("assistant", {"content_type": "code", "language": "unknown", "text": "a ``` b"})
    chat.add("user", "<b>bold?</b>")
    chat.add("assistant", "<script>alert(1)</script> **bold**")
    import_file(alice, write_json(tmp_path / "conversations.json", [chat.as_dict()]))

    messages = list(Conversation.objects.get().messages.order_by("id"))
    assert [(m.role, m.content) for m in messages] == [
        ("user", "[image]\n\nWhat is this?"),
        ("user", "Hello by voice\n\n[audio]\n\n[video]"),
        ("assistant", "```python\nprint(1)\n```"),
        ("assistant", "[tool: python]\n\n```output\n1\n```"),
        ("assistant", "[tool: browser]\n\nOtter facts\n\nhttps://example.com/otters\n\nOtters hold hands."),
        ("assistant", "[tool: browser]\n\n# Otters\nThey swim."),
        ("assistant", "[tool: dalle.text2im]\n\n[image]"),
        ("assistant", "The tool failed."),
        ("assistant", "**Otter diets**\n\nThey eat fish."),
        ("assistant", "Thought for 4 seconds"),
        ("assistant", "[unsupported content: hologram]"),
        ("assistant", "````\na ``` b\n````"),
        ("user", "<b>bold?</b>"),
        ("assistant", "<script>alert(1)</script> **bold**"),
    ]
    # Replies are rendered and sanitised as any reply is; a person's words are kept as text, escaped when shown.
    assert messages[2].html.startswith('<pre class="highlight"><span class="code-lang">python</span>')
    assert messages[-2].html == ""
    assert "<script" not in messages[-1].html and "<strong>bold</strong>" in messages[-1].html


def test_an_unfinished_reply_is_imported_stopped_never_streaming(alice, tmp_path):
    chat = ChatGPT("Cut off")
    chat.add("user", "Tell me everything")
    chat.add("assistant", "Once upon", status="in_progress")
    chat.add("assistant", "Once upon a time", parent=chat.mapping[chat.current]["parent"],
             metadata={"finish_details": {"type": "max_tokens"}})
    import_file(alice, write_json(tmp_path / "conversations.json", [chat.as_dict()]))
    replies = Conversation.objects.get().messages.filter(role="assistant").order_by("id")
    assert [(m.status, m.finish_reason) for m in replies] == [("stopped", ""), ("complete", "length")]


def test_importing_the_same_export_twice_skips_what_is_there(alice, bob, tmp_path):
    chat, _ = otter_chat()
    path = write_zip(tmp_path / "export.zip", [chat.as_dict(), ChatGPT("Other").as_dict() | {"title": "Other"}])
    first = import_file(alice, path)
    assert (first.imported, first.skipped, first.failed) == (1, 0, 1)  # "Other" has no messages
    second = import_file(alice, path)
    assert (second.status, second.imported, second.skipped) == ("done", 0, 1)
    assert Conversation.objects.filter(owner=alice).count() == 1
    # Someone else importing the same file gets their own copy.
    assert import_file(bob, path).imported == 1


def test_the_database_refuses_a_second_copy_of_an_imported_conversation(alice, tmp_path):
    """What makes two uploads of one file at the same moment safe: the loser's insert fails, and it counts as skipped."""
    from django.db import IntegrityError, transaction

    chat, _ = otter_chat()
    import_file(alice, write_json(tmp_path / "conversations.json", [chat.as_dict()]))
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.create(owner=alice, import_key=f"chatgpt:{chat.id}")


# --- our own exports, back again -------------------------------------------------------------------


def export_of(conversation: Conversation) -> dict:
    return json.loads(json.dumps(exports.conversation_export(conversation, selectors.conversations.export_rows(conversation))))


def test_our_export_imports_as_the_same_tree_title_and_current_branch(alice, bob, tmp_path):
    original, m = make_branched_conversation(owner=alice)
    job = import_file(bob, write_json(tmp_path / "otter-diets.json", export_of(original)))
    assert (job.status, job.imported) == ("done", 1)
    copy = Conversation.objects.get(owner=bob)
    assert shape(copy) == shape(original)
    assert current_branch(copy) == current_branch(original) == OTTER_BRANCH
    assert (copy.title, copy.import_key, copy.created) == ("Otter diets", f"export:{original.id}", original.created)
    assert set(copy.messages.values_list("id", flat=True)).isdisjoint(original.messages.values_list("id", flat=True))
    regenerated = copy.messages.get(content="Crayfish and **frogs**.")
    assert (regenerated.model_name, regenerated.prompt_tokens, regenerated.completion_tokens) == ("gpt-otter-2", 12, 5)
    assert regenerated.created == m["a3b"].created
    assert regenerated.html == m["a3b"].html
    assert set(copy.messages.filter(role="user").values_list("author__username", flat=True)) == {"bob"}
    # And exported again, it has the same shape and current branch.
    again = export_of(copy)
    before = export_of(original)
    assert [(x["role"], x["content"]) for x in again["messages"]] == [(x["role"], x["content"]) for x in before["messages"]]
    assert again["messages"][[x["id"] for x in again["messages"]].index(again["current_leaf"])]["content"] == "Crayfish."


def test_a_list_of_our_exports_and_an_old_export_without_ids(alice, tmp_path):
    first, _ = make_branched_conversation(owner=alice, title="First")
    second, _ = make_branched_conversation(owner=alice, title="Second")
    old = export_of(second) | {"id": "old-one", "title": "Old", "version": 1}
    old["messages"] = [{k: v for k, v in message.items() if k not in ("id", "parent_id")} for message in old["messages"][:3]]
    old["messages"][1]["status"] = "streaming"
    path = write_json(tmp_path / "exports.json", [export_of(first), export_of(second), old])
    Conversation.objects.all().delete()

    job = import_file(alice, path)
    assert (job.status, job.total, job.imported) == ("done", 3, 3)
    assert current_branch(Conversation.objects.get(title="Second")) == OTTER_BRANCH
    old_copy = Conversation.objects.get(title="Old")
    assert shape(old_copy) == [
        ("user", "What do otters eat?", None),
        ("assistant", "Mostly fish.", "What do otters eat?"),
        ("user", "And sea otters?", "Mostly fish."),
    ]
    assert old_copy.messages.get(role="assistant").status == "stopped"  # never streaming


# --- hostile files ---------------------------------------------------------------------------------


def refused(job: ImportJob) -> str:
    assert job.status == ImportJob.Status.FAILED and job.processed == 0 and job.imported == 0
    assert nothing_imported()
    return job.error


def test_invalid_json_names_the_file_and_the_line_and_column(alice, tmp_path):
    good = json.dumps([otter_chat()[0].as_dict()])
    path = tmp_path / "conversations.json"
    path.write_text(good[:-1] + ',\n {"title": broken}]')
    assert refused(import_file(alice, path)) == "conversations.json is not valid JSON: Expecting value at line 2, column 12."


def test_invalid_json_in_a_split_zip_names_the_member_and_imports_nothing(alice, tmp_path):
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("conversations-000.json", json.dumps([otter_chat()[0].as_dict()]))
        archive.writestr("conversations-001.json", '[\n  {"title": "x", "mapping": {}}\n  {"title": "y"}\n]')
    error = refused(import_file(alice, path))
    assert error == "conversations-001.json is not valid JSON: Expecting ',' delimiter at line 3, column 3."


@pytest.mark.parametrize("read_chars", [1, 5, 64, 1 << 20])
def test_json_items_and_error_positions_do_not_depend_on_where_reads_end(monkeypatch, read_chars):
    monkeypatch.setattr(jsonstream, "READ_CHARS", read_chars)
    items = [{"a": "x" * 50, "b": [1.5e3, True, None, "\\u00e9\u00e9"]}, {"n": -12}, "é", 123456]
    text = json.dumps(items, indent=1)
    assert list(jsonstream.JSONItems(io.StringIO(text), max_item_chars=10_000)) == items
    assert list(jsonstream.JSONItems(io.StringIO(' {"one": 1} '), max_item_chars=100)) == [{"one": 1}]
    assert list(jsonstream.JSONItems(io.StringIO("[]"), max_item_chars=100)) == []
    broken = text.replace('"n": -12', '"n": -12,')
    with pytest.raises(jsonstream.JSONError) as caught:
        list(jsonstream.JSONItems(io.StringIO(broken), max_item_chars=10_000))
    line = broken[: broken.index('-12,') + 4].count("\n") + 1
    assert (caught.value.reason, caught.value.line) == ("Expecting property name enclosed in double quotes", line + 1)
    with pytest.raises(jsonstream.ItemTooLarge):
        list(jsonstream.JSONItems(io.StringIO(text), max_item_chars=40))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"foo": 1}', "upload.json holds no conversations this site can read"),
        ("[1, 2, 3]", "upload.json holds no conversations this site can read"),
        ('"just a string"', "upload.json is neither a ZIP archive nor a JSON file"),
        ("\x89PNG\r\n\x1a\n" + "x" * 50, "upload.json is neither a ZIP archive nor a JSON file"),
        ("PK\x03\x04 not really a zip", "upload.json is not a readable ZIP archive"),
        ("[" * 100_000, "upload.json is not valid JSON: Nested too deeply at line 1, column 2"),
        ("[{}] trailing", "upload.json is not valid JSON: Extra data at line 1, column 6"),
        ('[{"mapping": {}, "n": 1' + "1" * 5000 + "}]", "upload.json is not valid JSON: A number too long at line 1, column 2"),
        ("", "upload.json is neither a ZIP archive nor a JSON file"),
    ],
)
def test_files_of_the_wrong_kind_or_shape_are_refused_with_why(alice, tmp_path, content, message):
    path = tmp_path / "upload.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape") if not content.startswith("\x89") else content.encode("latin-1"))
    assert refused(import_file(alice, path)).startswith(message)


def test_a_zip_without_conversations_is_refused(alice, tmp_path):
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("holiday.png", b"png")
    assert refused(import_file(alice, path)) == (
        "photos.zip holds no conversations.json (or conversations-000.json …): is it a ChatGPT data export?"
    )


def bomb(path: Path, size: int = 5_000_000) -> Path:
    """A valid conversations.json of `size` bytes, nearly all spaces: it deflates about a thousandfold."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", b"[" + b" " * (size - 2) + b"]")
    return path


def small_limits(**changes) -> Limits:
    return Limits(**{**Limits.from_settings().__dict__, **changes})


def test_a_zip_bomb_is_refused_by_its_declared_size_before_anything_is_inflated(alice, tmp_path, settings):
    path = bomb(tmp_path / "bomb.zip")
    settings.CHAT_IMPORT_MAX_UNCOMPRESSED_BYTES = 1_000_000
    with pytest.raises(ImportRefused):  # opening reads the archive's directory only: nothing is inflated
        Source(str(path), "bomb.zip", small_limits(max_uncompressed_bytes=1_000_000))
    assert refused(import_file(alice, path)) == (
        "The conversations in bomb.zip unpack to 4.8\xa0MB, more than the limit of 976.6\xa0KB."
    )


def test_a_zip_bomb_is_refused_by_its_compression_ratio(alice, tmp_path, settings):
    path = bomb(tmp_path / "bomb.zip")
    info = zipfile.ZipFile(path).getinfo("conversations.json")
    assert info.file_size / info.compress_size > 500
    settings.CHAT_IMPORT_MAX_RATIO = 100
    assert refused(import_file(alice, path)) == (
        "conversations.json in the archive is compressed more than 100 times (refused as a possible ZIP bomb)."
    )


def lie_about_size(path: Path, declared: int) -> None:
    """Rewrite the member's uncompressed size in both its local header and the central directory."""
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)
    struct.pack_into("<I", data, central + 24, declared)
    path.write_bytes(bytes(data))


def test_a_zip_that_lies_about_its_size_stops_at_the_size_it_declared(alice, tmp_path, settings):
    path = bomb(tmp_path / "liar.zip")
    lie_about_size(path, 1000)
    settings.CHAT_IMPORT_MAX_UNCOMPRESSED_BYTES = 1_000_000
    settings.CHAT_IMPORT_MAX_RATIO = 1_000_000
    assert zipfile.ZipFile(path).getinfo("conversations.json").file_size == 1000
    assert refused(import_file(alice, path)) == (
        "The archive is damaged: conversations.json does not match its recorded size or checksum."
    )


def test_bytes_are_counted_while_reading_whatever_the_header_says(tmp_path):
    """The safety net under zipfile's own: a stream that yields more than the member declared is cut off."""
    info = zipfile.ZipInfo("conversations.json")
    info.file_size, info.compress_size = 10_000, 10_000
    reader = _CappedReader(io.BytesIO(b" " * 50_000), info, small_limits(max_uncompressed_bytes=1 << 30), already_read=0)
    with pytest.raises(ImportRefused, match="does not match its recorded size"):
        while reader.read(4096):
            pass
    assert reader.count <= 10_000 + 4096
    info.file_size = 1 << 30
    capped = _CappedReader(io.BytesIO(b" " * 50_000), info, small_limits(max_uncompressed_bytes=20_000), already_read=0)
    with pytest.raises(ImportRefused, match="more than the limit"):
        while capped.read(4096):
            pass


UNSAFE_NAMES = ["../conversations.json", "export/../../evil.json", "/etc/passwd", "C:/windows/x.json", "..\\x.json"]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_a_zip_with_an_unsafe_member_name_is_refused_and_nothing_is_extracted(alice, tmp_path, name):
    path = write_zip(tmp_path / "export.zip", [otter_chat()[0].as_dict()])
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(zipfile.ZipInfo(name), "[]")
    before = set(os.listdir(tmp_path)) | set(os.listdir(tmp_path.parent))
    error = refused(import_file(alice, path))
    assert error.startswith("The archive holds a file with an unsafe name") and name in error
    assert set(os.listdir(tmp_path)) | set(os.listdir(tmp_path.parent)) == before


def test_a_mapping_that_loops_fails_that_conversation_only(alice, tmp_path):
    looped = ChatGPT("Looped")
    a = looped.add("user", "A")
    b = looped.add("assistant", "B")
    looped.mapping[a]["parent"] = b  # A follows B follows A
    good, _ = otter_chat()
    job = import_file(alice, write_json(tmp_path / "conversations.json", [looped.as_dict(), good.as_dict()]))
    assert (job.status, job.imported, job.failed) == ("done", 1, 1)
    (failure,) = job.failures
    assert failure["title"] == "Looped"
    assert "loop" in failure["reason"]
    assert list(Conversation.objects.values_list("title", flat=True)) == ["Otter diets"]
    assert not Message.objects.filter(content__in=["A", "B"]).exists()


def test_a_chain_fifty_thousand_messages_deep_imports_without_recursion(alice, tmp_path):
    chat = ChatGPT("Deep", system_root=False)
    for number in range(50_000):
        chat.add("user" if number % 2 == 0 else "assistant", f"m{number}")
    job = import_file(alice, write_json(tmp_path / "conversations.json", [chat.as_dict()]))
    assert (job.status, job.imported) == ("done", 1)
    conversation = Conversation.objects.get()
    tree = selectors.conversations.conversation_tree(conversation.id)
    branch = tree.branch(conversation.current_leaf_id)
    assert len(branch) == 50_000
    assert conversation.messages.get(pk=branch[-1]).content == "m49999"


def test_a_message_over_the_size_limit_fails_its_conversation_only(alice, tmp_path):
    huge = ChatGPT("Huge")
    huge.add("user", "Summarise this")
    huge.add("assistant", "x" * 3_000_000)
    good, _ = otter_chat()
    # (A bare file: in a ZIP, three million x's compress a thousandfold and would be refused as a bomb.)
    job = import_file(alice, write_json(tmp_path / "conversations.json", [huge.as_dict(), good.as_dict()]))
    assert (job.status, job.imported, job.failed) == ("done", 1, 1)
    assert job.failures == [{
        "title": "Huge",
        "reason": "A message has 3,000,000 characters, more than the limit of 2,000,000 for one message.",
    }]
    assert not Conversation.objects.filter(title="Huge").exists()
    assert not Message.objects.filter(content="Summarise this").exists()


def test_a_conversation_over_the_size_limit_stops_the_file(alice, tmp_path, settings):
    settings.CHAT_IMPORT_MAX_CONVERSATION_CHARS = 10_000
    huge = ChatGPT("Huge")
    huge.add("user", "y" * 20_000)
    error = refused(import_file(alice, write_json(tmp_path / "conversations.json", [huge.as_dict()])))
    assert error == (
        "conversations.json: the conversation at line 1, column 2 is larger than the limit of 10,000 characters "
        "for one conversation."
    )


# --- manage.py import_conversations ----------------------------------------------------------------


def test_the_command_imports_a_file_for_a_person_and_prints_the_summary(alice, tmp_path):
    chat, ids = otter_chat()
    path = write_zip(tmp_path / "export.zip", [*many_conversations(3, 4), chat.as_dict()])
    out = io.StringIO()
    call_command("import_conversations", str(path), user="alice", stdout=out)
    assert out.getvalue().splitlines()[-1] == "Imported: 4. Skipped (imported before): 0. Not imported: 0."
    assert_otters_imported(Conversation.objects.get(title="Otter diets"), chat, ids, alice)
    assert path.exists()  # the caller's file is left where it was
    again = io.StringIO()
    call_command("import_conversations", str(path), user="alice", stdout=again)
    assert again.getvalue().splitlines()[-1] == "Imported: 0. Skipped (imported before): 4. Not imported: 0."


def test_the_command_fails_when_the_file_is_refused(alice, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(CommandError, match=r"notes\.txt is neither a ZIP archive nor a JSON file"):
        call_command("import_conversations", str(path), user="alice", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No user called 'nobody'"):
        call_command("import_conversations", str(path), user="nobody")
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_conversations", str(tmp_path / "missing.zip"), user="alice")


# --- the page, over HTTP ---------------------------------------------------------------------------


def upload(client, path: Path, **fields):
    """POST the file as the page's form does: its other fields (the CSRF token) first, then the file."""
    with open(path, "rb") as handle:
        return client.post("/import/", {**fields, "file": handle})


def leftover_uploads(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith("chat-import-")]


def test_the_import_page_is_in_the_sidebar_and_shows_the_form(alice):
    client = login(alice)
    assert 'href="/import/" id="import-link">Import</a>' in page(client.get("/"))
    html = page(client.get("/import/"))
    assert 'enctype="multipart/form-data"' in html and 'name="csrfmiddlewaretoken"' in html
    assert html.index("csrfmiddlewaretoken") < html.index('name="file"')  # the token before the file
    assert 'src="/static/conversations/js/imports.js"' in html
    assert "None yet." in html


def test_the_import_page_and_its_status_need_a_login(alice):
    job = services.imports.import_job_create(owner=alice, filename="x.zip")
    assert login(None).get("/import/")["Location"].startswith("/accounts/login/")
    assert login(None).get(f"/import/{job.id}/")["Location"].startswith("/accounts/login/")


def test_an_upload_without_the_csrf_token_is_refused(alice, tmp_path):
    path = write_zip(tmp_path / "export.zip", [otter_chat()[0].as_dict()])
    assert upload(login(alice, enforce_csrf_checks=True), path).status_code == 403
    assert not ImportJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_upload_imports_in_the_background_and_its_status_says_how_it_went(alice, tmp_path, settings):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    chat, ids = otter_chat()
    path = write_zip(tmp_path / "export.zip", [chat.as_dict()])
    client = login(alice, enforce_csrf_checks=True)
    client.get("/import/")  # sets the CSRF cookie
    response = upload(client, path, csrfmiddlewaretoken=client.cookies["csrftoken"].value)
    assert (response.status_code, response["Location"]) == (302, "/import/")
    assert runner.wait_for_imports(timeout=30)

    job = ImportJob.objects.get()
    status = client.get(f"/import/{job.id}/")
    assert status["Cache-Control"] == "private, no-store"
    assert status.json() == {
        "id": str(job.id), "filename": "export.zip", "status": "done", "finished": True, "total": 1, "processed": 1,
        "imported": 1, "skipped": 0, "failed": 0, "failures": [], "error": "",
    }
    assert_otters_imported(Conversation.objects.get(owner=alice), chat, ids, alice)
    assert leftover_uploads(tmp_path) == []  # the private copy is deleted once imported
    html = page(client.get("/import/"))
    assert "Imported: 1. Skipped (imported before): 0. Not imported: 0." in html
    assert "Otter diets" in html  # in the sidebar


@pytest.mark.django_db(transaction=True)
def test_an_exported_conversation_uploaded_again_comes_back_whole(alice, bob, tmp_path):
    original, _ = make_branched_conversation(owner=alice)
    download = login(alice).get(f"/c/{original.id}/export/?format=json")
    path = tmp_path / "otter-diets.json"
    path.write_bytes(download.content)
    assert upload(login(bob), path).status_code == 302
    assert runner.wait_for_imports(timeout=30)
    copy = Conversation.objects.get(owner=bob)
    assert (shape(copy), current_branch(copy), copy.title) == (shape(original), current_branch(original), "Otter diets")


@pytest.mark.django_db(transaction=True)
def test_a_refused_file_says_why_in_its_status(alice, tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text('[{"title": "x", "mapping": {}}\n{"title": "y"}]')
    client = login(alice)
    upload(client, path)
    assert runner.wait_for_imports(timeout=30)
    job = ImportJob.objects.get()
    status = client.get(f"/import/{job.id}/").json()
    assert (status["status"], status["finished"]) == ("failed", True)
    assert status["error"] == "conversations.json is not valid JSON: Expecting ',' delimiter at line 2, column 1."
    assert "Failed: conversations.json is not valid JSON" in page(client.get("/import/"))


def test_someone_elses_import_is_not_found(alice, bob):
    job = services.imports.import_job_create(owner=alice, filename="mine.zip")
    assert login(bob).get(f"/import/{job.id}/").status_code == 404
    assert login(bob).get("/import/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert "mine.zip" not in page(login(bob).get("/import/"))
    assert login(alice).get(f"/import/{job.id}/").json()["status"] == "queued"


def test_a_second_upload_while_one_runs_is_refused(alice, tmp_path, settings):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    services.imports.import_job_create(owner=alice, filename="first.zip")
    response = upload(login(alice), write_zip(tmp_path / "second.zip", [otter_chat()[0].as_dict()]))
    assert response.status_code == 400
    assert "An import of yours is still running. Wait for it to finish, then upload the next file." in page(response)
    assert list(ImportJob.objects.values_list("filename", flat=True)) == ["first.zip"]
    assert leftover_uploads(tmp_path) == []


def test_one_unfinished_import_per_person_is_kept_by_the_database(alice):
    from django.db import IntegrityError, transaction

    ImportJob.objects.create(owner=alice, filename="a.zip", status=ImportJob.Status.RUNNING)
    with pytest.raises(IntegrityError), transaction.atomic():
        ImportJob.objects.create(owner=alice, filename="b.zip")


def test_an_import_no_longer_renewed_shows_as_interrupted_and_does_not_block_the_next(alice, tmp_path, settings):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    job = services.imports.import_job_create(owner=alice, filename="first.zip")
    ImportJob.objects.filter(pk=job.id).update(status="running", updated=timezone.now() - timedelta(minutes=3))
    client = login(alice)
    status = client.get(f"/import/{job.id}/").json()
    assert (status["status"], status["error"]) == (
        "failed", "Interrupted (the server restarted); upload the file again: conversations already imported are skipped.",
    )
    assert "Failed: Interrupted (the server restarted)" in page(client.get("/import/"))
    # A job still renewed is left alone, and blocks a second upload.
    fresh = ImportJob.objects.create(owner=alice, filename="second.zip", status="running")
    assert services.imports.import_jobs_expire(owner=alice) == 0
    ImportJob.objects.filter(pk=fresh.pk).update(updated=timezone.now() - timedelta(minutes=3))
    response = upload(client, write_zip(tmp_path / "third.zip", [otter_chat()[0].as_dict()]))
    assert response.status_code == 302  # the stale one was found interrupted first
    assert ImportJob.objects.get(pk=fresh.pk).status == "failed"


def test_a_job_found_interrupted_while_it_still_runs_stops_without_finishing(alice, tmp_path):
    chat, _ = otter_chat()
    job = services.imports.import_job_create(owner=alice, filename="x.json")
    ImportJob.objects.filter(pk=job.id).update(status="failed", error="Interrupted")
    finished = runner.import_run(job_id=job.id, path=str(write_json(tmp_path / "x.json", [chat.as_dict()])))
    assert (finished.status, finished.error) == ("failed", "Interrupted")
    assert nothing_imported()


@pytest.mark.parametrize("size", [120_000, 300_000])  # over the cap by less (stopped while written) or more than the envelope
def test_an_upload_over_the_size_limit_is_refused_without_being_kept(alice, tmp_path, settings, size):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    settings.CHAT_IMPORT_MAX_UPLOAD_BYTES = 100_000
    path = tmp_path / "conversations.json"
    path.write_text("[" + " " * (size - 2) + "]")
    client = login(alice, enforce_csrf_checks=True)
    client.get("/import/")
    response = upload(client, path, csrfmiddlewaretoken=client.cookies["csrftoken"].value)
    assert response.status_code == 400  # the CSRF check still passed: the token came before the file
    assert "The file is larger than the limit of 97.7\xa0KB." in page(response)
    assert not ImportJob.objects.exists()
    assert [name for name in os.listdir(tmp_path) if name != "conversations.json"] == []


def test_a_post_without_a_file_says_what_to_choose(alice):
    response = login(alice).post("/import/", {})
    assert response.status_code == 400
    assert "Choose a file: a ChatGPT export (ZIP or conversations.json) or a JSON export from this site." in page(response)

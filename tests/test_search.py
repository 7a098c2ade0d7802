"""Search: terms in English and Chinese, phrases and exclusions, who sees what, snippets, and an index kept current
by every path that writes messages. On the real database of the run (SQLite or PostgreSQL)."""

import importlib

import pytest
from django.apps import apps as global_apps
from django.db import connection

from conversations import selectors, services
from conversations.fulltext import index, terms
from conversations.models import Conversation, Message
from tests.chatgpt_export import otter_chat, write_zip
from tests.factories import make_branched_conversation, make_share
from tests.helpers import login, page
from tests.test_imports import import_file

pytestmark = pytest.mark.django_db


def start(owner, content: str) -> Conversation:
    """A conversation started as the home page starts one: its first message indexed with it."""
    return services.conversations.conversation_create(owner=owner, content=content)


def found(user, text: str) -> list:
    return [result.conversation_id for result in selectors.search.search(user, text).results]


def reply(user, conversation: Conversation, content: str, **begin) -> int:
    """A send answered with `content`: the reply's whole life in the database."""
    plan = services.replies.reply_begin(user=user, conversation_id=conversation.id, content="Go on", **begin)
    services.replies.reply_finish(reply_id=plan.reply_id, content=content, status=Message.Status.COMPLETE)
    return plan.reply_id


# --- terms -------------------------------------------------------------------------------------------


def test_latin_words_are_stemmed_and_cjk_runs_become_bigrams():
    assert terms.text_terms("Streaming streams 打字机, 用Python!") == ["stream", "stream", "打字", "字机", "用", "python"]


def test_a_query_word_of_several_cjk_characters_is_a_phrase_of_its_bigrams():
    query = terms.parse_query('打字机 "real time" -jquery 流')
    assert terms.fts5_match(query) == '("打字 字机" AND "real time"* AND "流"*) NOT "jqueri"*'
    assert terms.tsquery(query) == "('打字' <-> '字机') & ('real' <-> 'time':*) & ('流':*) & !('jqueri':*)"


def test_a_query_of_exclusions_alone_finds_nothing(alice):
    start(alice, "jquery is old")
    assert found(alice, "-jquery") == []


# --- English -----------------------------------------------------------------------------------------


def test_english_words_find_their_forms_and_prefixes(alice):
    chat = start(alice, "How do I handle streaming responses in Django?")
    other = start(alice, "Recipes for banana bread")
    for query in ("stream", "streams", "STREAMED", "respons", "respo", "django stream"):
        assert found(alice, query) == [chat.id], query
    assert found(alice, "bread") == [other.id]
    assert found(alice, "kubernetes") == []
    assert found(alice, "stream banana") == []


def test_quotes_search_a_phrase_and_minus_excludes(alice):
    first = start(alice, "the server sent events stream")
    second = start(alice, "events on the server were sent later")
    assert set(found(alice, "server sent")) == {first.id, second.id}
    assert found(alice, '"server sent"') == [first.id]
    assert found(alice, "server -later") == [first.id]
    assert found(alice, 'server -"sent events"') == [second.id]


# --- Chinese -----------------------------------------------------------------------------------------


def test_any_chinese_word_is_found_inside_running_text(alice):
    chat = start(alice, "如何实现流式响应的打字机效果")
    for query in ("流式", "打字机", "响应的打", "效果", "实"):
        assert found(alice, query) == [chat.id], query
    assert found(alice, "效应") == []  # both characters are there, not together
    assert found(alice, "打字员") == []


def test_mixed_chinese_and_english(alice):
    chat = start(alice, "用Python实现SSE流式输出")
    assert found(alice, "python 流式") == [chat.id]
    assert found(alice, "sse") == [chat.id]
    assert found(alice, "流式 -python") == []


# --- who sees what -------------------------------------------------------------------------------------


def test_others_conversations_never_appear_shared_ones_do_until_revoked(alice, bob):
    mine = start(alice, "otter notes, mine")
    theirs = start(bob, "otter secrets of bob")
    assert found(alice, "otter") == [mine.id]
    share = make_share(conversation=theirs, user=alice)
    results = selectors.search.search(alice, "secrets").results
    assert [(result.conversation_id, result.owner) for result in results] == [(theirs.id, "bob")]
    services.sharing.share_revoke(share=share)
    assert found(alice, "secrets") == []
    assert 'class="search-result"' not in page(login(alice).get("/search/?q=secrets"))


def test_the_page_escapes_snippets_and_marks_matches(alice):
    start(alice, "Why does <script>alert('stream')</script> run?")
    html = page(login(alice).get("/search/", {"q": "stream"}))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;<mark>stream</mark>&#x27;)&lt;/script&gt;" in html


def test_the_page_needs_a_login_and_pages_results(client, alice, monkeypatch):
    monkeypatch.setattr(selectors.search, "FIRST_CHUNK", 2)  # several chunks of matches for one page
    assert client.get("/search/?q=x").status_code == 302
    for number in range(selectors.search.PER_PAGE + 3):
        start(alice, f"walrus number {number}")
    client = login(alice)
    first, second = client.get("/search/?q=walrus"), client.get("/search/?q=walrus&page=2")
    assert page(first).count('class="search-result"') == selectors.search.PER_PAGE and "page=2" in page(first)
    assert page(second).count('class="search-result"') == 3
    assert "Nothing found" in page(client.get("/search/?q=zzzz"))


# --- the index follows every write ----------------------------------------------------------------------


def test_a_reply_is_found_once_it_ends_not_at_a_checkpoint(alice, model_config):
    chat = start(alice, "Tell me about zebras")
    plan = services.replies.reply_begin(user=alice, conversation_id=chat.id, content="More please")
    services.replies.replies_checkpoint({plan.reply_id: "Quaggas were a subspecies"})
    assert found(alice, "quagga") == []
    assert found(alice, "more please") == [chat.id]  # the person's message, at once
    services.replies.reply_finish(reply_id=plan.reply_id, content="Quaggas were a subspecies", status="complete")
    assert found(alice, "quagga") == [chat.id]


def test_a_reply_with_a_very_long_word_saves_and_is_found_by_its_start(alice, model_config):
    # PostgreSQL refuses tsvector words over 2,047 bytes: a reply with a 10,000-letter "word" failed to save.
    chat = start(alice, "Say y a lot")
    plan = services.replies.reply_begin(user=alice, conversation_id=chat.id, content="Longer")
    services.replies.reply_finish(reply_id=plan.reply_id, content="y" * 5_000 + " zebra", status="complete")
    assert Message.objects.get(pk=plan.reply_id).status == "complete"
    assert found(alice, "zebra") == [chat.id]
    assert found(alice, "y" * 300) == [chat.id]


def test_an_orphaned_reply_is_indexed_with_the_text_it_kept(alice, model_config):
    chat = start(alice, "Tell me about zebras")
    plan = services.replies.reply_begin(user=alice, conversation_id=chat.id, content="More please")
    services.replies.replies_checkpoint({plan.reply_id: "Quaggas were"})
    services.replies.replies_close_orphaned(reply_id=plan.reply_id)
    assert found(alice, "quagga") == [chat.id]


def test_an_edited_question_and_a_result_open_on_its_branch(alice, model_config):
    chat = start(alice, "What do otters eat?")
    first_reply = reply(alice, chat, "Fish mostly")
    plan = services.replies.reply_begin(user=alice, conversation_id=chat.id, content="What do walruses eat?", parent_id=None)
    services.replies.reply_finish(reply_id=plan.reply_id, content="Clams", status="complete")
    (result,) = selectors.search.search(alice, "fish").results
    assert result.message_id == first_reply
    response = login(alice).get(f"/c/{chat.id}/", {"message": first_reply})
    html = page(response)
    assert "Fish mostly" in html and "Clams" not in html and f'data-found-message="{first_reply}"' in html
    chat.refresh_from_db()
    assert chat.current_leaf_id == plan.reply_id  # looking is not choosing: the saved branch is unchanged
    assert found(alice, "walrus") == [chat.id]


def test_a_result_opens_an_older_version_on_its_branch(alice):
    chat, messages = make_branched_conversation(owner=alice)
    index.index_everything()
    (result,) = selectors.search.search(alice, "urchins").results
    assert result.message_id == messages["a2"].id
    html = page(login(alice).get(f"/c/{chat.id}/?message={messages['a2'].id}"))
    assert "Sea urchins." in html and "Crayfish." not in html


def test_deleted_conversations_and_messages_are_gone_at_once(alice):
    chat = start(alice, "ephemeral thoughts")
    other = start(alice, "ephemeral too")
    services.conversations.conversation_rename(conversation=other, title="Untitled")
    Message.objects.filter(conversation=other).delete()
    assert found(alice, "ephemeral") == [chat.id]
    services.conversations.conversation_delete(conversation=chat)
    assert found(alice, "ephemeral") == []


def test_titles_are_found_and_follow_a_rename(alice):
    chat = start(alice, "")
    services.conversations.conversation_rename(conversation=chat, title="Quarterly 报表 planning")
    (result,) = selectors.search.search(alice, "报表").results
    assert result.message_id is None and "<mark>报表</mark>" in result.title_html
    services.conversations.conversation_rename(conversation=chat, title="Something else")
    assert found(alice, "quarterly") == []


def test_imported_conversations_are_searchable(alice, tmp_path):
    chat, _ = otter_chat()
    import_file(alice, write_zip(tmp_path / "export.zip", [chat.as_dict()]))
    (conversation,) = Conversation.objects.filter(owner=alice)
    assert found(alice, "urchins") == [conversation.id]
    assert found(alice, "otter diets") == [conversation.id]


@pytest.mark.django_db(transaction=True)
def test_the_migration_indexes_what_was_saved_before_it(alice):
    chat = Conversation.objects.create(owner=alice, title="Legacy chat")
    Message.objects.create(conversation=chat, role="user", content="an old 历史记录 about lighthouses", author=alice)
    assert found(alice, "lighthouse") == []  # saved around the services: not indexed
    migration = importlib.import_module("conversations.migrations.0012_search_index")
    with connection.schema_editor() as editor:
        migration.drop(global_apps, editor)
        migration.create_and_fill(global_apps, editor)
    assert found(alice, "lighthouse") == [chat.id]
    assert found(alice, "历史") == [chat.id]
    assert found(alice, "legacy") == [chat.id]


def test_shared_and_imported_conversations_are_found_and_postgresql_keeps_each_messages_owner(alice, bob, tmp_path):
    theirs = start(bob, "otters share their clams")
    make_share(conversation=theirs, user=alice)
    reply(bob, theirs, "Clams again")
    chat, _ = otter_chat()
    import_file(alice, write_zip(tmp_path / "export.zip", [chat.as_dict()]))
    imported = Conversation.objects.get(owner=alice)
    assert found(alice, "clams") == [theirs.id]  # through the share, not as her own
    assert imported.id in found(alice, "otter")
    if connection.vendor != "postgresql":
        return  # the owner column is PostgreSQL's alone (SQLite searches fast enough without it)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT conversation_id, owner_id FROM {index.MESSAGES}")
        owners = {(conversation_id, owner_id) for conversation_id, owner_id in cursor.fetchall()}
    assert owners == {(theirs.id, bob.pk), (imported.id, alice.pk)}
    assert found(alice, "clams") == [theirs.id]  # through the share, not as her own
    index.index_everything()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {index.MESSAGES} WHERE owner_id IS NULL")
        assert cursor.fetchone() == (0,)

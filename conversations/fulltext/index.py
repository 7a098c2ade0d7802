"""The search index: its tables on each database, and the statements that keep it current.

Both databases index the same terms (terms.py), each in its own full-text engine:
- SQLite: FTS5 virtual tables (in the standard library's SQLite); a message's row is its id (rowid). A
  trigger removes a deleted message's row, so cascades and bulk deletes keep the index exact.
- PostgreSQL: tables with a tsvector built from our terms (never PostgreSQL's own parser, which drops CJK
  characters under the C locale) and a GIN index; triggers remove deleted messages' and conversations' rows.
Titles have a table of their own (one row per conversation).

Writers call messages_index/title_index in their own transaction, so what is saved is findable as it commits.
"""

import uuid
from collections.abc import Iterable

from django.db import connection

from .terms import INDEXED_CHARS, text_terms, tsvector

MESSAGES = "conversations_message_search"
TITLES = "conversations_title_search"

_SQLITE_SCHEMA = [
    # unicode61 only splits our terms on the spaces between them: they are already letters, digits or CJK.
    f"CREATE VIRTUAL TABLE {MESSAGES} USING fts5(terms, tokenize = 'unicode61 remove_diacritics 0')",
    f"CREATE TRIGGER {MESSAGES}_delete AFTER DELETE ON conversations_message"
    f" BEGIN DELETE FROM {MESSAGES} WHERE rowid = old.id; END",
    # A conversation's rowid is not stable on SQLite (its key is a UUID), so its row keeps the id beside a key
    # made from it (title_key); conversation_deleted below removes it.
    f"CREATE VIRTUAL TABLE {TITLES} USING fts5(terms, conversation_id UNINDEXED,"
    f" tokenize = 'unicode61 remove_diacritics 0')",
]
# The conversation's owner beside each message (migration 0013; conversations never change owner), so that a
# person's own matches are read from an index of their own messages instead of everyone's: a btree to read them
# newest first, and a GIN index (btree_gin) on (owner, terms) to find the rare ones. Idempotent: schema_create
# runs it on a new database, migration 0013 on one where 0012 had already run.
POSTGRESQL_OWNER_SCHEMA = [
    f"ALTER TABLE {MESSAGES} ADD COLUMN IF NOT EXISTS owner_id integer",
    f"UPDATE {MESSAGES} s SET owner_id = c.owner_id FROM conversations_conversation c"
    f" WHERE c.id = s.conversation_id AND s.owner_id IS NULL",
    f"ALTER TABLE {MESSAGES} ALTER COLUMN owner_id SET NOT NULL",
    f"CREATE INDEX IF NOT EXISTS {MESSAGES}_owner ON {MESSAGES} (owner_id, message_id)",
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    f"CREATE INDEX IF NOT EXISTS {MESSAGES}_owner_terms ON {MESSAGES} USING gin (owner_id, terms)",
]
# No foreign keys: Django's flush (tests) truncates the messages table alone, which a table referencing it
# would refuse. Triggers remove rows instead: per deleted row, and all of them on a truncate.
_POSTGRESQL_SCHEMA = [
    f"CREATE TABLE {MESSAGES} (message_id bigint PRIMARY KEY, conversation_id uuid NOT NULL, terms tsvector NOT NULL)",
    f"CREATE INDEX {MESSAGES}_terms ON {MESSAGES} USING gin (terms)",
    f"CREATE TABLE {TITLES} (conversation_id uuid PRIMARY KEY, terms tsvector NOT NULL)",
    f"CREATE INDEX {TITLES}_terms ON {TITLES} USING gin (terms)",
    f"CREATE FUNCTION {MESSAGES}_forget() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    f" DELETE FROM {MESSAGES} WHERE message_id = OLD.id; RETURN NULL; END $$",
    f"CREATE TRIGGER {MESSAGES}_delete AFTER DELETE ON conversations_message FOR EACH ROW"
    f" EXECUTE FUNCTION {MESSAGES}_forget()",
    f"CREATE FUNCTION {TITLES}_forget() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    f" DELETE FROM {TITLES} WHERE conversation_id = OLD.id; RETURN NULL; END $$",
    f"CREATE TRIGGER {TITLES}_delete AFTER DELETE ON conversations_conversation FOR EACH ROW"
    f" EXECUTE FUNCTION {TITLES}_forget()",
    f"CREATE FUNCTION {MESSAGES}_forget_all() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    f" TRUNCATE {MESSAGES}, {TITLES}; RETURN NULL; END $$",
    f"CREATE TRIGGER {MESSAGES}_truncate AFTER TRUNCATE ON conversations_message FOR EACH STATEMENT"
    f" EXECUTE FUNCTION {MESSAGES}_forget_all()",
    *POSTGRESQL_OWNER_SCHEMA,
]


def schema_create(schema_editor) -> None:
    """Create the index's tables for this database (run by migration 0012; 0013 adds the owner column where 0012
    had already run)."""
    vendor = schema_editor.connection.vendor
    statements = {"sqlite": _SQLITE_SCHEMA, "postgresql": _POSTGRESQL_SCHEMA}.get(vendor)
    if statements is None:
        raise NotImplementedError(f"Search needs SQLite or PostgreSQL, not {vendor}.")
    for statement in statements:
        schema_editor.execute(statement)


def schema_drop(schema_editor) -> None:
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {MESSAGES}_delete")
    else:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {MESSAGES}_delete ON conversations_message")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {MESSAGES}_truncate ON conversations_message")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TITLES}_delete ON conversations_conversation")
        for function in (f"{MESSAGES}_forget", f"{MESSAGES}_forget_all", f"{TITLES}_forget"):
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()")
    for table in (MESSAGES, TITLES):
        schema_editor.execute(f"DROP TABLE IF EXISTS {table}")


def title_key(conversation_id: uuid.UUID) -> int:
    """A conversation's row in the SQLite title table: 63 bits of its UUID (a collision is as likely as none)."""
    return uuid.UUID(str(conversation_id)).int >> 65


def _db_uuid(conversation_id, using) -> str | uuid.UUID:
    value = uuid.UUID(str(conversation_id))
    return value.hex if using.vendor == "sqlite" else value


def message_index_statement(using=connection) -> str:
    """The one statement that (re)indexes a message, parameters (message_id, conversation_id, terms): message_rows'
    shape. The send path runs it with its own cursor."""
    if using.vendor == "sqlite":
        return f"INSERT OR REPLACE INTO {MESSAGES} (rowid, terms) VALUES (%s, %s)"
    # The owner is read from the conversation in the same statement (the parameters stay three).
    return (
        f"INSERT INTO {MESSAGES} (message_id, conversation_id, owner_id, terms)"
        f" SELECT v.message_id, v.conversation_id,"
        f" (SELECT owner_id FROM conversations_conversation WHERE id = v.conversation_id), v.terms"
        f" FROM (VALUES (%s::bigint, %s::uuid, %s::tsvector)) v (message_id, conversation_id, terms)"
        f" ON CONFLICT (message_id) DO UPDATE SET terms = EXCLUDED.terms"
    )


def message_parameters(message_id: int, conversation_id, content: str, using=connection) -> list:
    """message_index_statement's parameters for this message."""
    if using.vendor == "sqlite":
        # conversation_id is not kept on SQLite: the join to the message finds it.
        return [message_id, " ".join(text_terms(content))]
    return [message_id, _db_uuid(conversation_id, using), tsvector(content)]


def saved_message_index(message_id: int, content: str, using=connection) -> tuple[str, list]:
    """The statement (and its parameters) that (re)indexes a saved message by its id alone: its conversation and
    owner are read in the statement, so nothing needs reading back first (and a deleted message is not indexed)."""
    if using.vendor == "sqlite":
        statement = f"INSERT OR REPLACE INTO {MESSAGES} (rowid, terms) SELECT id, %s FROM conversations_message WHERE id = %s"
        return statement, [" ".join(text_terms(content)), message_id]
    statement = (
        f"INSERT INTO {MESSAGES} (message_id, conversation_id, owner_id, terms)"
        f" SELECT m.id, m.conversation_id, c.owner_id, %s::tsvector FROM conversations_message m"
        f" JOIN conversations_conversation c ON c.id = m.conversation_id WHERE m.id = %s"
        f" ON CONFLICT (message_id) DO UPDATE SET terms = EXCLUDED.terms"
    )
    return statement, [tsvector(content), message_id]


def messages_index(messages: Iterable[tuple[int, object, str]], using=connection) -> None:
    """(Re)index messages given as (id, conversation id, content), in one prepared statement."""
    rows = [message_parameters(*message, using=using) for message in messages]
    if rows:
        with using.cursor() as cursor:
            cursor.executemany(message_index_statement(using), rows)


def title_index(conversation_id, title: str, using=connection) -> None:
    """(Re)index a conversation's title."""
    with using.cursor() as cursor:
        if using.vendor == "sqlite":
            cursor.execute(
                f"INSERT OR REPLACE INTO {TITLES} (rowid, terms, conversation_id) VALUES (%s, %s, %s)",
                [title_key(conversation_id), " ".join(text_terms(title)), _db_uuid(conversation_id, using)],
            )
        else:
            cursor.execute(
                f"INSERT INTO {TITLES} (conversation_id, terms) VALUES (%s, %s::tsvector)"
                f" ON CONFLICT (conversation_id) DO UPDATE SET terms = EXCLUDED.terms",
                [_db_uuid(conversation_id, using), tsvector(title)],
            )


def conversation_deleted(sender, instance, using, **kwargs) -> None:
    """SQLite: the title's row goes with its conversation (a trigger does it on PostgreSQL; triggers remove the
    messages' rows on both)."""
    from django.db import connections

    database = connections[using]
    if database.vendor == "sqlite":
        with database.cursor() as cursor:
            cursor.execute(f"DELETE FROM {TITLES} WHERE rowid = %s", [title_key(instance.pk)])


def index_everything(using=connection, batch: int = 2000) -> None:
    """Index every message and title from scratch (migration 0010; `manage.py search_reindex` after a restore)."""
    with using.cursor() as cursor:
        cursor.execute(f"DELETE FROM {MESSAGES}")
        cursor.execute(f"DELETE FROM {TITLES}")
        cursor.execute("SELECT id, title FROM conversations_conversation")
        titles = cursor.fetchall()
    for conversation_id, title in titles:
        title_index(conversation_id, title, using=using)
    after = 0
    while True:
        with using.cursor() as cursor:
            cursor.execute(
                "SELECT id, conversation_id, substr(content, 1, %s) FROM conversations_message WHERE id > %s"
                " ORDER BY id LIMIT %s",
                [INDEXED_CHARS, after, batch],
            )
            rows = cursor.fetchall()
        if not rows:
            return
        messages_index(rows, using=using)
        after = rows[-1][0]

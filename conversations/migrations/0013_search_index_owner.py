"""PostgreSQL: the search index keeps each message's conversation owner (filled here for the rows 0012 wrote),
with a btree on (owner, message) and a btree_gin index on (owner, terms), so a person's search reads their own
messages instead of everyone's (conversations/fulltext/index.py). Nothing to do on SQLite."""

from django.db import migrations


def add_owner(apps, schema_editor):
    from conversations.fulltext import index

    if schema_editor.connection.vendor == "postgresql":
        for statement in index.POSTGRESQL_OWNER_SCHEMA:
            schema_editor.execute(statement)


def remove_owner(apps, schema_editor):
    from conversations.fulltext import index

    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {index.MESSAGES}_owner_terms")
        schema_editor.execute(f"DROP INDEX IF EXISTS {index.MESSAGES}_owner")
        schema_editor.execute(f"ALTER TABLE {index.MESSAGES} DROP COLUMN IF EXISTS owner_id")


class Migration(migrations.Migration):
    dependencies = [("conversations", "0012_search_index")]

    operations = [migrations.RunPython(add_owner, remove_owner)]

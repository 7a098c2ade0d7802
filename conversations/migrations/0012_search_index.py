"""The search index (conversations/fulltext/index.py): FTS5 tables on SQLite, tsvector tables with GIN indexes on
PostgreSQL, filled from the messages and titles already saved."""

from django.db import migrations


def create_and_fill(apps, schema_editor):
    from conversations.fulltext import index

    index.schema_create(schema_editor)
    index.index_everything(schema_editor.connection)


def drop(apps, schema_editor):
    from conversations.fulltext import index

    index.schema_drop(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0011_sidebar_pin_archive")]

    operations = [migrations.RunPython(create_and_fill, drop)]

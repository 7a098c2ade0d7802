"""Full-text search in English and Chinese on SQLite and PostgreSQL: terms.py (text into terms), index.py (the index's
tables and writes). The search itself is a read: selectors/search.py."""

from . import index, terms

__all__ = ["index", "terms"]

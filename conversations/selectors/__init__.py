"""Reads, by subdomain: plain data out, never a write. Callers use the module: `selectors.sharing.public_link_for(...)`.

    conversations.py  a conversation for a person (the one access rule), its messages as rows and frames
    sidebar.py        the sidebar's lists a page at a time (keyset on updated, id), pinned, date groups
    providers.py      the model picker, model specs (what a reply is asked with), their per-process cache
    sharing.py        shares, public links and their gates
    teams.py          teams, teammates, members, a person's invitations and blocked teams
    presets.py        presets a person may apply
    imports.py        a person's import jobs and their progress
    search.py         full-text search over the conversations a person may see (the index: fulltext/)
    accounts.py       a person's profile; account invitations by token and a team's pending ones
"""

from . import accounts, conversations, imports, presets, providers, search, sharing, sidebar, teams

__all__ = ["accounts", "conversations", "imports", "presets", "providers", "search", "sharing", "sidebar", "teams"]

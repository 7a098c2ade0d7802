"""Writes, by subdomain. Each function is one transaction, keyword-only, named <entity>_<action>;
async callers reach each in one hop. Callers use the module: `services.sharing.share_revoke(share=...)`.

    conversations.py  create, rename, delete, a conversation's own settings, copies
    replies.py        a reply begun, checkpointed, finished (the send path's hand-written SQL)
    titles.py         a title written by a model: the request recorded in usage, the title saved unless renamed
    sharing.py        shares and public links
    teams.py          teams, invitations (and their limits), blocks, members leaving or removed
    presets.py        presets, and applying one to a conversation
    providers.py      the provider from the environment, importing models, rotating keys
    imports.py        import jobs (created, progress, finished, found interrupted), an imported conversation saved
    accounts.py       profiles (name, language, theme); account invitations made, revoked, accepted
"""

from . import accounts, conversations, imports, presets, providers, replies, sharing, teams, titles

__all__ = ["accounts", "conversations", "imports", "presets", "providers", "replies", "sharing", "teams", "titles"]

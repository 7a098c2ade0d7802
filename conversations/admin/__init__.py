"""The Django admin, one module per subdomain; importing this package registers every ModelAdmin.

    access.py     what staff who are not superusers may do here (the policy, visible_in_admin, read-only)
    providers.py  providers (Test connection, Import models, write-only keys) and model configs
    chat.py       conversations and messages (a message's html rendered from its content, never edited)
    teams.py      teams and their members
    sharing.py    shares, public links, site settings
    presets.py    presets
    usage.py      usage records (read-only, with totals) and limits
    sso.py        single sign-on links (a person at a provider is an account)
    accounts.py   profiles, account invitations (made with a link or an email, revoked)
"""

from . import accounts, chat, presets, providers, sharing, sso, teams, usage

__all__ = ["accounts", "chat", "presets", "providers", "sharing", "sso", "teams", "usage"]

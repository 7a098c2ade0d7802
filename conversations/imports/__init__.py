"""Importing conversations: a ChatGPT data export (its ZIP, or conversations.json) or our own JSON exports.

    parsed.py      what every format becomes (ImportedConversation), the limits, the errors, the tree walk
    jsonstream.py  the items of a top-level JSON list, a piece at a time, with line and column for errors
    sources.py     an uploaded file as the conversations it holds: JSON or ZIP, hostile archives refused
    chatgpt.py     a ChatGPT conversation (mapping, current_node, content of every kind) -> ImportedConversation
    teamchat.py    one of our exports (exports.py, every branch) -> ImportedConversation
    uploads.py     the upload written to disk with a size cap, kept in a private file for the job
    runner.py      a job run: count, then each conversation saved whole; in a background thread for uploads

Nothing here but runner.py touches the database: services.imports saves, selectors.imports reads.
"""

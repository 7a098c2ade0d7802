"""Marking the fixed wording of this library's messages for translation, without Django.

`gettext_noop` is a name makemessages (xgettext) picks up; it returns the text unchanged and records it in
PHRASES, so the app can word a message in the reader's language phrase by phrase while the server's own
words in it (an API's error message) stay as the server sent them.
"""

PHRASES: list[str] = []


def gettext_noop(text: str) -> str:
    """`text`, recorded as a phrase the app translates where it shows a message."""
    PHRASES.append(text)
    return text

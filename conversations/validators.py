"""Checks on what people send, shared by the websocket and the forms."""

import re

from django.core.exceptions import ValidationError

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_message_content(content: str, max_chars: int) -> str:
    """Raise ValidationError (with a code) unless `content` is a message we can store and send."""
    if not content.strip():
        raise ValidationError("The message is empty.", code="empty_content")
    if len(content) > max_chars:
        raise ValidationError(
            f"The message is {len(content):,} characters; the limit is {max_chars:,}.", code="content_too_long"
        )
    if "\x00" in content or _SURROGATE.search(content):
        raise ValidationError(
            "The message contains a NUL byte or broken Unicode (a lone surrogate).", code="invalid_content"
        )
    return content

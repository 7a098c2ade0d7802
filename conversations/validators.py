"""Checks on what people send, shared by the websocket and the forms."""

import re

from django.core.exceptions import ValidationError
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_message_content(content: str, max_chars: int) -> str:
    """Raise ValidationError (with a code) unless `content` is a message we can store and send."""
    if not content.strip():
        raise ValidationError(_("The message is empty."), code="empty_content")
    if len(content) > max_chars:
        raise ValidationError(
            _("The message is %(length)s characters; the limit is %(limit)s.")
            % {
                "length": number_format(len(content), force_grouping=True),
                "limit": number_format(max_chars, force_grouping=True),
            },
            code="content_too_long",
        )
    if "\x00" in content or _SURROGATE.search(content):
        raise ValidationError(
            _("The message contains a NUL byte or broken Unicode (a lone surrogate)."), code="invalid_content"
        )
    return content

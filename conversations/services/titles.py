"""Titles written by a model: the request begun (checked, recorded in usage) and finished (usage completed,
the title saved unless a person named the conversation meanwhile).

The request itself runs in streaming/titles.py; these are its two trips to the database.
"""

import re
import uuid
from dataclasses import dataclass, replace

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from .. import fulltext, metering, selectors
from ..exceptions import ChatError
from ..llm import ModelSpec, Usage
from ..models import Conversation, SiteSettings

# Sent to the model, not shown to anyone: not translated. The conversation's own language is asked for.
TITLE_INSTRUCTION = (
    "Write a short title (at most six words) for the conversation below, in the language the conversation is"
    " written in. Answer with the title only: no quotes, no Markdown, no full stop at the end."
)
# How much of each side of the first exchange is sent: enough to know the subject, cheap to send.
EXCHANGE_CHARS = 2000
TITLE_MAX = Conversation._meta.get_field("title").max_length


@dataclass(frozen=True)
class TitleRequest:
    spec: ModelSpec
    history: list[dict]
    record_id: int  # its UsageRecord


def title_history(question: str, answer: str) -> list[dict]:
    """What is sent after the instruction: the first exchange, each side cut to EXCHANGE_CHARS."""
    exchange = f"User: {question[:EXCHANGE_CHARS]}\n\nAssistant: {answer[:EXCHANGE_CHARS]}"
    return [{"role": "user", "content": exchange}]


def title_request_begin(*, conversation_id: uuid.UUID, user_id: int, question: str, answer: str) -> TitleRequest | None:
    """The request for a title of this conversation, recorded in usage as a title; None when none is to be asked:
    titles are off, a person already named it, the person is over a budget, or no model is open to them."""
    if not settings.CHAT_TITLES_BY_MODEL:
        return None  # no query at all
    site = SiteSettings.current()
    if not site.titles_by_model:
        return None
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    user = get_user_model().objects.filter(pk=user_id).first()
    if conversation is None or user is None or conversation.title_source != Conversation.TitleSource.FIRST_LINE:
        return None
    try:
        metering.limits_check(user)  # a title is a request like any other: over budget, the first line stays
        model_id, spec = _title_model(user, conversation, site.title_model_id)
    except ChatError:
        return None
    if model_id is None:
        return None  # the offline demo model: it cannot write a title worth having
    spec = replace(spec, system_prompt=TITLE_INSTRUCTION, timeout=min(spec.timeout, settings.CHAT_TITLE_TIMEOUT))
    history = title_history(question, answer)
    record_id = metering.title_usage_begin(user=user, model_config_id=model_id, spec=spec, history=history)
    return TitleRequest(spec=spec, history=history, record_id=record_id)


def _title_model(user, conversation: Conversation, chosen_id: int | None) -> tuple[int | None, ModelSpec]:
    """The model the admin chose for titles if it is enabled, else the conversation's (as a send would use)."""
    if chosen_id is not None:
        spec = selectors.providers.enabled_model_spec(chosen_id)
        if spec is not None:
            return chosen_id, spec
    return selectors.providers.conversation_model_for(user, conversation)


def title_clean(text: str) -> str:
    """A model's answer as a plain-text title: its first line, without Markdown, quotes, a "Title:" label or a
    full stop, whitespace collapsed, cut to the field's length. Empty when nothing is left."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = re.sub(r"^\s*(#+|[-*>]|\d+\.)\s+", "", line)  # a heading, list item or quote marker
    line = re.sub(r"[*_`~]+", "", line)  # emphasis and code marks
    line = re.sub(r"^\s*title\s*:\s*", "", line, flags=re.IGNORECASE)
    line = " ".join(line.split())
    quotes = "\"'“”‘’«»「」『』„"
    line = line.rstrip(".。").strip(quotes).strip().rstrip(".。").strip()
    return line[:TITLE_MAX].strip()


@transaction.atomic
def title_request_finish(
    *, conversation_id: uuid.UUID, record_id: int, text: str, usage: Usage | None, model_name: str
) -> str | None:
    """Complete the request's usage record and save the title, in one transaction. Returns the title saved, or
    None: the answer was empty (or the request failed: `text` empty), or a person renamed the conversation
    meanwhile, which the UPDATE's WHERE checks in the same statement that writes."""
    metering.usage_finish(record_id=record_id, usage=usage, content=text, model_name=model_name)
    title = title_clean(text)
    if not title:
        return None
    saved = Conversation.objects.filter(pk=conversation_id, title_source=Conversation.TitleSource.FIRST_LINE).update(
        title=title, title_source=Conversation.TitleSource.MODEL
    )
    if not saved:
        return None
    fulltext.index.title_index(conversation_id, title)  # found by search under its new title at once
    return title

"""Fitting a conversation into a model's context window.

The request must hold the system prompt, the turns sent and the reply. With a
context window set on the model, the oldest turns are left out until the rest
fits, by an estimate (no tokenizer: the site talks to any OpenAI-compatible
server), and what is sent then starts with a message from the person. The
person's newest message is always sent, even when it alone is too big: the
server then answers context_length_exceeded, which is shown as such.
"""

import math

from .llm import ModelSpec

MESSAGE_OVERHEAD_TOKENS = 4  # role and separators: what the chat format adds to every message
DEFAULT_REPLY_RESERVE = 4096  # room kept for the reply when the model sets no max: at most this, at most a quarter


def estimate_tokens(text: str) -> int:
    """A rough token count for one message: ceil(chars / 4) plus a per-message overhead.

    The one estimate the site uses (context fitting, metering when the API reports no usage).
    About right for English prose; generous for code and most other languages. Not a tokenizer.
    """
    return math.ceil(len(text or "") / 4) + MESSAGE_OVERHEAD_TOKENS


def reply_reserve(spec: ModelSpec, window: int) -> int:
    """Tokens kept free for the reply: the max the request asks for, else min(4096, a quarter of the window)."""
    for name in ("max_tokens", "max_completion_tokens"):
        value = spec.parameters.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0 and name not in spec.omit:
            return value
    return min(DEFAULT_REPLY_RESERVE, window // 4)


def fit(spec: ModelSpec, turns: list[dict]) -> tuple[list[dict], int | None]:
    """The turns to send, and the id of the first one kept when older ones were left out (else None).

    `turns` are dicts with id, role and content, oldest first. The newest turns are
    kept while they fit; the last one always is. Nothing is left out without a window.
    When turns are left out, the first one kept is a user message: Mistral and many
    llama.cpp chat templates insist on user/assistant alternation and refuse a request
    whose first turn after the system prompt is a reply, so a reply whose question was
    left out goes too.
    """
    window = spec.context_window
    if not window or not turns:
        return turns, None
    budget = window - reply_reserve(spec, window)
    if spec.system_prompt:
        budget -= estimate_tokens(spec.system_prompt)
    first = len(turns) - 1  # the last turn goes, whatever its size
    budget -= estimate_tokens(turns[first]["content"])
    while first > 0:
        cost = estimate_tokens(turns[first - 1]["content"])
        if cost > budget:
            break
        budget -= cost
        first -= 1
    if first == 0:
        # Nothing left out: sent as it is, even when it opens with a reply (a copy of a public link
        # can). Dropping that reply would keep from the model, unmarked, what the person sees and
        # likely asks about; most servers take it, and a strict one's refusal is shown on the reply.
        return turns, None
    first = _first_user_turn(turns, first)
    return turns[first:], turns[first]["id"]


def _first_user_turn(turns: list[dict], start: int) -> int:
    """The index of the first user turn from `start` on; the last turn's if none comes before it."""
    last = len(turns) - 1
    while start < last and turns[start]["role"] != "user":
        start += 1
    return start

"""Usage and limits: what each reply used and cost, and the budgets checked before a request goes upstream.

Called by services inside their transactions (reply_begin, reply_finish).
"""

from .llm import ModelSpec, Usage


def limits_check(user) -> None:
    """Raise LimitExceeded when this person or their team is over a budget or their request rate."""


def usage_begin(*, user, reply_id: int, model_config_id: int | None, spec: ModelSpec, history: list[dict]) -> None:
    """Record the reply's request as it starts (so request-rate limits count it at once)."""


def usage_finish(*, reply_id: int, usage: Usage | None, content: str, model_name: str) -> None:
    """Complete the reply's record: tokens from the API's usage, or estimated from the text, and the cost."""

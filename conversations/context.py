"""Fitting a conversation into a model's context window."""

from .llm import ModelSpec


def fit(spec: ModelSpec, turns: list[dict]) -> tuple[list[dict], int | None]:
    """The turns to send, and the id of the first one kept when older ones were left out (else None)."""
    return turns, None

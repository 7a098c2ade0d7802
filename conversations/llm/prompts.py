"""Request bodies for the two endpoints, built from plain history."""

from .types import ModelSpec

# A base model continues whatever text it is given; a transcript with turn
# labels keeps it answering as the assistant and this stop keeps it from
# writing the person's next turn too.
COMPLETION_STOP = ["\nUser:"]


def chat_messages(system_prompt: str, history: list[dict]) -> list[dict]:
    """The `messages` array: the system prompt first, then the turns in order."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.extend({"role": turn["role"], "content": turn["content"]} for turn in history)
    return messages


def completion_prompt(system_prompt: str, history: list[dict]) -> str:
    """A transcript for the legacy /completions endpoint, ending where the assistant speaks next."""
    labels = {"user": "User", "assistant": "Assistant", "system": "System"}
    parts = [system_prompt.strip()] if system_prompt.strip() else []
    parts.extend(f"{labels[turn['role']]}: {turn['content'].strip()}" for turn in history)
    parts.append("Assistant:")
    return "\n\n".join(parts)


def request_body(spec: ModelSpec, history: list[dict], user: str) -> tuple[str, dict]:
    """The path under the base URL and the JSON body for one streamed reply."""
    # The model config's parameters first, so nothing in them can override the fields below.
    body: dict = {**spec.parameters, "model": spec.model}
    if spec.endpoint == "completions":
        path = "/completions"
        body["prompt"] = completion_prompt(spec.system_prompt, history)
    else:
        path = "/chat/completions"
        body["messages"] = chat_messages(spec.system_prompt, history)
    body["stream"] = True
    if "stream_options" not in spec.omit:
        body["stream_options"] = {"include_usage": True}
    if spec.endpoint == "completions" and "stop" not in body and "stop" not in spec.omit:
        body["stop"] = COMPLETION_STOP
    if user and "user" not in spec.omit:
        body["user"] = user
    for name in spec.omit:  # also what a preset or the person's settings added
        if name not in ("model", "messages", "prompt", "stream"):
            body.pop(name, None)
    return path, body

"""Plain data passed between the upstream client and the rest of the app."""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Everything needed to ask one model for a reply. Built from a ModelConfig, or the demo."""

    base_url: str
    model: str  # for Azure, the deployment name
    api_key: str = field(default="", repr=False)  # kept out of logs and debug pages that show a spec
    endpoint: str = "chat"  # "chat" or "completions"
    parameters: dict = field(default_factory=dict)
    system_prompt: str = ""
    timeout: float = 60.0  # read timeout: the longest wait for the next piece of the reply
    label: str = ""
    kind: str = "openai_compatible"  # "openai", "azure" or "openai_compatible": decides URL and headers
    api_version: str = ""  # Azure's api-version
    headers: dict = field(default_factory=dict)  # organization, project and extra headers, already named
    connect_timeout: float = 10.0
    omit: frozenset = frozenset()  # fields never to send, including ones the app adds ("user", "stream_options")
    context_window: int | None = None
    # What a conversation may add (the caller applies it before asking): its own temperature within
    # these bounds (None: it may not), and its own system prompt after this one.
    temperature_range: tuple[float, float] | None = None
    custom_system_prompt: bool = False
    # Whether requests may go to internal addresses (this machine, a private network: see addresses.py).
    allow_internal: bool = False


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How the client retries and how its pooled client is shaped; the caller passes it in.

    The app builds it from its CHAT_UPSTREAM_* and CHAT_DEMO_DELAY settings, whose defaults these are.
    """

    retries: int = 2  # further attempts after a 429, a 5xx or a connection dropped before any text; 0: none
    retry_max_wait: float = 20.0  # seconds; a Retry-After longer than this is reported at once instead
    max_connections: int = 2000  # connections the pooled client may hold open at once
    demo_delay: float = 0.03  # seconds between words of the offline demo model's reply
    translate: Callable[[str], str] = str  # the app's gettext: words the demo model's reply in the caller's language


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def as_dict(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


# Our own finish_reason, never one an API sends: the stream ended cleanly (the HTTP response complete) with
# neither `data: [DONE]` nor a finish_reason, so the reply may be cut off. It travels where the API's reasons
# do, so whoever stores and explains those ("stop", "length", …) handles it with no extra path.
INCOMPLETE = "incomplete"


@dataclass(slots=True)
class Chunk:
    """What one streamed event added: text, and sometimes why it ended, the usage or the model name.

    `finish_reason` is the API's, or INCOMPLETE on the last chunk of a stream that ended without saying so.
    """

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None


class UpstreamError(Exception):
    """The model server refused, failed, or went away. `message` is fit to show to a person."""

    def __init__(self, code: str, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"UpstreamError({self.code!r}, {self.message!r}, status={self.status})"

"""What went wrong upstream, as the one `UpstreamError` a person reads.

A refused request (its status, headers and the start of its body), a network
failure or a malformed stream each become an UpstreamError with a stable
`code` and a message that says what happened and, where the server said why,
its own words. Every message passes through `scrub` first, so an API key the
server echoes never reaches a page or a log. Reading a body is chunks.py's
work: this module only maps what it is given.
"""

import email.utils
import functools
import json
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx

from .addresses import InternalAddressError
from .phrases import gettext_noop
from .providers import server_host
from .sse import SSEError
from .types import ModelSpec, UpstreamError

STATUS_ERRORS = {
    400: ("bad_request", gettext_noop("The model server rejected the request")),
    401: ("unauthorized", gettext_noop("The model server did not accept the API key")),
    403: ("forbidden", gettext_noop("The model server refused access")),
    404: ("not_found", gettext_noop("The model server does not know this model or address")),
    408: ("timeout", gettext_noop("The model server timed out")),
    413: ("bad_request", gettext_noop("The conversation is too long for the model server")),
    422: ("bad_request", gettext_noop("The model server rejected the request")),
    429: ("rate_limited", gettext_noop("The model server is rate limiting requests")),
    500: ("server_error", gettext_noop("The model server failed")),
    502: ("unavailable", gettext_noop("The model server is unavailable")),
    503: ("unavailable", gettext_noop("The model server is unavailable")),
    504: ("unavailable", gettext_noop("The model server is unavailable")),
}

REFUSED = ("bad_request", gettext_noop("The model server refused"))
QUOTA_EXCEEDED = gettext_noop("The model provider's account has run out of credit or quota")
# Phrases with a value in them: the app words them in the reader's language around the same values.
TRY_AGAIN_IN = gettext_noop("try again in %(seconds)s s")
HTML_NOT_SHOWN = gettext_noop("an HTML page (%(type)s), not shown")
REDIRECTED = gettext_noop("The model server redirected the request (%(status)s) to %(where)s;")
ANOTHER_ADDRESS = gettext_noop("another address")
INTERNAL_REFUSED = gettext_noop(
    "Refused to connect to the model server: %(reason)s. Internal servers (this machine, a private network) "
    "are reached only by providers a superuser marked as an internal server."
)
UNREACHABLE = gettext_noop("Could not connect to the model server at %(host)s. Is it running?")
CONNECT_TIMEOUT = gettext_noop("Connecting to the model server at %(host)s timed out.")
READ_TIMEOUT = gettext_noop("The model server sent nothing for %(seconds)s s, so the reply was given up.")
POOL_BUSY = gettext_noop("Too many replies are streaming at once; try again shortly.")

# How servers say the prompt is too long: OpenAI's error code, and the words of OpenAI, vLLM and llama.cpp.
CONTEXT_TOO_LONG_PHRASES = ("context_length_exceeded", "maximum context length", "exceeds the available context size")

SECRET_PATTERN = re.compile(r"\b(sk-|key-)[A-Za-z0-9_\-*.]{6,}")

# A 200 whose body holds no reply, by what the body turned out to be (see chunks.body_kind).
NOT_A_REPLY = {
    "empty": gettext_noop("The model server answered with an empty body instead of a stream"),
    "html": gettext_noop("The model server answered with an HTML page instead of a stream"),
    "other": gettext_noop("The model server answered with something other than a stream"),
    "json": gettext_noop("The model server answered with JSON that is not a completion"),
    "unparsable_json": gettext_noop("The model server answered with JSON that does not parse"),
}
EXCERPT_CHARS = 200


def error_from_status(status: int, headers: httpx.Headers, body: bytes, spec: ModelSpec) -> UpstreamError:
    """The error for a response that is not a 200: its status, the server's Retry-After and the start of its body.

    The body is shown as the server's own words (the API's error message, or plain text), never as a
    page: markup says only what it was, so a page the server had no business sending is not displayed.
    """
    if 300 <= status < 400:
        return redirect_error(status, headers, spec)
    code, summary = STATUS_ERRORS.get(status, ("server_error", STATUS_ERRORS[500][1]) if status >= 500 else REFUSED)
    api_code = ""
    try:
        payload = json.loads(body)
        detail = api_error_message(payload, spec)
        api_code = api_error_code(payload)
    except ValueError:
        content_type = headers.get("content-type", "")
        if is_markup(body, content_type):
            detail = HTML_NOT_SHOWN % {"type": media_type(content_type, spec)}
        else:
            detail = scrub(body.decode("utf-8", "replace").strip()[:300], spec)
    if status in (400, 413, 422) and context_too_long(api_code, detail):
        return context_length_error(status, detail, spec)
    if status == 429 and api_code == "insufficient_quota":
        code, summary = "quota_exceeded", QUOTA_EXCEEDED
    retry_after = retry_after_seconds(headers) if status == 429 or status >= 500 else None
    message = f"{summary} ({status})"
    if retry_after is not None and code != "quota_exceeded":
        message += "; " + TRY_AGAIN_IN % {"seconds": max(1, round(retry_after))}
    if detail:
        message += f": {detail}"
    return UpstreamError(code, message, status=status, retry_after=retry_after)


PAGE_NOT_SHOWN = gettext_noop("the page is not shown.")
REDIRECT_ADVICE = gettext_noop("redirects are not followed. If that is where the server is, make it the base URL.")


def redirect_error(status: int, headers: httpx.Headers, spec: ModelSpec) -> UpstreamError:
    """A redirect, which is never followed: it could lead anywhere, an internal address included.

    Where it points is shown without its query (which may hold a token), as often it is the right
    base URL (http:// to https://, a moved API root).
    """
    location = urlsplit(headers.get("location", "").strip())
    where = urlunsplit((location.scheme, location.netloc, location.path, "", ""))
    where = scrub(where[:200], spec) or ANOTHER_ADDRESS
    return UpstreamError("redirected", f"{REDIRECTED % {'status': status, 'where': where}} {REDIRECT_ADVICE}", status=status)


def not_a_reply_error(kind: str, body: bytes, content_type: str, spec: ModelSpec) -> UpstreamError:
    """A 200 whose body is no reply: what it was (a key of NOT_A_REPLY), its Content-Type and how the body
    starts, unless it is a page (see error_from_status)."""
    message = f"{NOT_A_REPLY[kind]} ({media_type(content_type, spec)})"
    if kind == "html" or is_markup(body, content_type):
        return UpstreamError("bad_response", f"{message}; {PAGE_NOT_SHOWN}")
    excerpt = body_excerpt(body, spec)
    return UpstreamError("bad_response", f"{message}: {excerpt}" if excerpt else f"{message}.")


def is_markup(body: bytes, content_type: str) -> bool:
    """Whether a body is a page (HTML, XML) rather than words: by its Content-Type or its first character."""
    declared = content_type.lower()
    return "html" in declared or "xml" in declared or body.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<")


def media_type(content_type: str, spec: ModelSpec) -> str:
    """A Content-Type as shown in a message: its media type only, or "no Content-Type"."""
    return scrub(content_type.split(";")[0].strip()[:100], spec) or "no Content-Type"


def body_excerpt(body: bytes, spec: ModelSpec, limit: int = EXCERPT_CHARS) -> str:
    """How a body starts, as one line a person can read: whitespace collapsed, keys scrubbed, about `limit` characters."""
    text = " ".join(body.decode("utf-8", "replace").removeprefix("\ufeff").split())
    # Cut before scrubbing (a body may be 64 KB), with room for keys shrinking to "[key]". A key cut in two
    # leaves either a run scrub sees or fewer than KEY_RUN of its characters, which scrub would leave anyway.
    shown = scrub(text[: 2 * limit], spec)
    return shown if len(text) <= 2 * limit and len(shown) <= limit else shown[:limit].rstrip() + "…"


def context_too_long(api_code: str, detail: str) -> bool:
    """Whether a refusal says the prompt does not fit the model's context window."""
    text = f"{api_code} {detail}".lower()
    return any(phrase in text for phrase in CONTEXT_TOO_LONG_PHRASES)


TOO_LONG = gettext_noop("The conversation is too long for this model's context window")
WINDOW_ADVICE = gettext_noop(
    "Older messages were already left out to fit the %(window)s-token window set in the admin, "
    "so your last message may be too long on its own, or that window is larger than the model's. "
    "Shorten the message, lower the model's context window in the admin, or start a new chat."
)
NO_WINDOW_ADVICE = gettext_noop(
    "Ask an admin to set the model's context window in the admin so older messages are left out, or start a new chat."
)


def context_length_error(status: int, detail: str, spec: ModelSpec) -> UpstreamError:
    """A too-long prompt, with advice that depends on whether the admin set a context window."""
    message = f"{TOO_LONG} ({status})"
    if detail:
        message += f": {detail.rstrip('.')}"
    if spec.context_window:
        advice = WINDOW_ADVICE % {"window": spec.context_window}
    else:
        advice = NO_WINDOW_ADVICE
    return UpstreamError("context_length_exceeded", f"{message}. {advice}", status=status)


def api_error_code(payload) -> str:
    """The API's machine-readable error code (OpenAI: error.code), if any."""
    error = payload.get("error", payload) if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else ""


def api_error_message(payload, spec: ModelSpec) -> str:
    """The human part of the API's error JSON, whichever of the common shapes it takes, key-free."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        text = error.get("message") or error.get("detail") or error.get("code") or ""
    else:
        text = error
    if isinstance(text, list | dict):
        text = json.dumps(text)
    return scrub(str(text or "").strip()[:500], spec)


def scrub(text: str, spec: ModelSpec) -> str:
    """Take API keys out of a message before it can reach a page or a log.

    Not only the whole key: any run of KEY_RUN or more of its consecutive characters (a server that
    echoes 24 of 32 leaves 8 to guess), and anything shaped like a key (`sk-…`), whoever's it is.
    """
    key = spec.api_key
    if len(key) >= KEY_RUN:
        text = _without_key_runs(text, key)
    elif len(key) >= 6:
        text = text.replace(key, "[key]")
    return SECRET_PATTERN.sub(lambda match: match.group(1) + "…", text)


KEY_RUN = 8  # characters: fewer say too little about a random key to matter, and match ordinary words more often


def _without_key_runs(text: str, key: str) -> str:
    """`text` with every stretch made of key-windows (KEY_RUN consecutive characters of `key`) as "[key]".

    Linear in the text: a regular expression finds the stretches made only of the key's characters
    (in prose, the longer words), and only those are looked at, window by window, against a set.
    """
    windows, candidates = _key_windows(key)
    pieces, done = [], 0
    for match in candidates.finditer(text):
        start = end = -1
        for index in range(match.start(), match.end() - KEY_RUN + 1):
            if text[index : index + KEY_RUN] not in windows:
                continue
            if index > end:  # not touching the stretch before: that one is complete
                if end > 0:
                    pieces += [text[done:start], "[key]"]
                    done = end
                start = index
            end = index + KEY_RUN
        if end > 0:
            pieces += [text[done:start], "[key]"]
            done = end
    return "".join([*pieces, text[done:]]) if pieces else text


@functools.lru_cache(maxsize=64)
def _key_windows(key: str) -> tuple[frozenset[str], re.Pattern]:
    """The key's windows of KEY_RUN characters, and a pattern for runs of at least KEY_RUN of its characters."""
    windows = frozenset(key[index : index + KEY_RUN] for index in range(len(key) - KEY_RUN + 1))
    characters = "".join(re.escape(character) for character in sorted(set(key)))
    return windows, re.compile(f"[{characters}]{{{KEY_RUN},}}")


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds the server asks to wait: retry-after-ms (OpenAI's), else Retry-After in seconds or as an HTTP date."""
    try:
        return _seconds(float(headers["retry-after-ms"]) / 1000)
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _seconds(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(value)
    return max(0.0, value)


REQUEST_FAILED = gettext_noop("The request to the model server failed")
MALFORMED_STREAM = gettext_noop("The model server sent a malformed stream")
CONNECTION_LOST = gettext_noop("The connection to the model server dropped mid-reply.")


@contextmanager
def network_errors(spec: ModelSpec, *, lost: str = CONNECTION_LOST) -> Iterator[None]:
    """Network and stream failures as the one UpstreamError a person reads; `lost` for a dropped connection."""
    try:
        yield
    except InternalAddressError as exc:
        raise UpstreamError(
            "internal_address",
            INTERNAL_REFUSED % {"reason": exc},
        ) from None
    except httpx.TimeoutException as exc:
        raise timeout_error(exc, spec) from None
    except httpx.ConnectError:
        raise UpstreamError(
            "unreachable", UNREACHABLE % {"host": server_host(spec)}
        ) from None
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        raise UpstreamError("connection_lost", lost) from None
    except httpx.HTTPError as exc:
        raise UpstreamError("upstream_error", f"{REQUEST_FAILED}: {type(exc).__name__}.") from None
    except SSEError as exc:
        raise UpstreamError("bad_response", f"{MALFORMED_STREAM}: {exc}") from None


def timeout_error(exc: httpx.TimeoutException, spec: ModelSpec) -> UpstreamError:
    """Which wait ran out, said plainly: connecting, a free connection in the pool, or the next piece of the reply."""
    if isinstance(exc, httpx.ConnectTimeout):
        return UpstreamError("unreachable", CONNECT_TIMEOUT % {"host": server_host(spec)})
    if isinstance(exc, httpx.PoolTimeout):
        return UpstreamError("busy", POOL_BUSY)
    return UpstreamError(
        "timeout",
        READ_TIMEOUT % {"seconds": f"{spec.timeout:g}"},
    )

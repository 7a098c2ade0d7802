"""Checks an admin runs against a provider: list its models, ask one model for a single token.

Plain data in (a ModelSpec), plain data out; every failure comes back as the
same person-readable, key-free message the chat shows (see errors.py). Each
check opens a short-lived client of its own: checks are rare, and a fresh
connection makes the latency measured the one a first request sees. It runs
on the transport replies use, so the same addresses are refused (see
addresses.py) and no redirect is followed.
"""

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, replace

import httpx

from .chunks import error_from_response, read_limited, read_reply
from .client import request_extensions
from .errors import REQUEST_FAILED, network_errors, scrub
from .phrases import gettext_noop
from .prompts import request_body
from .providers import request_headers, request_url
from .transport import StreamingTransport
from .types import ModelSpec, UpstreamError

MAX_MODELS_BODY_BYTES = 8 * 1024 * 1024  # OpenRouter lists a few hundred models with long descriptions
PROBE_HISTORY = [{"role": "user", "content": "Say OK."}]

NOT_JSON_LIST = gettext_noop("The model server answered the model list with something other than JSON.")
NOT_THE_API_FORMAT = gettext_noop('The model list is not in the API\'s format ({"data": [{"id": …}]}).')


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """What Test connection found. An empty error means that step worked; times are in milliseconds."""

    models: tuple[str, ...] = ()
    models_ms: int = 0
    models_error: str = ""
    reply_model: str = ""  # the model (Azure: the deployment) asked for one token; empty if there was none
    reply_ms: int = 0
    reply_error: str = ""

    @property
    def ok(self) -> bool:
        return not self.models_error and not self.reply_error


async def list_models(spec: ModelSpec) -> list[str]:
    """The model ids the provider lists at GET …/models (Azure: the resource's base models), in its order."""
    with _mapped_errors(spec):
        async with (
            _client(spec) as client,
            client.stream(
                "GET", request_url(spec, "/models"), headers=_headers(spec), extensions=request_extensions(spec)
            ) as response,
        ):
            if response.status_code != 200:
                raise await error_from_response(response, spec)
            raw = await read_limited(response, MAX_MODELS_BODY_BYTES)
    try:
        payload = json.loads(raw)
    except ValueError:
        raise UpstreamError("bad_response", NOT_JSON_LIST) from None
    return _model_ids(payload)


async def one_token(spec: ModelSpec) -> str:
    """Ask `spec.model` for a single token, streamed as the chat streams; return the text it sent.

    The token limit travels in spec.parameters (max_tokens or max_completion_tokens), as the caller chose.
    """
    path, body = request_body(spec, PROBE_HISTORY, "")
    text = ""
    with _mapped_errors(spec):
        async with _client(spec) as client:
            request = client.build_request(
                "POST", request_url(spec, path), json=body, headers=request_headers(spec), extensions=request_extensions(spec)
            )
            response = await client.send(request, stream=True)
            try:
                if response.status_code != 200:
                    raise await error_from_response(response, spec)
                async with aclosing(read_reply(response, spec)) as chunks:
                    async for chunk in chunks:
                        text += chunk.text
            finally:
                await response.aclose()
    return text


async def check_connection(spec: ModelSpec) -> ConnectionCheck:
    """List the models, then ask for one token: `spec.model` if set (a configured model), else the first listed."""
    started = time.perf_counter()
    models, models_error = (), ""
    try:
        models = tuple(await list_models(spec))
    except UpstreamError as exc:
        models_error = exc.message
    models_ms = _ms_since(started)
    model = spec.model or (models[0] if models else "")
    if not model:
        reply_error = "No model to ask: the provider listed none, and none of its models is enabled here."
        return ConnectionCheck(models, models_ms, models_error, "", 0, reply_error)
    started = time.perf_counter()
    reply_error = ""
    try:
        await one_token(replace(spec, model=model))
    except UpstreamError as exc:
        reply_error = exc.message
    return ConnectionCheck(models, models_ms, models_error, model, _ms_since(started), reply_error)


async def check_connections(specs: list[ModelSpec]) -> list[ConnectionCheck]:
    """`check_connection` for several providers at once, in the order given."""
    return list(await asyncio.gather(*(check_connection(spec) for spec in specs)))


async def list_models_of(specs: list[ModelSpec]) -> list[list[str] | UpstreamError]:
    """`list_models` for several providers at once: each provider's ids, or the error it gave."""
    return list(await asyncio.gather(*(list_models(spec) for spec in specs), return_exceptions=True))


def _client(spec: ModelSpec) -> httpx.AsyncClient:
    """A client of the check's own, on the transport replies use: the same address rules, no redirects."""
    timeout = httpx.Timeout(connect=spec.connect_timeout, read=spec.timeout, write=30.0, pool=30.0)
    transport = StreamingTransport(limits=httpx.Limits(max_connections=1))
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


def _headers(spec: ModelSpec) -> dict[str, str]:
    headers = request_headers(spec)
    del headers["Content-Type"]  # a GET has no body
    headers["Accept"] = "application/json"
    return headers


def _model_ids(payload) -> list[str]:
    """Ids from {"data": [{"id": …}, …]} (OpenAI, Azure, OpenRouter, vLLM, Ollama) or a bare list, deduplicated."""
    entries = payload.get("data", payload.get("models")) if isinstance(payload, dict) else payload
    if not isinstance(entries, list):
        raise UpstreamError("bad_response", NOT_THE_API_FORMAT)
    ids = []
    for entry in entries:
        model_id = (entry.get("id") or entry.get("name")) if isinstance(entry, dict) else entry
        if isinstance(model_id, str) and model_id.strip() and model_id.strip() not in ids:
            ids.append(model_id.strip())
    return ids


@contextmanager
def _mapped_errors(spec: ModelSpec) -> Iterator[None]:
    """Failures as the UpstreamError the chat would show (errors.network_errors), with any key taken out."""
    try:
        with network_errors(spec, lost="The connection to the model server dropped."):
            yield
    except UpstreamError as exc:
        raise UpstreamError(exc.code, scrub(exc.message, spec), status=exc.status, retry_after=exc.retry_after) from None
    except httpx.InvalidURL as exc:
        raise UpstreamError("upstream_error", f"{REQUEST_FAILED}: {type(exc).__name__}.") from None


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)

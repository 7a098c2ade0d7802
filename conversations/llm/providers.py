"""Where a request goes and which headers it carries, by provider type. Plain data in, plain data out."""

from urllib.parse import quote, urlencode

import httpx

from .types import ModelSpec

AZURE = "azure"


def request_url(spec: ModelSpec, path: str) -> str:
    """The URL for `path` ("/chat/completions", "/completions", "/models") on this provider.

    OpenAI and compatible servers: <base URL><path>. Azure: the deployment's URL under the
    resource endpoint, with the api-version query parameter.
    """
    base = spec.base_url.rstrip("/")
    if spec.kind != AZURE:
        return base + path
    query = "?" + urlencode({"api-version": spec.api_version}) if spec.api_version else ""
    if path == "/models":
        return f"{base}/openai/models{query}"
    return f"{base}/openai/deployments/{quote(spec.model, safe='')}{path}{query}"


def request_headers(spec: ModelSpec) -> dict[str, str]:
    """The headers of every request: the provider's own first, then the key and content headers, which win."""
    headers = dict(spec.headers)
    headers["Content-Type"] = "application/json"
    headers["Accept"] = "text/event-stream, application/json"
    if spec.api_key:
        if spec.kind == AZURE:
            headers["api-key"] = spec.api_key
        else:
            headers["Authorization"] = f"Bearer {spec.api_key}"
    return headers


def server_host(spec: ModelSpec) -> str:
    """The model server's host name, for messages and logs (the base URL itself if it has none)."""
    return httpx.URL(spec.base_url).host or spec.base_url

"""Websockets only from this site's own pages: the Origin must be this site's scheme, host and port.

Channels' AllowedHostsOriginValidator compares only the Origin's host with ALLOWED_HOSTS, so a page
on http://chat.example.com:8080, or served over plain HTTP next to the HTTPS site, could open a
socket with the person's cookies. Here the Host must be one of ALLOWED_HOSTS (as Django requires of
every HTTP request; this also stops DNS rebinding), and the Origin must equal the address the socket
was opened on (wss:// for https://, ws:// for http://, behind a proxy as SECURE_PROXY_SSL_HEADER
says), or be one of CSRF_TRUSTED_ORIGINS, the same list Django trusts for forms.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _normalised(origin: str) -> tuple[str, str, int] | None:
    parts = urlsplit(origin)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None
    return parts.scheme, parts.hostname.lower(), port


def _secure(scope, headers: dict[bytes, bytes]) -> bool:
    if scope.get("scheme") == "wss":
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, value = proxy_header
        header = name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        return headers.get(header, b"").decode("latin-1") == value
    return False


def same_origin(scope) -> bool:
    """Whether the socket was opened by a page of this site (or of a trusted origin)."""
    headers = dict(scope.get("headers") or ())
    origin = _normalised(headers.get(b"origin", b"").decode("latin-1"))
    host = headers.get(b"host", b"").decode("latin-1")
    allowed_hosts = [*settings.ALLOWED_HOSTS, *([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])]
    if origin is None or not validate_host(split_domain_port(host)[0], allowed_hosts):
        return False
    own = _normalised(("https://" if _secure(scope, headers) else "http://") + host)
    trusted = {_normalised(trusted) for trusted in settings.CSRF_TRUSTED_ORIGINS}
    return origin == own or origin in trusted


class SameOriginValidator:
    """ASGI middleware: a websocket from another origin is refused at the handshake (HTTP 403)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not same_origin(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)

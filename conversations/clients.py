"""Who is on the other end of a request or a socket: the client's address, seen through trusted proxies.

Behind a proxy every connection comes from the proxy's address, so limits keyed on REMOTE_ADDR
would lump every visitor together (one attacker locking everyone out). The proxy says who the
client is in X-Forwarded-For; that header is believed only as far as CHAT_TRUSTED_PROXIES reach:
walking it from the right, the first address that is not a trusted proxy is the client's. With
no trusted proxies (the default), the connection's own address is the client's.
"""

import ipaddress
from functools import cache

from django.conf import settings


@cache
def _trusted(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies if proxy.strip())


def _is_trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _trusted(tuple(settings.CHAT_TRUSTED_PROXIES)))


def client_address(peer: str, forwarded_for: str = "") -> str:
    """The client's address, given the connection's `peer` address and its X-Forwarded-For header."""
    if not _is_trusted(peer):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop):
            return hop
    return hops[0] if hops else peer


def request_address(request) -> str:
    """client_address of an HTTP request."""
    return client_address(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", ""))


def scope_address(scope) -> str:
    """client_address of an ASGI connection (a websocket)."""
    peer = (scope.get("client") or ("", 0))[0] or ""
    headers = dict(scope.get("headers") or ())
    return client_address(peer, headers.get(b"x-forwarded-for", b"").decode("latin-1"))

"""Which addresses a request may go to: public ones, unless the caller allows internal servers.

A provider's base URL is typed in by whoever may edit providers, and what the server answers is shown
to them (Test connection, a reply's error). Without a rule, that makes the app a window onto its own
network: the cloud's instance metadata at 169.254.169.254, an admin page on localhost, a database
console on 10.0.0.5. So a request goes only to public addresses unless its ModelSpec says internal
servers are allowed (the app lets only superusers say so).

Every address a connection would use is checked: the host itself when it is an IP address, else every
address its name resolves to (one internal address refuses the name: a connection may try any of
them). transport.py checks where the connection is made, so a name that resolves differently a moment
later (DNS rebinding) gains nothing. Plain data only: no Django, no HTTP client.
"""

import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")
)
SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: a provider's internal network
NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address, reached through a NAT64 gateway


class InternalAddressError(Exception):
    """A request would have gone to an internal address, and internal servers are not allowed for it.

    Not an OSError: the HTTP client must not take it for a network failure and try the next address.
    """

    def __init__(self, host: str, address: str, kind: str):
        self.host, self.address, self.kind = host, address, kind
        where = f"{host} is {kind}" if host.strip("[]") == address else f"{host} resolves to {address}, {kind}"
        super().__init__(where)


def internal_kind(address: IPAddress) -> str:
    """What kind of internal address this is, in words ("a loopback address"), or "" for a public one."""
    if address.version == 6:
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64_NETWORK:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and internal_kind(embedded):
            return internal_kind(embedded)
    if address.is_unspecified:
        return "the unspecified address (this machine)"
    if address.is_loopback:
        return "a loopback address (this machine)"
    if address.is_link_local:
        return "a link-local address (where clouds serve instance metadata)"
    if any(address in network for network in PRIVATE_NETWORKS):
        return "a private network address"
    if address in SHARED_NETWORK:
        return "a shared (carrier-grade NAT) address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return ""


def check_address(host: str, address: str) -> None:
    """Raise InternalAddressError if `address` (one `host` resolved to, or `host` itself) is internal."""
    kind = internal_kind(ipaddress.ip_address(address.split("%", 1)[0]))  # without an IPv6 zone (fe80::1%eth0)
    if kind:
        raise InternalAddressError(host, address, kind)


def check_literal_host(host: str) -> None:
    """Raise InternalAddressError if `host` is an internal IP address; a name is left to the resolver.

    IPv4's legacy forms count as addresses too (2130706433, 0x7f.1, 127.1 are all 127.0.0.1), as the
    system's resolver would read them so.
    """
    bare = address = host.strip("[]").split("%", 1)[0]
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        try:
            address = socket.inet_ntoa(socket.inet_aton(bare))
        except OSError:
            return
    check_address(host, address)

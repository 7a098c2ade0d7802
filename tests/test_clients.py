"""clients.py: the client's address behind trusted proxies, for limits and lockouts."""

import pytest

from conversations.clients import client_address, scope_address


@pytest.fixture
def behind_proxies(settings):
    settings.CHAT_TRUSTED_PROXIES = ["10.0.0.1", "192.168.0.0/16"]


def test_without_trusted_proxies_the_connection_is_the_client():
    assert client_address("203.0.113.9", "198.51.100.7") == "203.0.113.9"  # a forged header is ignored


def test_a_trusted_proxys_forwarded_address_is_the_client(behind_proxies):
    assert client_address("10.0.0.1", "198.51.100.7") == "198.51.100.7"


def test_only_trusted_hops_are_skipped_from_the_right(behind_proxies):
    # The client claims 1.2.3.4, but the first untrusted hop the proxies saw is 198.51.100.7.
    assert client_address("10.0.0.1", "1.2.3.4, 198.51.100.7, 192.168.4.4") == "198.51.100.7"


def test_an_untrusted_peer_is_the_client_whatever_it_forwards(behind_proxies):
    assert client_address("203.0.113.9", "198.51.100.7") == "203.0.113.9"


def test_a_socket_scope(behind_proxies):
    scope = {"client": ("10.0.0.1", 5555), "headers": [(b"x-forwarded-for", b"198.51.100.7")]}
    assert scope_address(scope) == "198.51.100.7"

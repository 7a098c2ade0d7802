"""Guessing passwords: django-axes locks a username or a client address out after CHAT_LOGIN_FAILURES failures."""

import pytest
from axes.models import AccessAttempt
from django.test import Client

pytestmark = pytest.mark.django_db

LIMIT = 10  # AXES_FAILURE_LIMIT, from CHAT_LOGIN_FAILURES


def log_in(client: Client, username: str, password: str, **headers):
    return client.post("/accounts/login/", {"username": username, "password": password}, **headers)


def test_wrong_passwords_lock_the_account_even_against_the_right_one(user):
    guesser = Client()
    for _ in range(LIMIT - 1):
        assert log_in(guesser, "alice", "wrong").status_code == 200  # the form again, with its error
    response = log_in(guesser, "alice", "wrong")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "Try again in 15 minutes" in response.content.decode()
    # Locked: even the right password, and from another address (the account is locked, not only the address).
    assert log_in(Client(REMOTE_ADDR="203.0.113.7"), "alice", "pw-alice").status_code == 429

    AccessAttempt.objects.all().delete()  # what an admin's unlock does (Axes > Access attempts)
    assert log_in(Client(), "alice", "pw-alice").status_code == 302


def test_many_usernames_from_one_address_lock_the_address(user, make_user):
    make_user("bob")
    guesser = Client(REMOTE_ADDR="198.51.100.9")
    for n in range(LIMIT):
        log_in(guesser, f"nobody{n}", "wrong")
    assert log_in(guesser, "bob", "pw-bob").status_code == 429
    assert log_in(Client(REMOTE_ADDR="203.0.113.7"), "bob", "pw-bob").status_code == 302  # others come in


def test_a_right_password_before_the_limit_starts_the_count_again(user):
    client = Client()
    for _ in range(LIMIT - 1):
        log_in(client, "alice", "wrong")
    assert log_in(client, "alice", "pw-alice").status_code == 302
    for _ in range(LIMIT - 1):
        assert log_in(Client(), "alice", "wrong").status_code == 200


def test_behind_a_trusted_proxy_the_client_address_is_the_forwarded_one(user, make_user, settings):
    settings.CHAT_TRUSTED_PROXIES = ["10.0.0.1"]
    make_user("bob")
    attacker = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9")
    for n in range(LIMIT):
        log_in(attacker, f"nobody{n}", "wrong")
    assert log_in(attacker, "bob", "pw-bob").status_code == 429
    # Someone else behind the same proxy is not locked out with the attacker.
    colleague = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert log_in(colleague, "bob", "pw-bob").status_code == 302

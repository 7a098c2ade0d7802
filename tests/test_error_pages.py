"""The error pages (templates/400.html, 403.html, 403_csrf.html, 404.html, 500.html) as Django's own handlers
render them with DEBUG off: the site's look, what happened in plain words, and a way back."""

import re

import pytest

from conversations import metering
from conversations.models import Conversation
from tests.factories import make_share
from tests.helpers import login, page

pytestmark = pytest.mark.django_db

HOME_LINK = '<a class="button button--primary" href="/">Back to your conversations</a>'
LOGIN_LINK = '<a class="button" href="/accounts/login/">Log in</a>'


def error_page(response, status: int, template: str) -> str:
    """The page of an error response with `status`, checked to come from `template` in the site's look."""
    assert response.status_code == status
    assert template in [used.name for used in response.templates]
    html = page(response)
    assert f'<main class="error-page" data-status="{status}">' in html
    assert "/static/conversations/css/app.css" in html
    assert HOME_LINK in html
    return html


def heading(html: str) -> str:
    return re.search(r"<h1>(.*?)</h1>", html).group(1)


def test_a_missing_page_is_the_sites_404(logged_in):
    html = error_page(logged_in.get("/no-such-page/"), 404, "404.html")
    assert heading(html) == "Page not found"
    assert "There is nothing at this address." in html
    assert LOGIN_LINK not in html  # already logged in


def test_a_missing_page_offers_to_log_in_when_logged_out(client):
    html = error_page(client.get("/no-such-page/"), 404, "404.html")
    assert LOGIN_LINK in html


def test_a_request_for_an_unknown_host_is_the_sites_400(client):
    html = error_page(client.get("/", HTTP_HOST="evil.example"), 400, "400.html")
    assert heading(html) == "Bad request"


def test_a_refusal_is_the_sites_403_with_its_reason(conversation, bob):
    make_share(conversation=conversation, user=bob)  # a viewer, who may not rename
    response = login(bob).post(f"/c/{conversation.id}/rename/", {"title": "Mine now"})
    html = error_page(response, 403, "403.html")
    assert heading(html) == "Not allowed"
    assert "Only the owner can rename this conversation." in html


def test_a_refusal_without_a_reason_says_what_happened(make_user):
    # The admin refuses staff without the permission, and says nothing why.
    staff = make_user("sam", is_staff=True)
    html = error_page(login(staff).get("/admin/conversations/usagerecord/"), 403, "403.html")
    assert "You do not have access to this page." in html


def test_a_form_from_a_stale_page_says_the_page_expired(user):
    response = login(user, enforce_csrf_checks=True).post("/c/new/", {"content": "Hi"})
    html = error_page(response, 403, "403_csrf.html")
    assert heading(html) == "This page has expired"
    assert "Reload the page and try again." in html
    assert not Conversation.objects.exists()


def test_a_crash_is_the_sites_500(user, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(metering, "usage_summary", crash)
    # As a server answers: the exception is logged and handler500 renders 500.html with no request context.
    response = login(user, raise_request_exception=False).get("/usage/")
    html = error_page(response, 500, "500.html")
    assert heading(html) == "Something went wrong"
    assert "the database went away" not in html
    assert LOGIN_LINK not in html  # no `user` to know better from

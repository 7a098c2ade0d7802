"""The language of a websocket's person, chosen as LocaleMiddleware chooses it for their pages."""

from types import SimpleNamespace

from django.conf import settings
from django.utils.translation import get_language_from_request


def saved_language(user) -> str:
    """The language a logged-in person saved on their profile ("" to follow the browser): it wins, as on pages
    (middleware.ProfileMiddleware)."""
    from .selectors.accounts import profile_of

    return profile_of(user).language if user.is_authenticated else ""


def scope_language(scope: dict) -> str:
    """The `chat_language` cookie, else Accept-Language, else LANGUAGE_CODE: Django's own choice, from the
    handshake's cookies (parsed by AuthMiddlewareStack) and headers instead of a request's."""
    headers = dict(scope.get("headers") or [])
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    request = SimpleNamespace(COOKIES=scope.get("cookies") or {}, META={"HTTP_ACCEPT_LANGUAGE": accept})
    try:
        return get_language_from_request(request)
    except Exception:  # a malformed header: the site's language, as a page would get
        return settings.LANGUAGE_CODE

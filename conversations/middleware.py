"""Response headers every page gets: a Content-Security-Policy (the last line of defence if model output ever
slipped through), and no caching of a logged-in person's pages.

Scripts and styles come only from this site, nothing may frame the pages,
and images from elsewhere load only when a reader clicks for one.
"""

from django.conf import settings
from django.utils import translation
from django.utils.cache import patch_cache_control

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' https: http:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # The admin ships inline scripts and styles of its own; it shows no model output as HTML.
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", POLICY)
        return response


class PrivatePagesMiddleware:
    """A logged-in person's pages are theirs: no browser cache or proxy keeps them (a shared computer's back
    button, a caching proxy). Responses that say how they may be cached keep their own word."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control") and request.user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response


class ProfileMiddleware:
    """After AuthenticationMiddleware: a logged-in person's profile (request.profile; the defaults if they never
    saved one), and their saved language, which wins over the cookie and Accept-Language that LocaleMiddleware
    went by. One query, shared with the templates (context_processors.profile)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from .selectors.accounts import profile_of

        user = getattr(request, "user", None)
        request.profile = profile_of(user) if user is not None and user.is_authenticated else None
        language = request.profile.language if request.profile is not None else ""
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        response = self.get_response(request)
        name = settings.LANGUAGE_COOKIE_NAME
        if language and request.COOKIES.get(name) != language and name not in response.cookies:
            # The browser keeps it too, so the login page speaks it after they log out (unless this very
            # request changed the language: the view set the cookie then).
            remember_language(response, language)
        return response


def remember_language(response, language: str):
    """The language cookie LocaleMiddleware reads: set to `language`, or removed ("" follows the browser)."""
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME, path=settings.LANGUAGE_COOKIE_PATH)
    return response

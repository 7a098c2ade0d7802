"""What every template may show about the person looking: their profile (set by middleware.ProfileMiddleware)."""

from django.http import HttpRequest


def profile(request: HttpRequest) -> dict:
    """`profile` (None for visitors) and `theme`: system, light or dark, for <html data-theme>."""
    found = getattr(request, "profile", None)
    return {"profile": found, "theme": found.theme if found is not None else "system"}

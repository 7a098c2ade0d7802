"""Logging in: the password form and the single sign-on button, and turning password logins off.

With CHAT_PASSWORD_LOGIN=false the form is gone and a password POST is refused, here and at the
admin's login, which then sends people to this page (and so through the provider).
"""

from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if not settings.CHAT_PASSWORD_LOGIN:
            raise PermissionDenied(_("Signing in with a password is turned off here: use the sign-in button."))
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            **kwargs,
            password_login=settings.CHAT_PASSWORD_LOGIN,
            sso_enabled=settings.CHAT_OIDC_ENABLED,
            sso_label=settings.CHAT_OIDC_LABEL,
        )


def password_logins_only(view):
    """The password reset pages exist only while passwords sign people in."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.CHAT_PASSWORD_LOGIN:
            raise Http404(_("Passwords are not used here: sign in with the sign-in button."))
        return view(request, *args, **kwargs)

    return wrapper


def admin_login(request, extra_context=None):
    """The admin's login page, or this site's login page when password logins are off."""
    if settings.CHAT_PASSWORD_LOGIN:
        return admin.site.login(request, extra_context)
    next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index")
    return redirect(f"{reverse('login')}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")

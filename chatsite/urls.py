from django import get_version
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.decorators.cache import cache_page
from django.views.i18n import JavaScriptCatalog
from mozilla_django_oidc.views import OIDCLogoutView

from conversations.views import login
from conversations.views.accounts import PasswordResetView

# The translations chat.js shows (gettext in the browser); they change only with a deploy.
javascript_catalog = cache_page(86400, key_prefix=f"jsi18n-{get_version()}")(JavaScriptCatalog.as_view())

urlpatterns = [
    path("jsi18n/", javascript_catalog, name="javascript-catalog"),
    path("accounts/login/", login.LoginView.as_view(), name="login"),
    # POST only; with CHAT_OIDC_PROVIDER_LOGOUT it goes on to end the session at the provider (conversations/oidc.py).
    path("accounts/logout/", OIDCLogoutView.as_view(), name="logout"),
    # Single sign-on: /oidc/authenticate/, /oidc/callback/ (the redirect URI to register), /oidc/logout/.
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("admin/login/", login.admin_login),
    # Password reset by email (Django's views; ours adds a limit per address): the same answer for every address.
    # Off, like the password form, when CHAT_PASSWORD_LOGIN=false.
    path("accounts/password-reset/", login.password_logins_only(PasswordResetView.as_view()), name="password_reset"),
    path(
        "accounts/password-reset/sent/",
        login.password_logins_only(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        login.password_logins_only(auth_views.PasswordResetConfirmView.as_view(post_reset_login=False)),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        login.password_logins_only(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
    path("admin/", admin.site.urls),
    path("", include("conversations.urls")),
]

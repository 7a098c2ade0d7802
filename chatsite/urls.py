from django import get_version
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.decorators.cache import cache_page
from django.views.i18n import JavaScriptCatalog

from conversations.views.accounts import PasswordResetView

# The translations chat.js shows (gettext in the browser); they change only with a deploy.
javascript_catalog = cache_page(86400, key_prefix=f"jsi18n-{get_version()}")(JavaScriptCatalog.as_view())

urlpatterns = [
    path("jsi18n/", javascript_catalog, name="javascript-catalog"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Password reset by email (Django's views; ours adds a limit per address): the same answer for every address.
    path("accounts/password-reset/", PasswordResetView.as_view(), name="password_reset"),
    path("accounts/password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(post_reset_login=False),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("admin/", admin.site.urls),
    path("", include("conversations.urls")),
]

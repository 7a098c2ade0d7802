from django import get_version
from django.contrib import admin
from django.urls import include, path
from django.views.decorators.cache import cache_page
from django.views.i18n import JavaScriptCatalog
from mozilla_django_oidc.views import OIDCLogoutView

from conversations.views import accounts

# The translations chat.js shows (gettext in the browser); they change only with a deploy.
javascript_catalog = cache_page(86400, key_prefix=f"jsi18n-{get_version()}")(JavaScriptCatalog.as_view())

urlpatterns = [
    path("jsi18n/", javascript_catalog, name="javascript-catalog"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    # POST only; with CHAT_OIDC_PROVIDER_LOGOUT it goes on to end the session at the provider (conversations/oidc.py).
    path("accounts/logout/", OIDCLogoutView.as_view(), name="logout"),
    # Single sign-on: /oidc/authenticate/, /oidc/callback/ (the redirect URI to register), /oidc/logout/.
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("admin/login/", accounts.admin_login),
    path("admin/", admin.site.urls),
    path("", include("conversations.urls")),
]

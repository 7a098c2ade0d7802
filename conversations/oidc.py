"""OpenID Connect with mozilla-django-oidc: its code flow, with endpoints found lazily and readable failures.

The library reads every endpoint from settings; here each comes from its CHAT_OIDC_*_ENDPOINT variable
or else from the issuer's discovery document, fetched at the first sign-in and kept for an hour (never
at start-up: settings load on machines without network, and a provider that is down must not stop the
site from starting or password logins from working). Who the verified person is here is decided by
services/sso.py.
"""

import logging
import threading
import time

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from django.shortcuts import render, resolve_url
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from .services.sso import SignInRefused, sso_sign_in

logger = logging.getLogger(__name__)

DISCOVERY_TTL = 3600
# Each library setting and the discovery document's name for it.
DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_OP_END_SESSION_ENDPOINT": "end_session_endpoint",
}

_discovery: dict[str, tuple[float, dict]] = {}
_discovery_lock = threading.Lock()


class ProviderUnavailable(Exception):
    """The identity provider could not be reached, or answered nonsense."""


def discovery_document(issuer: str) -> dict:
    """The issuer's /.well-known/openid-configuration, fetched at most once an hour per process."""
    with _discovery_lock:
        cached = _discovery.get(issuer)
        if cached and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
    try:
        response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(f"discovery at {issuer} failed: {exc}") from exc
    # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was fetched for.
    if str(document.get("issuer", "")).rstrip("/") != issuer:
        raise ProviderUnavailable(f"discovery at {issuer} names another issuer: {document.get('issuer')!r}")
    with _discovery_lock:
        _discovery[issuer] = (time.monotonic(), document)
    return document


def provider_setting(name: str) -> str:
    """An endpoint: from its own variable if set, else from discovery ("" if the provider has none)."""
    explicit = getattr(settings, name, "")
    if explicit or not settings.CHAT_OIDC_ISSUER:
        return explicit
    return discovery_document(settings.CHAT_OIDC_ISSUER).get(DISCOVERED[name], "")


def expected_issuer() -> str:
    return settings.CHAT_OIDC_ISSUER or ""


def _failure_page(request, message: str, status: int):
    return render(request, "registration/sso_failed.html", {"message": message}, status=status)


class OIDCBackend(OIDCAuthenticationBackend):
    """The library's backend, answering only its callback, with endpoints resolved at sign-in.

    Django builds every backend for every authenticate() and get_user(), so __init__ does nothing costly.
    """

    def __init__(self, *args, **kwargs):
        self.UserModel = get_user_model()

    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: provider_setting("OIDC_OP_TOKEN_ENDPOINT"))
    OIDC_OP_USER_ENDPOINT = property(lambda self: provider_setting("OIDC_OP_USER_ENDPOINT"))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: provider_setting("OIDC_OP_JWKS_ENDPOINT"))
    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_RP_CLIENT_ID)
    OIDC_RP_CLIENT_SECRET = property(lambda self: settings.OIDC_RP_CLIENT_SECRET)
    OIDC_RP_SIGN_ALGO = property(lambda self: settings.OIDC_RP_SIGN_ALGO)
    OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request, **kwargs):
        # Only the callback carries a code; a password login passes by.
        if not settings.CHAT_OIDC_ENABLED or request is None or "code" not in request.GET:
            return None
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        """The library checks the signature, expiry and nonce; the audience and issuer are checked here."""
        payload = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token was not issued to this client.")
        issuer = expected_issuer()
        if issuer and str(payload.get("iss", "")).rstrip("/") != issuer:
            raise SuspiciousOperation("The ID token comes from another issuer.")
        return payload

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload) if self.OIDC_OP_USER_ENDPOINT else {}
        # OpenID Connect Core 1.0, 5.3.2: the UserInfo subject must be the ID token's.
        if userinfo and userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The UserInfo subject differs from the ID token's.")
        # Both, UserInfo winning: some providers put claims in the ID token only (Entra ID's groups).
        claims = {**payload, **userinfo}
        try:
            return sso_sign_in(issuer=str(payload.get("iss", "")).rstrip("/"), claims=claims)
        except SignInRefused as refusal:
            self.request.sso_refusal = refusal.message
            logger.info("single sign-on refused for subject %s: %s", claims.get("sub"), refusal.message)
            return None


class SignInStartView(OIDCAuthenticationRequestView):
    """/oidc/authenticate/: off to the provider with a state, a nonce and a PKCE challenge kept in the session."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the library's reads the endpoint here; it is read at the request instead

    OIDC_OP_AUTH_ENDPOINT = property(lambda self: provider_setting("OIDC_OP_AUTHORIZATION_ENDPOINT"))
    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_RP_CLIENT_ID)

    def get(self, request):
        if not settings.CHAT_OIDC_ENABLED:
            raise Http404()
        try:
            return super().get(request)
        except ProviderUnavailable:
            logger.exception("single sign-on could not start")
            return _failure_page(request, _("The sign-in service cannot be reached right now. Try again later."), 503)


class SignInCallbackView(OIDCAuthenticationCallbackView):
    """/oidc/callback/: the provider sends the person back here; signed in, or told why not."""

    def get(self, request):
        if not settings.CHAT_OIDC_ENABLED:
            raise Http404()
        try:
            return super().get(request)
        except (SuspiciousOperation, requests.RequestException, jwt.PyJWTError, ProviderUnavailable):
            # A stale or replayed callback, a provider that is down or a token that fails its checks.
            logger.warning("single sign-on callback failed", exc_info=True)
            return self.login_failure()

    def login_failure(self):
        refusal = getattr(self.request, "sso_refusal", None)
        if refusal:
            message = refusal
        elif self.request.GET.get("error") == "access_denied":
            message = _("The sign-in was cancelled.")
        else:
            message = _("Signing in did not work. Try again; if it keeps failing, ask an administrator.")
        return _failure_page(self.request, message, 403)


def provider_logout_url(request) -> str:
    """Where logging out leads: the provider's end-session endpoint (CHAT_OIDC_PROVIDER_LOGOUT), else the login page."""
    back = resolve_url(settings.LOGOUT_REDIRECT_URL)
    id_token = request.session.get("oidc_id_token")
    if not (settings.CHAT_OIDC_ENABLED and settings.CHAT_OIDC_PROVIDER_LOGOUT and id_token):
        return back
    try:
        end_session = provider_setting("OIDC_OP_END_SESSION_ENDPOINT")
    except ProviderUnavailable:
        end_session = ""
    if not end_session:
        return back
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": request.build_absolute_uri(back),
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{end_session}?{query}"

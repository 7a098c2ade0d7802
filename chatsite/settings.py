"""Settings for chatsite, read from the environment.

Every variable is documented in the README with its default. The defaults
run on a laptop with nothing else installed (SQLite, in-memory channel
layer); production settings that cannot be guessed fail loudly.
"""

import base64
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false).")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_number(name: str, default: float, cast=float):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return cast(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None


def email_settings(url: str) -> dict:
    """Django's email settings from one URL (EMAIL_URL): console:// (print each email), smtp://user:pass@host:587
    (?tls for STARTTLS), smtps://… (TLS from the start), file:///a/folder (one file per email), locmem://, dummy://.
    Fifteen lines of our own: dj-email-url has seen no release since 2022, and django-environ would bring a second
    settings system for this one parser (with scheme names of its own)."""
    parts = urlsplit(url)
    backends = {"console": "console", "smtp": "smtp", "smtps": "smtp", "file": "filebased", "locmem": "locmem", "dummy": "dummy"}
    if parts.scheme not in backends:
        raise ImproperlyConfigured(f"EMAIL_URL={url!r}: use console://, smtp://, smtps://, file://, locmem:// or dummy://.")
    found = {"EMAIL_BACKEND": f"django.core.mail.backends.{backends[parts.scheme]}.EmailBackend"}
    if parts.scheme == "file":
        found["EMAIL_FILE_PATH"] = unquote(parts.path)
    elif parts.scheme in {"smtp", "smtps"}:
        options = parse_qs(parts.query, keep_blank_values=True)
        found |= {
            "EMAIL_HOST": parts.hostname or "localhost",
            "EMAIL_PORT": parts.port or (465 if parts.scheme == "smtps" else 25),
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_SSL": parts.scheme == "smtps",
            "EMAIL_USE_TLS": parts.scheme == "smtp" and "tls" in options,
        }
    return found


def secret_key_from_file(path: Path) -> str:
    """A key generated once and kept beside the code, so a laptop install needs no set-up.

    Several processes on several machines must share one key: set
    DJANGO_SECRET_KEY there instead.
    """
    return _generated_once(path, lambda: secrets.token_urlsafe(50))


def encryption_keys_from_file(path: Path) -> list[str]:
    """A Fernet key generated once and kept beside the code (like the secret key); set CHAT_ENCRYPTION_KEYS instead
    when several machines share one database."""
    return [_generated_once(path, lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())]


def _generated_once(path: Path, generate) -> str:
    """The value kept in `path`, generated and written (readable by this user only) the first time."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first
        time.sleep(0.1)
        return path.read_text().strip()
    value = generate()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secret_key_from_file(BASE_DIR / ".secret_key")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "conversations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "conversations.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the person's choice (cookie), else the browser's Accept-Language, else English.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A logged-in person's language and theme, from their profile: their saved language beats the cookie.
    "conversations.middleware.ProfileMiddleware",
    "conversations.middleware.PrivatePagesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "conversations.context_processors.profile",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets page reads run while a reply is being saved; IMMEDIATE takes
        # the write lock up front so concurrent writers wait instead of failing.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})
    # Parameters travel beside the statement instead of being quoted into it in Python: psycopg's client-side
    # quoting was a tenth of the server's CPU per send on the benchmark (bench/scale_load.py).
    DATABASES["default"]["OPTIONS"].setdefault("server_side_binding", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: a frame for a conversation is one PUBLISH, delivered to every process
            # with a socket on it, and the publishes of one moment go in one pipeline
            # (conversations/channel_layer.py). channels_redis's list-based layer polls and
            # acknowledges each message (several round trips apiece) and could not keep up
            # with 200 streaming replies in bench/stream_load.py.
            "BACKEND": "conversations.channel_layer.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": os.environ.get("CHANNELS_PREFIX", "chatsite"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "conversations.channel_layer.FastInMemoryChannelLayer",
            "CONFIG": {"capacity": 1000},
        }
    }

# The cache holds counters every process must share (throttling, limits): in Redis when it is
# configured, else in this process's memory (one process).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CHANNELS_PREFIX", "chatsite"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Proxies whose X-Forwarded-For header is believed (addresses or networks, comma-separated), so
# that limits and lockouts key on the client's address, not the proxy's (conversations/clients.py).
CHAT_TRUSTED_PROXIES = env_list("CHAT_TRUSTED_PROXIES", "")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Guessing passwords: django-axes counts failed logins (in the database, so every process counts
# together) by username and by client address; after AXES_FAILURE_LIMIT of either, logins are refused
# for AXES_COOLOFF_TIME. An admin unlocks early under Axes > Access attempts (or `manage.py axes_reset`).
# The single sign-on backend is listed always and does nothing unless CHAT_OIDC_CLIENT_ID is set (below).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "conversations.oidc.OIDCBackend",
]
AXES_FAILURE_LIMIT = env_number("CHAT_LOGIN_FAILURES", 10, int)
AXES_COOLOFF_TIME = timedelta(minutes=env_number("CHAT_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "conversations.clients.request_address"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False

# Email (invitations, password resets) goes through EMAIL_URL; by default it is printed to the console,
# so a fresh machine works without a mail server.
globals().update(email_settings(os.environ.get("EMAIL_URL") or "console://"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL") or "Team Chat <chat@localhost>"
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = 20
# How long an account invitation's link can be used, in days; a password reset link, in hours.
CHAT_INVITATION_DAYS = env_number("CHAT_INVITATION_DAYS", 7.0)
PASSWORD_RESET_TIMEOUT = int(env_number("CHAT_PASSWORD_RESET_HOURS", 24.0) * 3600)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Single sign-on through OpenID Connect (mozilla-django-oidc; conversations/oidc.py and services/sso.py;
# see "Single sign-on" in the README). On when a client id is set. The provider's endpoints come from
# CHAT_OIDC_ISSUER's discovery document, fetched at the first sign-in (not here: settings load offline),
# or each from its own variable, which wins.
OIDC_RP_CLIENT_ID = os.environ.get("CHAT_OIDC_CLIENT_ID", "")
CHAT_OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
CHAT_OIDC_ISSUER = os.environ.get("CHAT_OIDC_ISSUER", "").rstrip("/")
OIDC_RP_CLIENT_SECRET = os.environ.get("CHAT_OIDC_CLIENT_SECRET", "")
OIDC_RP_SCOPES = os.environ.get("CHAT_OIDC_SCOPES", "openid email profile")
OIDC_RP_SIGN_ALGO = os.environ.get("CHAT_OIDC_SIGN_ALGO", "RS256")
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("CHAT_OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("CHAT_OIDC_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("CHAT_OIDC_USERINFO_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("CHAT_OIDC_JWKS_ENDPOINT", "")
OIDC_OP_END_SESSION_ENDPOINT = os.environ.get("CHAT_OIDC_END_SESSION_ENDPOINT", "")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = env_number("CHAT_OIDC_TIMEOUT", 10.0)
OIDC_AUTHENTICATE_CLASS = "conversations.oidc.SignInStartView"
OIDC_CALLBACK_CLASS = "conversations.oidc.SignInCallbackView"
# Logging out also ends the session at the provider (its end_session_endpoint), when it has one.
CHAT_OIDC_PROVIDER_LOGOUT = env_bool("CHAT_OIDC_PROVIDER_LOGOUT", False)
OIDC_STORE_ID_TOKEN = CHAT_OIDC_PROVIDER_LOGOUT
OIDC_OP_LOGOUT_URL_METHOD = "conversations.oidc.provider_logout_url"
# The button reads "Sign in with <label>" (empty: "Sign in with single sign-on", translated).
CHAT_OIDC_LABEL = os.environ.get("CHAT_OIDC_LABEL", "")
# A person the provider vouches for who has no account here gets one at their first sign-in; when off,
# only existing accounts may sign in (matched by a verified email address, then linked for good).
# "invited": only people with a pending account invitation sent to their verified address (Teams > Invite).
CHAT_OIDC_CREATE_USERS = (
    "invited" if os.environ.get("CHAT_OIDC_CREATE_USERS", "").lower() == "invited" else env_bool("CHAT_OIDC_CREATE_USERS", True)
)
# And only when their verified address is in one of these domains (comma-separated; empty: any). With a
# provider anyone can have an account at (Google), this is what keeps strangers out.
CHAT_OIDC_EMAIL_DOMAINS = [domain.lower() for domain in env_list("CHAT_OIDC_EMAIL_DOMAINS", "")]
# Take the provider's email address as verified even without an email_verified claim (Entra ID sends
# none; its tenant owns the addresses). Only for a provider that does not let people choose any address.
CHAT_OIDC_TRUST_EMAIL = env_bool("CHAT_OIDC_TRUST_EMAIL", False)
# The claim listing a person's groups (e.g. "groups"; empty: teams are not touched), and which team each
# group joins, as "group=Team name;other group=Other team" (empty: the team named like the group).
CHAT_OIDC_GROUPS_CLAIM = os.environ.get("CHAT_OIDC_GROUPS_CLAIM", "")
CHAT_OIDC_TEAMS = {
    group.strip(): team.strip()
    for group, _sep, team in (item.partition("=") for item in os.environ.get("CHAT_OIDC_TEAMS", "").split(";"))
    if group.strip() and team.strip()
}
# With a mapping, also take people out of a mapped team (as members; owners stay) once their groups no
# longer lead there: the mapped teams are then managed by the provider.
CHAT_OIDC_TEAMS_REMOVE = env_bool("CHAT_OIDC_TEAMS_REMOVE", False)
# Password sign-in (the login form and the admin's): turn it off once everyone signs in through the provider.
CHAT_PASSWORD_LOGIN = env_bool("CHAT_PASSWORD_LOGIN", True)
if not CHAT_PASSWORD_LOGIN and not CHAT_OIDC_ENABLED:
    raise ImproperlyConfigured("CHAT_PASSWORD_LOGIN=false needs single sign-on (CHAT_OIDC_CLIENT_ID): nobody could sign in.")
if CHAT_OIDC_ENABLED and not (CHAT_OIDC_ISSUER or (OIDC_OP_AUTHORIZATION_ENDPOINT and OIDC_OP_TOKEN_ENDPOINT)):
    raise ImproperlyConfigured("Single sign-on needs CHAT_OIDC_ISSUER (or CHAT_OIDC_AUTHORIZATION_ENDPOINT and the others).")

# English and Simplified Chinese; translations live in locale/ and are committed compiled (.mo), so a
# fresh machine serves Chinese with nothing else installed.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_NAME = "chat_language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("DJANGO_SECURE_COOKIES", False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# Behind a proxy that terminates HTTPS: the header it sets to say so, as "HTTP_X_FORWARDED_PROTO,https".
# Only set it when the proxy always sets (or strips) that header: a client could otherwise claim HTTPS.
if os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER"):
    _header, _, _value = os.environ["DJANGO_SECURE_PROXY_SSL_HEADER"].partition(",")
    SECURE_PROXY_SSL_HEADER = (_header.strip(), _value.strip() or "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers check over plain HTTP
# HTTP Strict Transport Security: 0 (off) until the whole site is served over HTTPS for good.
SECURE_HSTS_SECONDS = env_number("DJANGO_HSTS_SECONDS", 0, int)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        # httpx logs one INFO line per upstream request; that is noise at scale.
        "httpx": {"level": "WARNING"},
    },
}

# --- The chat itself -------------------------------------------------------

OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
OPENAI_MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")

# Provider API keys are stored encrypted with these Fernet keys (comma-separated; the first
# encrypts, all decrypt, so a new key can be put first and the old one removed after
# `manage.py rotate_provider_keys`). Generate one with:
#   python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
CHAT_ENCRYPTION_KEYS = env_list("CHAT_ENCRYPTION_KEYS", "") or encryption_keys_from_file(BASE_DIR / ".encryption_key")

# Longest message a person may send, in characters.
CHAT_MAX_MESSAGE_CHARS = env_number("CHAT_MAX_MESSAGE_CHARS", 100_000, int)
# How often streamed text is fanned out to the open tabs (seconds): a frame
# may carry several upstream chunks, which keeps the server's cost per chunk low.
CHAT_FLUSH_INTERVAL = env_number("CHAT_FLUSH_INTERVAL", 0.05)
# With many replies streaming at once, each one's frames are spaced further apart
# so that the process sends at most this many frames per second in all.
CHAT_MAX_FRAMES_PER_SECOND = env_number("CHAT_MAX_FRAMES_PER_SECOND", 1000.0)
# How often a streaming reply is saved to the database (seconds).
CHAT_CHECKPOINT_INTERVAL = env_number("CHAT_CHECKPOINT_INTERVAL", 1.0)
# A running reply's process renews its lease every CHAT_STALE_AFTER / 4 seconds; a reply marked
# streaming whose lease has not been renewed for this long was orphaned by a process that died
# without draining: every process sweeps for such replies and closes them as interrupted.
CHAT_STALE_AFTER = env_number("CHAT_STALE_AFTER", 20.0)
# How long a reply's final save is tried again (with backoff) before the reply is reported as not
# saved and kept in the process to save later: long enough for a database failover.
CHAT_SAVE_RETRY_SECONDS = env_number("CHAT_SAVE_RETRY_SECONDS", 30.0)
# On SIGTERM (a deploy) a process stops taking new replies and lets running ones finish for this
# long, then stops the rest, saving what they have. Give the process manager a little more.
CHAT_DRAIN_SECONDS = env_number("CHAT_DRAIN_SECONDS", 25.0)
# What one client may do, so that no single one can stall everyone (conversations/throttle.py;
# 0 turns a limit off). Frames per second per socket (bursts of twice that), open sockets per
# person and per client address (public-link guests included), new sockets per address per
# minute, replies started per person per minute, and conversations created per person per hour.
CHAT_FRAMES_PER_SECOND = env_number("CHAT_FRAMES_PER_SECOND", 10, int)
CHAT_SOCKETS_PER_PERSON = env_number("CHAT_SOCKETS_PER_PERSON", 30, int)
CHAT_SOCKETS_PER_ADDRESS = env_number("CHAT_SOCKETS_PER_ADDRESS", 200, int)
CHAT_CONNECTS_PER_MINUTE = env_number("CHAT_CONNECTS_PER_MINUTE", 120, int)
CHAT_SENDS_PER_MINUTE = env_number("CHAT_SENDS_PER_MINUTE", 30, int)
CHAT_CONVERSATIONS_PER_HOUR = env_number("CHAT_CONVERSATIONS_PER_HOUR", 120, int)
# An address whose socket was cut off for flooding frames may open no socket for this long.
CHAT_FLOOD_PENALTY_SECONDS = env_number("CHAT_FLOOD_PENALTY_SECONDS", 60, int)
# A socket whose reader stopped reading is dropped once this many bytes wait unsent for it
# (its page reconnects and catches up); without a bound one stalled client grows the process.
CHAT_SOCKET_BUFFER_BYTES = env_number("CHAT_SOCKET_BUFFER_BYTES", 8 * 1024 * 1024, int)
# Connections the shared upstream client may hold open at once.
CHAT_UPSTREAM_MAX_CONNECTIONS = env_number("CHAT_UPSTREAM_MAX_CONNECTIONS", 2000, int)
# A 429 or 5xx (or a dropped connection) before any text arrived is tried again this many
# times, after 0.5 s, 1 s, 2 s … or the server's Retry-After; 0 turns retrying off.
CHAT_UPSTREAM_RETRIES = env_number("CHAT_UPSTREAM_RETRIES", 2, int)
# The longest wait for a retry (seconds): a Retry-After longer than this is reported at once instead.
CHAT_UPSTREAM_RETRY_MAX_WAIT = env_number("CHAT_UPSTREAM_RETRY_MAX_WAIT", 20.0)
# Seconds between words of the offline demo model's reply.
CHAT_DEMO_DELAY = env_number("CHAT_DEMO_DELAY", 0.03)
# Titles written by a model after a conversation's first reply (streaming/titles.py). The admin's Site settings
# turn them off for the site; this turns them off for a deployment (and for tests that script every request).
CHAT_TITLES_BY_MODEL = env_bool("CHAT_TITLES_BY_MODEL", True)
# The longest a title request may take, in seconds; past it the first line stays.
CHAT_TITLE_TIMEOUT = env_number("CHAT_TITLE_TIMEOUT", 15.0)
# Title requests one process makes at once; the others wait their turn. A burst of first replies would
# otherwise send the model server (and the database thread) as many title requests as it just sent replies.
CHAT_TITLE_CONCURRENCY = env_number("CHAT_TITLE_CONCURRENCY", 4, int)

# Importing conversations (conversations/imports/; see "Importing conversations" in the README).
# An upload larger than this is refused before it is parsed or kept (bytes). It is written to a temporary file
# on disk whatever its size (imports/uploads.py), so FILE_UPLOAD_MAX_MEMORY_SIZE keeps its default, and
# DATA_UPLOAD_MAX_MEMORY_SIZE does not count files. A proxy in front needs a body limit at least this large.
CHAT_IMPORT_MAX_UPLOAD_BYTES = env_number("CHAT_IMPORT_MAX_UPLOAD_BYTES", 1 << 30, int)
# A ZIP is refused when the conversations in it would unpack to more than this (bytes), or when one of
# them is compressed more than CHAT_IMPORT_MAX_RATIO times: judged from the sizes it declares before
# anything is inflated, and counted again while reading.
CHAT_IMPORT_MAX_UNCOMPRESSED_BYTES = env_number("CHAT_IMPORT_MAX_UNCOMPRESSED_BYTES", 4 << 30, int)
CHAT_IMPORT_MAX_RATIO = env_number("CHAT_IMPORT_MAX_RATIO", 100.0)
# A conversation with a longer message is not imported (characters); the others are.
CHAT_IMPORT_MAX_MESSAGE_CHARS = env_number("CHAT_IMPORT_MAX_MESSAGE_CHARS", 2_000_000, int)
# One conversation's JSON is held in memory while it is read: a file with a longer one is refused (characters).
CHAT_IMPORT_MAX_CONVERSATION_CHARS = env_number("CHAT_IMPORT_MAX_CONVERSATION_CHARS", 200_000_000, int)

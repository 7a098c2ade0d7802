"""chatsite/settings.py: the documented production settings pass Django's deployment checklist."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The production values the README documents ("Running on real infrastructure").
PRODUCTION = {
    "DJANGO_SECRET_KEY": "a-long-random-secret-key-for-the-deployment-check-0123456789-abcdefghij",
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "DJANGO_SECURE_COOKIES": "true",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "DJANGO_SSL_REDIRECT": "true",
    "DJANGO_HSTS_SECONDS": "31536000",
    "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_HSTS_PRELOAD": "true",
}


def deployment_check(**env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, check=False,
    )


def test_the_documented_production_settings_pass_check_deploy():
    result = deployment_check(**PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_without_them_check_deploy_warns():
    result = deployment_check(DJANGO_SECRET_KEY=PRODUCTION["DJANGO_SECRET_KEY"])
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout  # no HSTS


# --- EMAIL_URL -----------------------------------------------------------------------------------


def test_email_url_console_is_the_default_and_file_locmem_dummy_name_their_backends():
    from chatsite.settings import email_settings

    assert email_settings("console://")["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert email_settings("file:///var/mail/chat%20site") == {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": "/var/mail/chat site",
    }
    assert email_settings("locmem://")["EMAIL_BACKEND"].endswith(".locmem.EmailBackend")
    assert email_settings("dummy://")["EMAIL_BACKEND"].endswith(".dummy.EmailBackend")


def test_email_url_smtp_with_starttls_and_smtps():
    from chatsite.settings import email_settings

    smtp = email_settings("smtp://mailer:p%40ss%3Aword@mail.example.com:587?tls")
    assert smtp["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (smtp["EMAIL_HOST"], smtp["EMAIL_PORT"]) == ("mail.example.com", 587)
    assert (smtp["EMAIL_HOST_USER"], smtp["EMAIL_HOST_PASSWORD"]) == ("mailer", "p@ss:word")
    assert (smtp["EMAIL_USE_TLS"], smtp["EMAIL_USE_SSL"]) == (True, False)
    smtps = email_settings("smtps://mail.example.com")
    assert (smtps["EMAIL_PORT"], smtps["EMAIL_USE_TLS"], smtps["EMAIL_USE_SSL"]) == (465, False, True)
    assert email_settings("smtp://localhost")["EMAIL_USE_TLS"] is False


def test_email_url_with_an_unknown_scheme_fails_loudly():
    import pytest
    from django.core.exceptions import ImproperlyConfigured

    from chatsite.settings import email_settings

    with pytest.raises(ImproperlyConfigured):
        email_settings("sendmail://localhost")

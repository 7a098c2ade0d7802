"""Secrets at rest: provider API keys are stored encrypted (Fernet, keys from settings.CHAT_ENCRYPTION_KEYS)."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"  # marks an encrypted value, so a value saved before encryption existed still reads


@cache
def _box() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in settings.CHAT_ENCRYPTION_KEYS])
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "CHAT_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated."
        ) from None


def encrypt(plaintext: str) -> str:
    return PREFIX + _box().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored  # saved before encryption: re-saved encrypted by the migration
    try:
        return _box().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored API key cannot be decrypted with CHAT_ENCRYPTION_KEYS: was the key changed? "
            "Put the old key back (after the new one) to read it."
        ) from None


def rotate(stored: str) -> str:
    """The value encrypted with the first key."""
    return encrypt(decrypt(stored)) if stored else stored


class EncryptedTextField(models.TextField):
    """Holds a secret. Python code sees the plaintext; the database and serialized data (dumpdata, fixtures)
    only ever see ciphertext."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value

    def value_to_string(self, obj) -> str:
        # What serializers write (dumpdata, whatever its format): a dump is a file that travels.
        value = self.value_from_object(obj)
        return encrypt(value) if value else value

    def to_python(self, value):
        # What deserializers (loaddata) read is the ciphertext value_to_string wrote; a form's or
        # full_clean's plaintext passes through unchanged, as decrypt leaves unmarked values alone.
        value = super().to_python(value)
        return decrypt(value) if value else value

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from conversations.services.providers import provider_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored provider API key with the first key of CHAT_ENCRYPTION_KEYS. "
        "To change keys: put the new key first, keep the old one after it, run this, then remove the old key."
    )

    def handle(self, *args, **options):
        try:
            count = provider_keys_rotate()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        noun = "key" if count == 1 else "keys"
        self.stdout.write(
            f"Re-encrypted {count} provider API {noun} with the first of CHAT_ENCRYPTION_KEYS. "
            "The keys after it are no longer needed for them."
        )

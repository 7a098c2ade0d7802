import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from conversations.services.providers import provider_sync_from_env


class Command(BaseCommand):
    help = "First-run set-up: an admin account when there are no users, and the provider from OPENAI_* variables."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="Where the site is served, for the message.")

    def handle(self, *args, username: str, url: str, **options):
        config = provider_sync_from_env()
        if config is not None:
            self.stdout.write(f"Default model from the environment: {config.display_name} ({config.provider.base_url})")
        User = get_user_model()
        if User.objects.exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, password=password, email="")
        bar = "=" * 64
        self.stdout.write(
            f"\n{bar}\n  Log in at {url} as\n    username: {username}\n"
            f"    password: {password}\n  This password is shown only once.\n{bar}\n"
        )

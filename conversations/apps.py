from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_provider_from_env(sender, **kwargs) -> None:
    from .services import provider_sync_from_env

    provider_sync_from_env()


class ConversationsConfig(AppConfig):
    name = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every `migrate` (run by `make run` and on each deploy) applies OPENAI_* to the database.
        post_migrate.connect(_sync_provider_from_env, sender=self, dispatch_uid="conversations-provider-from-env")

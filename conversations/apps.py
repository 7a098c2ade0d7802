from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


def _sync_provider_from_env(sender, **kwargs) -> None:
    from .services import provider_sync_from_env

    provider_sync_from_env()


class ConversationsConfig(AppConfig):
    name = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .models import ModelConfig, Provider
        from .selectors import forget_models

        for model in (ModelConfig, Provider):
            post_save.connect(forget_models, sender=model, dispatch_uid=f"forget-models-{model.__name__}-save")
            post_delete.connect(forget_models, sender=model, dispatch_uid=f"forget-models-{model.__name__}-delete")
        # Every `migrate` (run by `make run` and on each deploy) applies OPENAI_* to the database.
        post_migrate.connect(_sync_provider_from_env, sender=self, dispatch_uid="conversations-provider-from-env")

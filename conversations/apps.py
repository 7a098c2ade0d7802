from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save, pre_delete
from django.utils.translation import gettext_lazy as _


def _sync_provider_from_env(sender, **kwargs) -> None:
    from .services.providers import provider_sync_from_env

    provider_sync_from_env()


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = _("Conversations")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .models import ModelConfig, Provider
        from .selectors.providers import forget_models

        for model in (ModelConfig, Provider):
            post_save.connect(forget_models, sender=model, dispatch_uid=f"forget-models-{model.__name__}-save")
            post_delete.connect(forget_models, sender=model, dispatch_uid=f"forget-models-{model.__name__}-delete")
        # Which teams may use a model is cached with it (selectors.providers.model_lineup); the admin saves the M2M after the row.
        m2m_changed.connect(forget_models, sender=ModelConfig.allowed_teams.through, dispatch_uid="forget-models-teams")
        self._connect_limit_signals()
        self._connect_access_signals()
        # Every `migrate` (run by `make run` and on each deploy) applies OPENAI_* to the database.
        post_migrate.connect(_sync_provider_from_env, sender=self, dispatch_uid="conversations-provider-from-env")

    def _connect_limit_signals(self) -> None:
        from .metering import forget_limits
        from .models import Limit, Team

        # Who has limits is cached per process (metering._limits); a team's name is in its messages.
        post_save.connect(forget_limits, sender=Limit, dispatch_uid="forget-limits-save")
        post_delete.connect(forget_limits, sender=Limit, dispatch_uid="forget-limits-delete")
        post_save.connect(forget_limits, sender=Team, dispatch_uid="forget-limits-team-save")

    def _connect_access_signals(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_out

        from . import fulltext, signals
        from .models import Conversation, PublicLink, Share, SiteSettings, TeamMembership

        post_save.connect(signals.share_changed, sender=Share, dispatch_uid="access-share-save")
        post_delete.connect(signals.share_changed, sender=Share, dispatch_uid="access-share-delete")
        post_save.connect(signals.membership_changed, sender=TeamMembership, dispatch_uid="access-membership-save")
        # Before the delete: a team's deletion removes its shares in the same cascade.
        pre_delete.connect(signals.membership_changed, sender=TeamMembership, dispatch_uid="access-membership-delete")
        post_save.connect(signals.public_link_changed, sender=PublicLink, dispatch_uid="access-link-save")
        post_delete.connect(signals.public_link_changed, sender=PublicLink, dispatch_uid="access-link-delete")
        post_save.connect(
            signals.account_deactivated, sender=get_user_model(), dispatch_uid="access-account-deactivated"
        )
        post_save.connect(signals.site_settings_changed, sender=SiteSettings, dispatch_uid="access-site-settings")
        post_delete.connect(signals.conversation_deleted, sender=Conversation, dispatch_uid="access-conversation-deleted")
        post_delete.connect(
            fulltext.index.conversation_deleted, sender=Conversation, dispatch_uid="search-conversation-deleted"
        )
        user_logged_out.connect(signals.logged_out, dispatch_uid="access-logged-out")

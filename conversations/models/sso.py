"""Accounts signed in through single sign-on (OpenID Connect; conversations/oidc.py)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ExternalIdentity(models.Model):
    """A person at an identity provider (its issuer and their subject there) is this account.

    The subject is the provider's stable id for a person; an email address may change or be reused,
    so a returning person is found by this link first, and by email only once, to link them.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities", verbose_name=_("user")
    )
    issuer = models.CharField(max_length=255, verbose_name=_("issuer"))
    subject = models.CharField(max_length=255, verbose_name=_("subject"))
    created = models.DateTimeField(auto_now_add=True, verbose_name=_("created"))
    last_sign_in = models.DateTimeField(auto_now=True, verbose_name=_("last sign in"))

    class Meta:
        verbose_name = _("single sign-on identity")
        verbose_name_plural = _("single sign-on identities")
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="one_account_per_external_identity")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer} is {self.user}"

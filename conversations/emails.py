"""The emails the app sends, rendered from templates in the language active when they are sent.

Password reset emails are Django's (registration/password_reset_*.txt); this module sends the rest.
Where they go is EMAIL_URL's business (chatsite/settings.py).
"""

from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from .models import AccountInvitation


def invitation_link(request, token: str) -> str:
    """The address of an account invitation's page, on the site this request came to."""
    return request.build_absolute_uri(reverse("account_invitation", args=[token]))


def send_account_invitation(*, invitation: AccountInvitation, link: str, inviter_name: str) -> None:
    """The invitation's link, to the address it was made for."""
    context = {"invitation": invitation, "team": invitation.team, "link": link, "inviter": inviter_name}
    subject = " ".join(render_to_string("registration/account_invitation_subject.txt", context).split())
    body = render_to_string("registration/account_invitation_email.txt", context)
    send_mail(subject, body, None, [invitation.email])

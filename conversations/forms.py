from datetime import datetime, time, timedelta

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .exceptions import ModelNotAvailable
from .models import ModelConfig, Preset, Profile, PublicLink, Share, TeamMembership
from .validators import check_message_content


class NewConversationForm(forms.Form):
    content = forms.CharField(required=False, strip=False, widget=forms.Textarea)
    model = forms.ModelChoiceField(
        queryset=ModelConfig.objects.none(),
        required=False,
        error_messages={"invalid_choice": ModelNotAvailable.message},
    )
    preset = forms.ModelChoiceField(
        queryset=Preset.objects.none(),
        required=False,
        error_messages={"invalid_choice": _("That preset does not exist, or is not yours.")},
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = ModelConfig.objects.filter(enabled=True).usable_by(user)
        self.fields["preset"].queryset = Preset.objects.available_to(user)

    def clean_content(self) -> str:
        content = self.cleaned_data["content"]
        if content.strip():
            check_message_content(content, settings.CHAT_MAX_MESSAGE_CHARS)
            return content
        return ""


class RenameConversationForm(forms.Form):
    title = forms.CharField(max_length=200)


class BulkChangeForm(forms.Form):
    """Several conversations ticked in the sidebar or on the Archived page, and what to do with them."""

    MAX_IDS = 500

    ids = forms.TypedMultipleChoiceField(coerce=str)  # choices are not known here: checked as UUIDs below
    action = forms.ChoiceField(choices=[(action, action) for action in ("archive", "unarchive", "delete")])
    next = forms.CharField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ids"].valid_value = lambda value: True

    def clean_ids(self):
        import uuid

        try:
            ids = list(dict.fromkeys(uuid.UUID(value) for value in self.cleaned_data["ids"]))
        except ValueError:
            raise forms.ValidationError(_("Not a conversation id.")) from None
        if len(ids) > self.MAX_IDS:
            raise forms.ValidationError(_("At most %(count)s at once.") % {"count": self.MAX_IDS})
        return ids


SHORT_ROLES = [(Share.Role.VIEWER, _("Viewer")), (Share.Role.COLLABORATOR, _("Collaborator"))]  # the dialog explains them


class ShareForm(forms.Form):
    """Share with a teammate or a team: `target` is "user:<id>" or "team:<id>", offered from the owner's teams only."""

    target = forms.ChoiceField(label=_("Share with"))
    role = forms.ChoiceField(choices=SHORT_ROLES, initial=Share.Role.VIEWER)

    def __init__(self, *args, teammates=(), teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [
            ("People", [(f"user:{person.pk}", person.get_username()) for person in teammates]),
            ("Teams", [(f"team:{team.pk}", f"{team.name} (everyone in it)") for team in teams]),
        ]

    def target_ids(self) -> dict:
        kind, _, pk = self.cleaned_data["target"].partition(":")
        return {"user_id": int(pk)} if kind == "user" else {"team_id": int(pk)}


class ShareRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Share.Role.choices)


class PublicLinkForm(forms.Form):
    kind = forms.ChoiceField(choices=PublicLink.Kind.choices, initial=PublicLink.Kind.SNAPSHOT, label=_("Shows"))
    audience = forms.ChoiceField(
        choices=PublicLink.Audience.choices, initial=PublicLink.Audience.ANYONE, label=_("Who can open it")
    )
    password = forms.CharField(
        required=False,
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("Optional."),
    )
    expires_on = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label=_("Expires on"), help_text=_("Optional.")
    )

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day <= timezone.localdate():
            raise forms.ValidationError(_("Choose a day after today."))
        return day

    def expires_at(self):
        """The link works until the end of the chosen day (the server's time zone)."""
        day = self.cleaned_data["expires_on"]
        if day is None:
            return None
        return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


class LinkPasswordForm(forms.Form):
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class TeamCreateForm(forms.Form):
    name = forms.CharField(max_length=100)


class TeamInviteForm(forms.Form):
    username = forms.CharField(max_length=150, label=_("Username"))
    role = forms.ChoiceField(
        choices=[(TeamMembership.Role.MEMBER, _("Member")), (TeamMembership.Role.OWNER, _("Owner (invites and removes people)"))],
        initial=TeamMembership.Role.MEMBER,
        label=_("Role"),
    )


# A person's own system prompt: long enough for a detailed brief, short enough to leave room for the conversation.
SYSTEM_PROMPT_MAX_CHARS = 20_000


class ConversationSettingsForm(forms.Form):
    """A conversation's own temperature and system prompt; the service checks them against the model's bounds."""

    temperature = forms.FloatField(required=False, min_value=0.0, max_value=2.0, help_text=_("Empty: the model's."))
    system_prompt = forms.CharField(
        required=False, max_length=SYSTEM_PROMPT_MAX_CHARS, widget=forms.Textarea, label=_("Your system prompt")
    )


class PresetForm(forms.Form):
    """A personal preset, its model offered from the person's own choices."""

    name = forms.CharField(max_length=100, label=_("Name"))
    model = forms.ModelChoiceField(
        queryset=ModelConfig.objects.none(),
        required=False,
        label=_("Model"),
        empty_label=_("Keep the conversation's model"),
        error_messages={"invalid_choice": ModelNotAvailable.message},
    )
    system_prompt = forms.CharField(
        required=False, max_length=SYSTEM_PROMPT_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 4}), label=_("System prompt")
    )
    temperature = forms.FloatField(
        required=False, min_value=0.0, max_value=2.0, label=_("Temperature"), help_text=_("0 to 2; empty: the model's.")
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = (
            ModelConfig.objects.filter(enabled=True).usable_by(user).order_by("order", "display_name", "pk")
        )


class ImportForm(forms.Form):
    """The Import page's upload (its size is capped as the request is parsed: imports/uploads.py)."""

    file = forms.FileField(
        label=_("File"),
        error_messages={
            "required": _("Choose a file: a ChatGPT export (ZIP or conversations.json) or a JSON export from this site.")
        },
    )


# --- people's accounts ---------------------------------------------------------------------------


def language_choices() -> list[tuple[str, str]]:
    return [("", _("As my browser asks")), *settings.LANGUAGES]


class ProfileForm(forms.Form):
    display_name = forms.CharField(label=_("Display name"), max_length=100, required=False)
    language = forms.ChoiceField(label=_("Language"), choices=language_choices, required=False)
    theme = forms.ChoiceField(label=_("Theme"), choices=Profile.Theme.choices)


class LanguageForm(forms.Form):
    """The switcher's one field: a language offered, or "" to follow the browser."""

    language = forms.ChoiceField(choices=language_choices, required=False)


class AccountInvitationForm(forms.Form):
    """A team owner's invitation for someone without an account: by email, or (no address) a link to pass on."""

    email = forms.EmailField(label=_("Email (optional)"), required=False)


class InvitedAccountForm(UserCreationForm):
    """The account an invitation's link makes: a username (unique), a display name, the password twice
    (checked by AUTH_PASSWORD_VALIDATORS)."""

    display_name = forms.CharField(label=_("Display name"), max_length=100, required=False)
    field_order = ["username", "display_name", "password1", "password2"]

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)

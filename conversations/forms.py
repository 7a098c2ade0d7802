from django import forms
from django.conf import settings

from .models import ModelConfig
from .validators import check_message_content


class NewConversationForm(forms.Form):
    content = forms.CharField(required=False, strip=False, widget=forms.Textarea)
    model = forms.ModelChoiceField(queryset=ModelConfig.objects.enabled(), required=False)

    def clean_content(self) -> str:
        content = self.cleaned_data["content"]
        if content.strip():
            check_message_content(content, settings.CHAT_MAX_MESSAGE_CHARS)
            return content
        return ""


class RenameConversationForm(forms.Form):
    title = forms.CharField(max_length=200)

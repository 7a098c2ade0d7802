"""Template tags for the chat pages."""

from django import template

register = template.Library()


@register.inclusion_tag("conversations/_message_items.html", takes_context=True)
def message_template(context) -> dict:
    """A blank message and context marker for the page's <template>: the browser builds new messages from this
    copy, so _message_items.html is the only place their markup is written."""
    return {
        "message_list": [{"context_marker": True}],
        "blank": True,
        "can_write": context.get("can_write"),
        "message_actions": context.get("message_actions"),
    }

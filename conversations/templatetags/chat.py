"""Template tags for the chat pages."""

from django import template

register = template.Library()


@register.inclusion_tag("conversations/_message_items.html")
def message_template() -> dict:
    """A blank message and context marker for the page's <template>: the browser builds new messages from this
    copy, so _message_items.html is the only place their markup is written."""
    return {"message_list": [{"context_marker": True}], "blank": True}

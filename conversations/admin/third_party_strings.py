"""Admin strings of Django and django-axes that their own catalogs lack in Simplified Chinese.

Marked here so makemessages keeps them in locale/ (LOCALE_PATHS is searched before the packages' own
catalogs); nothing imports this module.
"""

from django.utils.translation import gettext_noop

STRINGS = [
    # django.contrib.admin 5.2 (the index's table headers, for screen readers)
    gettext_noop("Model name"),
    gettext_noop("Add link"),
    gettext_noop("Change or view list link"),
    # django-axes (no zh_Hans catalog)
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
]

"""My usage: what this person's replies used and cost, and the limits that apply to them."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from .. import metering
from ._common import sidebar_context


@login_required
@require_GET
def my_usage(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    summary = metering.usage_summary(request.user, now=now)
    totals = summary["totals"]
    limits = [
        {"state": state, "resets": state.resets(now)} for state in metering.limit_states(request.user, now=now)
    ]
    context = {
        **sidebar_context(request),
        "periods": [
            ("today", _("Today (UTC)"), totals["today"]),
            ("month", _("This month (UTC)"), totals["month"]),
            ("all", _("All time"), totals["all"]),
        ],
        "per_model": summary["per_model"],
        "recent": summary["recent"],
        "recent_limit": metering.RECENT_REPLIES,
        "limits": limits,
    }
    return render(request, "conversations/usage.html", context)

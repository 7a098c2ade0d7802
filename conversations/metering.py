"""Usage and limits: what each reply used and cost, and the budgets checked before a request goes upstream.

Writes (called by services inside their transactions): usage_begin when a reply's
placeholder is saved, usage_finish when its final state is. Checks: limits_check,
before anything of a send is saved. Reads: limit_states and usage_summary, for the
"My usage" page.

Every reply has one UsageRecord from the moment it starts, so a reply that fails
before its first token still counts for the request rate, with its prompt's
estimated tokens. Tokens come from the API's usage when the server sends it
(stream_options.include_usage); otherwise they are estimated from the text with
context.estimate_tokens and the record is marked `estimated`.

Budgets are soft: a send is refused once the tokens used reach the budget, so the
last reply allowed may go past it. Days and months are UTC. Usage counted for a
team is the usage of the records attributed to it (a person's first team).
"""

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.formats import number_format
from django.utils.translation import gettext, gettext_lazy, gettext_noop, ngettext, pgettext

from .context import estimate_tokens
from .exceptions import LimitExceeded
from .llm import ModelSpec, Usage
from .models import Conversation, Limit, ModelConfig, TeamMembership, UsageRecord

DAILY, MONTHLY, PER_MINUTE = "daily", "monthly", "per_minute"
RATE_WINDOW = timedelta(seconds=60)
RECENT_REPLIES = 50


# --- recording --------------------------------------------------------------------------
# On the send path (see services, "The send path, in SQL"): one INSERT when the reply
# starts and one UPDATE when it ends, written out for the same reason as services' own.

_USAGE = UsageRecord._meta.db_table
_MEMBERSHIPS = TeamMembership._meta.db_table
_MODELS = ModelConfig._meta.db_table


def prompt_estimate(spec: ModelSpec, history: list[dict]) -> int:
    """The prompt's tokens as estimated before the request: the system prompt and every turn sent."""
    tokens = sum(estimate_tokens(turn["content"]) for turn in history)
    if spec.system_prompt:
        tokens += estimate_tokens(spec.system_prompt)
    return tokens


def usage_begin(*, user, reply_id: int, model_config_id: int | None, spec: ModelSpec, history: list[dict]) -> None:
    """Record the reply's request as it starts (so request-rate limits count it at once).

    The team is the person's first (by when they joined), looked up in the same statement.
    """
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_USAGE} (kind, message_id, user_id, team_id, model_config_id, model_name, prompt_tokens,"
            " completion_tokens, estimated, cost, created) VALUES"
            f" (%s, %s, %s, (SELECT team_id FROM {_MEMBERSHIPS} WHERE user_id = %s ORDER BY id LIMIT 1),"
            " %s, %s, %s, 0, %s, 0, %s)",
            [
                UsageRecord.Kind.REPLY, reply_id, user.pk, user.pk, model_config_id, spec.model[:200],
                prompt_estimate(spec, history), True, now,
            ],
        )


def title_usage_begin(*, user, model_config_id: int | None, spec: ModelSpec, history: list[dict]) -> int:
    """Record a title request as it starts, as usage_begin does a reply's, marked as a title and tied to no
    message (a title is never shown as one). Returns the record's id, for usage_finish."""
    record = UsageRecord.objects.create(
        kind=UsageRecord.Kind.TITLE,
        user_id=user.pk,
        team_id=TeamMembership.objects.filter(user_id=user.pk).order_by("id").values_list("team_id", flat=True).first(),
        model_config_id=model_config_id,
        model_name=spec.model[:200],
        prompt_tokens=prompt_estimate(spec, history),
        estimated=True,
    )
    return record.pk


def usage_finish(
    *, reply_id: int | None = None, record_id: int | None = None, usage: Usage | None, content: str, model_name: str
) -> None:
    """Complete the reply's record (or, by `record_id`, a title's): tokens from the API's usage, or estimated
    from the text, and the cost.

    Without the API's prompt tokens the estimate made at the start stays. The cost uses
    the model's prices now (per million tokens; none set: 0), computed in the statement.
    """
    prompt = usage.prompt_tokens if usage is not None else None
    completion = usage.completion_tokens if usage is not None else None
    estimated = prompt is None or completion is None
    if completion is None:
        completion = estimate_tokens(content) if content else 0
    # Every right-hand side sees the row as it was, so the cost's prompt_tokens is the estimate.
    cost = (
        f"COALESCE((SELECT (COALESCE(%s, {_USAGE}.prompt_tokens) * COALESCE(m.input_price, 0)"
        f" + %s * COALESCE(m.output_price, 0)) / 1000000.0 FROM {_MODELS} m WHERE m.id = {_USAGE}.model_config_id), 0)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_USAGE} SET prompt_tokens = COALESCE(%s, prompt_tokens), completion_tokens = %s, estimated = %s,"
            f" model_name = COALESCE(NULLIF(%s, ''), model_name), cost = {cost}"
            f" WHERE {'message_id' if record_id is None else 'id'} = %s",
            [prompt, completion, estimated, model_name[:200], prompt, completion, reply_id if record_id is None else record_id],
        )


# --- who has limits (cached per process) ------------------------------------------------
# Every send asks; almost always the answer is "nobody", so it costs no query. A save or
# delete of a Limit (or a team's rename) clears this process's copy at once (apps.py);
# other processes see the change within LIMIT_CACHE_SECONDS.

LIMIT_CACHE_SECONDS = 10.0
_limit_cache: dict = {}


@dataclass(frozen=True)
class _Caps:
    daily: int | None
    monthly: int | None
    per_minute: int | None
    team_name: str = ""


def forget_limits(**_) -> None:
    _limit_cache.clear()


def _limits() -> tuple[dict[int, _Caps], dict[int, _Caps]]:
    """Every Limit that caps anything: (by user id, by team id)."""
    now = time.monotonic()
    hit = _limit_cache.get("limits")
    if hit is None or hit[0] < now:
        by_user, by_team = {}, {}
        rows = Limit.objects.values_list(
            "user_id", "team_id", "team__name", "daily_tokens", "monthly_tokens", "requests_per_minute"
        )
        for user_id, team_id, team_name, daily, monthly, per_minute in rows:
            if daily is None and monthly is None and per_minute is None:
                continue
            if user_id is not None:
                by_user[user_id] = _Caps(daily, monthly, per_minute)
            else:
                by_team[team_id] = _Caps(daily, monthly, per_minute, team_name)
        hit = _limit_cache["limits"] = (now + LIMIT_CACHE_SECONDS, (by_user, by_team))
    return hit[1]


# --- checking ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitState:
    """One cap that applies to a person, and where they stand against it."""

    kind: str  # DAILY, MONTHLY or PER_MINUTE
    cap: int
    used: int  # tokens this day or month; replies started in the last minute
    resets_at: datetime | None  # for PER_MINUTE, only when exceeded: when a request is allowed again
    team_id: int | None = None  # None: the person's own limit
    team_name: str = ""

    @property
    def exceeded(self) -> bool:
        return self.used >= self.cap

    @property
    def left(self) -> int:
        return max(self.cap - self.used, 0)

    @property
    def label(self) -> str:
        return str(LIMIT_LABELS[self.kind])

    def resets(self, now: datetime) -> str:
        """When it resets, for a person: "tomorrow at 00:00 UTC, in 3 h 12 min"."""
        if self.resets_at is None:
            return gettext("continuously (the last 60 seconds count)")
        wait = duration(self.resets_at - now)
        if self.kind == DAILY:
            return gettext("tomorrow at 00:00 UTC, in %(wait)s") % {"wait": wait}
        if self.kind == MONTHLY:
            day = date_format(self.resets_at, pgettext("the day a monthly budget resets, as a date format", "j F"))
            return gettext("on %(day)s at 00:00 UTC, in %(wait)s") % {"day": day, "wait": wait}
        return gettext("in %(wait)s") % {"wait": wait}

    def message(self, now: datetime) -> str:
        """Why a send is refused, naming the limit and when it resets."""
        numbers = {
            "cap": number_format(self.cap, force_grouping=True),
            "used": number_format(self.used, force_grouping=True),
            "team": self.team_name,
        }
        if self.kind == PER_MINUTE:
            numbers["wait"] = duration(self.resets_at - now)
            if self.team_id:
                text = ngettext(
                    "Your team %(team)s has reached its limit of %(cap)s request per minute. Try again in %(wait)s.",
                    "Your team %(team)s has reached its limit of %(cap)s requests per minute. Try again in %(wait)s.",
                    self.cap,
                )
            else:
                text = ngettext(
                    "You have reached your limit of %(cap)s request per minute. Try again in %(wait)s.",
                    "You have reached your limit of %(cap)s requests per minute. Try again in %(wait)s.",
                    self.cap,
                )
            return text % numbers
        numbers["resets"] = self.resets(now)
        texts = {
            (DAILY, False): gettext_noop(
                "You have used your daily budget of %(cap)s tokens (%(used)s used). It resets %(resets)s."
            ),
            (DAILY, True): gettext_noop(
                "Your team %(team)s has used its daily budget of %(cap)s tokens (%(used)s used). It resets %(resets)s."
            ),
            (MONTHLY, False): gettext_noop(
                "You have used your monthly budget of %(cap)s tokens (%(used)s used). It resets %(resets)s."
            ),
            (MONTHLY, True): gettext_noop(
                "Your team %(team)s has used its monthly budget of %(cap)s tokens (%(used)s used). It resets %(resets)s."
            ),
        }
        return gettext(texts[self.kind, bool(self.team_id)]) % numbers


LIMIT_LABELS = {
    DAILY: gettext_lazy("Tokens per day"),
    MONTHLY: gettext_lazy("Tokens per month"),
    PER_MINUTE: gettext_lazy("Requests per minute"),
}


def duration(delta: timedelta) -> str:
    """A wait, rounded up, as a person reads it: "12 seconds", "4 min", "3 h 12 min", "2 d 5 h"."""
    seconds = max(1, math.ceil(delta.total_seconds()))
    if seconds < 60:
        return ngettext("%(count)s second", "%(count)s seconds", seconds) % {"count": seconds}
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return gettext("%(minutes)s min") % {"minutes": minutes}
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        if minutes:
            return gettext("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": minutes}
        return gettext("%(hours)s h") % {"hours": hours}
    days, hours = divmod(hours, 24)
    if hours:
        return gettext("%(days)s d %(hours)s h") % {"days": days, "hours": hours}
    return gettext("%(days)s d") % {"days": days}


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def _next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def limit_states(user, *, now: datetime | None = None) -> list[LimitState]:
    """Every cap that applies to this person (their own, then their teams'), with what is used.

    No query when no Limit concerns them (once the cache is warm); otherwise one, plus
    one more per requests-per-minute cap that is reached (to say when it frees up).
    """
    by_user, by_team = _limits()
    subjects: list[tuple[int | None, _Caps]] = []
    if user.pk in by_user:
        subjects.append((None, by_user[user.pk]))
    if by_team:
        teams = TeamMembership.objects.filter(user_id=user.pk, team_id__in=list(by_team)).order_by("id")
        subjects += [(team_id, by_team[team_id]) for team_id in teams.values_list("team_id", flat=True)]
    if not subjects:
        return []

    now = now or timezone.now()
    starts = {DAILY: day_start(now), MONTHLY: month_start(now), PER_MINUTE: now - RATE_WINDOW}
    tokens = F("prompt_tokens") + F("completion_tokens")
    wanted, aggregates, where = [], {}, Q()
    for index, (team_id, caps) in enumerate(subjects):
        theirs = Q(team_id=team_id) if team_id is not None else Q(user_id=user.pk)
        where |= theirs
        for kind, cap in ((DAILY, caps.daily), (MONTHLY, caps.monthly), (PER_MINUTE, caps.per_minute)):
            if cap is None:
                continue
            name = f"{kind}_{index}"
            recent = theirs & Q(created__gte=starts[kind])
            aggregates[name] = Count("id", filter=recent) if kind == PER_MINUTE else Sum(tokens, filter=recent)
            wanted.append((name, kind, cap, team_id, caps.team_name, theirs))
    since = min(starts[kind] for _, kind, *_ in wanted)
    used = UsageRecord.objects.filter(where, created__gte=since).aggregate(**aggregates)

    states = []
    for name, kind, cap, team_id, team_name, theirs in wanted:
        count = used[name] or 0
        if kind == DAILY:
            resets_at = starts[DAILY] + timedelta(days=1)
        elif kind == MONTHLY:
            resets_at = _next_month(starts[MONTHLY])
        else:
            resets_at = _rate_frees_at(theirs, count, cap, starts[PER_MINUTE]) if count >= cap else None
        states.append(LimitState(kind, cap, count, resets_at, team_id, team_name))
    return states


def _rate_frees_at(theirs: Q, count: int, cap: int, since: datetime) -> datetime:
    """When enough of the last minute's requests have aged out for one more to be allowed."""
    recent = UsageRecord.objects.filter(theirs, created__gte=since).order_by("created")
    oldest_to_go = recent.values_list("created", flat=True)[count - cap]
    return oldest_to_go + RATE_WINDOW


def limits_check(user, *, now: datetime | None = None) -> None:
    """Raise LimitExceeded when this person or their team is over a budget or their request rate.

    When several are, the message names the one that frees up last: the send is refused until then.
    """
    now = now or timezone.now()
    exceeded = [state for state in limit_states(user, now=now) if state.exceeded]
    if exceeded:
        raise LimitExceeded(max(exceeded, key=lambda state: state.resets_at).message(now))


# --- reading: "My usage" ------------------------------------------------------------------


def usage_summary(user, *, now: datetime | None = None) -> dict:
    """This person's usage: totals for today, this month and all time, per model, and the latest replies.

    Three queries whatever the number of records. Days and months are UTC, as for limits.
    """
    now = now or timezone.now()
    records = UsageRecord.objects.filter(user=user)
    periods = {"today": Q(created__gte=day_start(now)), "month": Q(created__gte=month_start(now)), "all": Q()}
    aggregates = {}
    for period, where in periods.items():
        aggregates[f"{period}_replies"] = Count("id", filter=where)
        aggregates[f"{period}_prompt"] = Sum("prompt_tokens", filter=where)
        aggregates[f"{period}_completion"] = Sum("completion_tokens", filter=where)
        aggregates[f"{period}_cost"] = Sum("cost", filter=where)
    sums = records.aggregate(**aggregates)
    totals = {period: _totals(sums, period) for period in periods}

    model = Coalesce("model_config__display_name", "model_name")
    per_model = list(
        records.values(model_label=model)
        .annotate(
            replies=Count("id"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cost=Sum("cost")
        )
        .order_by("-cost", "model_label")
    )
    for row in per_model:
        row["total"] = row["prompt"] + row["completion"]

    # The conversation is named only while this person may still see it.
    visible = Conversation.objects.visible_to(user).filter(pk=OuterRef("message__conversation_id"))
    recent = list(
        records.order_by("-created", "-id").values(
            "id",
            "created",
            "prompt_tokens",
            "completion_tokens",
            "estimated",
            "cost",
            model_label=model,
            conversation_id=F("message__conversation_id"),
            conversation_title=Coalesce("message__conversation__title", Value("")),
            conversation_visible=Exists(visible),
        )[:RECENT_REPLIES]
    )
    for row in recent:
        row["total"] = row["prompt_tokens"] + row["completion_tokens"]
    return {"totals": totals, "per_model": per_model, "recent": recent}


def _totals(sums: dict, period: str) -> dict:
    prompt, completion = sums[f"{period}_prompt"] or 0, sums[f"{period}_completion"] or 0
    return {
        "replies": sums[f"{period}_replies"],
        "prompt": prompt,
        "completion": completion,
        "total": prompt + completion,
        "cost": sums[f"{period}_cost"] or 0,
    }

"""The objects tests need, made by plain keyword-only functions: people, teams, invitations, conversations and
their messages, shares, providers and models (on the fake OpenAI server when given one), usage
records, and the ModelSpec the client takes.

Plain functions rather than factory_boy: each object needs only a few fields, and a call such as
`make_conversation(owner=alice, title="Otter facts")` shows them where the test reads them, with no
factory classes, sequences or lazy attributes to look up. The defaults are what most tests want;
a test passes what it is about.

Public links are not made here: a link needs its snapshot and a hashed password, which only
services.public_link_create (or the Share dialog) gives it, so tests make them that way.

The fixtures built on these (the people, model_config, conversation ...) are in tests/conftest.py.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext

from conversations.llm import ClientOptions, ModelSpec
from conversations.models import (
    Conversation,
    Message,
    ModelConfig,
    Provider,
    Share,
    Team,
    TeamInvitation,
    TeamMembership,
    UsageRecord,
)
from conversations.rendering import render_markdown

TEST_KEY = "sk-test-0123456789abcdefWXYZ"
# The discard port: nothing answers there, so no test reaches a provider or spec left pointing at it.
UNREACHABLE_URL = "http://127.0.0.1:9/v1"


# --- people and teams --------------------------------------------------------------------------


def make_user(*, username: str = "alice", **fields):
    """A person who logs in with the password "pw-<username>"."""
    return get_user_model().objects.create_user(username=username, password="pw-" + username, **fields)


def make_superuser(*, username: str = "root"):
    return get_user_model().objects.create_superuser(username, f"{username}@example.com", "pw-" + username)


def make_team(*, name: str, owner=None, members=(), role: str = TeamMembership.Role.MEMBER) -> Team:
    """A team that `owner` (if any) owns and `members` are in, each with `role`."""
    team = Team.objects.create(name=name)
    if owner is not None:
        TeamMembership.objects.create(team=team, user=owner, role=TeamMembership.Role.OWNER)
    for member in members:
        TeamMembership.objects.create(team=team, user=member, role=role)
    return team


def make_invitation(
    *, team: Team, invitee, invited_by=None, role: str = TeamMembership.Role.MEMBER, ago: timedelta | None = None
) -> TeamInvitation:
    """An invitation to `team` sent `ago` before now (now when not given), pending; `invitee` None is one that
    reached no one. Straight in the database: services.teams.team_invite is what tests of inviting call."""
    created = timezone.now() - (ago or timedelta())
    return TeamInvitation.objects.create(team=team, invitee=invitee, invited_by=invited_by, role=role, created=created)


# --- conversations -----------------------------------------------------------------------------


def make_conversation(*, owner, title: str = "A chat", ago: timedelta | None = None, **fields) -> Conversation:
    """`owner`'s conversation, last active `ago` before now (now when not given)."""
    if ago is not None:
        fields["updated"] = timezone.now() - ago
    return Conversation.objects.create(owner=owner, title=title, **fields)


def make_message(
    *, conversation: Conversation, role: str = Message.Role.USER, content: str = "Hello", **fields
) -> Message:
    """A saved message: a person's is written by the conversation's owner unless `author` says otherwise,
    and a reply carries its rendered HTML unless `html` is given (as a finished reply would)."""
    if role == Message.Role.USER:
        fields.setdefault("author", conversation.owner)
    else:
        fields.setdefault("html", render_markdown(content))
    return Message.objects.create(conversation=conversation, role=role, content=content, **fields)


def make_history(*, conversation: Conversation, count: int, authors=()) -> list[Message]:
    """`count` messages saved in one query, a person's turn and a reply in turn ("message 0", "message 1" ...),
    the person's turns written by each of `authors` in turn (the owner when none are given)."""
    authors = list(authors) or [conversation.owner]
    messages = [
        Message(
            conversation=conversation,
            role=Message.Role.USER if number % 2 == 0 else Message.Role.ASSISTANT,
            content=f"message {number}",
            html=f"<p>message {number}</p>",
            author=authors[number // 2 % len(authors)] if number % 2 == 0 else None,
        )
        for number in range(count)
    ]
    newest = conversation.messages.order_by("-id").values_list("id", flat=True).first()
    created = Message.objects.create_tree(messages, [None, *range(count - 1)])  # one branch, after the newest
    if created and newest is not None:
        Message.objects.filter(pk=created[0].pk).update(parent_id=newest)
        created[0].parent_id = newest
    return created


def make_branched_conversation(*, owner, title: str = "Otter diets") -> tuple[Conversation, dict[str, Message]]:
    """`owner`'s conversation with an edited question and a regenerated reply, whose current branch is an
    older version (so "current" is not merely "newest"). The messages by name:

        q1 "What do otters eat?" -> a1 "Mostly fish."
            -> q2  "And sea otters?"   -> a2  "Sea urchins."
            -> q2b "And river otters?" -> a3  "Crayfish."               <- current leaf
                                       -> a3b "Crayfish and frogs."     (the regenerated reply)
    """
    conversation = make_conversation(owner=owner, title=title)
    assistant = Message.Role.ASSISTANT
    q1 = make_message(conversation=conversation, content="What do otters eat?", parent=None)
    a1 = make_message(conversation=conversation, role=assistant, content="Mostly fish.", parent=q1, model_name="gpt-otter-1")
    q2 = make_message(conversation=conversation, content="And sea otters?", parent=a1)
    a2 = make_message(conversation=conversation, role=assistant, content="Sea urchins.", parent=q2, model_name="gpt-otter-1")
    q2b = make_message(conversation=conversation, content="And river otters?", parent=a1)
    a3 = make_message(conversation=conversation, role=assistant, content="Crayfish.", parent=q2b, model_name="gpt-otter-1")
    a3b = make_message(
        conversation=conversation, role=assistant, content="Crayfish and **frogs**.", parent=q2b, model_name="gpt-otter-2",
        prompt_tokens=12, completion_tokens=5,
    )
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=a3)
    conversation.refresh_from_db()
    return conversation, {"q1": q1, "a1": a1, "q2": q2, "a2": a2, "q2b": q2b, "a3": a3, "a3b": a3b}


def make_share(*, conversation: Conversation, user=None, team=None, role: str = Share.Role.VIEWER) -> Share:
    """`conversation` shared with `user` or with `team`, straight in the database (no access announcement)."""
    return Share.objects.create(conversation=conversation, user=user, team=team, role=role)


# --- providers, models and specs ----------------------------------------------------------------


def make_provider(*, upstream=None, kind: str = Provider.Kind.OPENAI_COMPATIBLE, **fields) -> Provider:
    """A provider. With `upstream` (the fake OpenAI server) it is "Fake <kind>" there, with TEST_KEY and a
    5 s timeout; an Azure one points at the server's root, where Azure's paths start, with an API version.
    Without, it is "Local" at a port nothing answers. Either way on 127.0.0.1, so allowed to reach internal
    servers, as a superuser would allow it (pass allow_internal=False for one that is not)."""
    if upstream is None:
        defaults = {"name": "Local", "base_url": UNREACHABLE_URL, "allow_internal": True}
    else:
        azure = kind == Provider.Kind.AZURE
        defaults = {
            "name": f"Fake {kind}",
            "base_url": f"http://127.0.0.1:{upstream.port}" if azure else upstream.base_url,
            "api_key": TEST_KEY,
            "timeout": 5,
            "allow_internal": True,
        }
        if azure:
            defaults["api_version"] = "2024-10-21"
    return Provider.objects.create(kind=kind, **{**defaults, **fields})


def make_model_config(
    *, provider=None, upstream=None, display_name: str | None = None, model: str | None = None, teams=(), **fields
) -> ModelConfig:
    """A model on `provider` (a new make_provider(upstream=upstream) when None), open to `teams` (everyone
    when empty). Either name follows from the other: "Otters only" is the model "otters-only", the model
    "o3-mini" shows as "o3-mini"; with neither it is "Fake model", the model "fake-model"."""
    if display_name is None and model is None:
        display_name = "Fake model"
    if model is None:
        model = display_name.lower().replace(" ", "-")
    if provider is None:
        provider = make_provider(upstream=upstream)
    config = ModelConfig.objects.create(display_name=display_name or model, provider=provider, model=model, **fields)
    if teams:
        config.allowed_teams.set(teams)
    return config


# What the app's client gets under conftest's fast_settings (streaming.upstream_options), for tests that
# call stream_reply themselves: llm reads no settings, so they pass it.
TEST_OPTIONS = ClientOptions(retries=0, demo_delay=0.0, translate=gettext)  # gettext: as the app words the demo model


def spec_for(upstream=None, **fields) -> ModelSpec:
    """What the client is given for one reply: "fake-model" on `upstream`, the fake server (without it, at a
    port nothing answers), with TEST_KEY and a 5 s read timeout, allowed to reach internal servers (both are
    on 127.0.0.1); `fields` change any of it. Not saved anywhere, so not a make_ function: the server comes
    first, as every client test has one."""
    base_url = upstream.base_url if upstream is not None else UNREACHABLE_URL
    defaults = {"base_url": base_url, "model": "fake-model", "api_key": TEST_KEY, "timeout": 5.0, "allow_internal": True}
    return ModelSpec(**{**defaults, **fields})


# --- usage ---------------------------------------------------------------------------------------


def make_usage_record(*, user, model_config=None, created=None, **fields) -> UsageRecord:
    """One reply's usage, made at `created` (now when not given); its model name is `model_config`'s."""
    if model_config is not None:
        fields.setdefault("model_name", model_config.model)
    if created is not None:
        fields["created"] = created
    return UsageRecord.objects.create(user=user, model_config=model_config, **fields)

"""Domain errors. The edges (views, the consumer) turn them into pages, form errors or error frames."""

from django.utils.translation import gettext_lazy as _


class ChatError(Exception):
    code = "error"
    message = _("Something went wrong.")

    def __init__(self, message: str | None = None):
        # str(): a lazily translated message is worded now, in the language active where it is raised.
        text = str(message or self.message)
        super().__init__(text)
        self.message = text


class ConversationNotFound(ChatError):
    code = "not_found"
    message = _("This conversation does not exist, or you do not have access to it.")


class ReplyInProgress(ChatError):
    code = "busy"
    message = _("A reply is still streaming; wait for it or press Stop.")


class ModelNotAvailable(ChatError):
    code = "model_unavailable"
    message = _("That model is not available; pick another.")


class NothingToRegenerate(ChatError):
    code = "nothing_to_regenerate"
    message = _("There is no message to answer yet.")


class MessageNotFound(ChatError):
    code = "message_not_found"
    message = _("That message is not in this conversation (or cannot be answered again).")


class Forbidden(ChatError):
    code = "forbidden"
    message = _("You are not allowed to do that in this conversation.")


class PublicLinkNotFound(ChatError):
    code = "not_found"
    message = _("This link does not exist or was deleted.")

    def __init__(self, message: str | None = None, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


class TeamNotFound(ChatError):
    code = "not_found"
    message = _("This team does not exist, or you are not in it.")


class InvitationNotFound(ChatError):
    code = "not_found"
    message = _("This invitation does not exist, was answered already, or has lapsed.")


class TooManyInvitations(ChatError):
    """An inviter or a team sent as many invitations as services.teams allows for now; the message says which."""

    code = "throttled"
    message = _("Too many invitations. Try again later.")


class InvalidChange(ChatError):
    """A request the core refuses for a reason the person can fix, such as sharing with a stranger."""

    code = "invalid"


class LimitExceeded(ChatError):
    """A budget or request rate (metering.limits_check) is used up; the message names which one and when it resets."""

    code = "limit_exceeded"
    message = _("You have reached a usage limit.")


class TooManyAttempts(ChatError):
    """Too many wrong guesses (a public link's password) from one address: nothing is checked until the pause ends."""

    code = "throttled"
    message = _("Too many wrong passwords. Try again later.")


class Unavailable(ChatError):
    """The channel layer (Redis) cannot be reached: nothing was saved or sent."""

    code = "unavailable"
    message = _("The server cannot reach its message broker right now; nothing was sent. Try again in a moment.")


class ServerDraining(ChatError):
    """This server process is shutting down (a deploy): the page sends again through another one."""

    code = "draining"
    message = _("This server is restarting; your message will be sent again in a moment.")


class ImportBusy(ChatError):
    """One import at a time per person: another of theirs is queued or running."""

    code = "busy"
    message = _("An import of yours is still running. Wait for it to finish, then upload the next file.")


class AccountInvitationGone(ChatError):
    """An account invitation's link was used, revoked or has expired (or never existed): `state` says which."""

    code = "gone"
    message = _("This invitation link can no longer be used.")

    def __init__(self, message: str | None = None, *, state: str = "unknown"):
        super().__init__(message)
        self.state = state

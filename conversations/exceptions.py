"""Domain errors. The edges (views, the consumer) turn them into pages, form errors or error frames."""


class ChatError(Exception):
    code = "error"
    message = "Something went wrong."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message


class ConversationNotFound(ChatError):
    code = "not_found"
    message = "This conversation does not exist, or you do not have access to it."


class ReplyInProgress(ChatError):
    code = "busy"
    message = "A reply is still streaming; wait for it or press Stop."


class ModelNotAvailable(ChatError):
    code = "model_unavailable"
    message = "That model is not available; pick another."


class NothingToRegenerate(ChatError):
    code = "nothing_to_regenerate"
    message = "There is no message to answer yet."


class Forbidden(ChatError):
    code = "forbidden"
    message = "You are not allowed to do that in this conversation."


class PublicLinkNotFound(ChatError):
    code = "not_found"
    message = "This link does not exist or was deleted."

    def __init__(self, message: str | None = None, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


class TeamNotFound(ChatError):
    code = "not_found"
    message = "This team does not exist, or you are not in it."


class InvalidChange(ChatError):
    """A request the core refuses for a reason the person can fix, such as sharing with a stranger."""

    code = "invalid"


class LimitExceeded(ChatError):
    """A budget or request rate (metering.limits_check) is used up; the message names which one and when it resets."""

    code = "limit_exceeded"
    message = "You have reached a usage limit."


class TooManyAttempts(ChatError):
    """Too many wrong guesses (a public link's password) from one address: nothing is checked until the pause ends."""

    code = "throttled"
    message = "Too many wrong passwords. Try again later."

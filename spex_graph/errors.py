"""Errors that reach the user as one line naming the cause and the fix."""

from __future__ import annotations


class SpexError(Exception):
    """Base class of every error spex-graph raises on purpose.

    The message is one line: what went wrong and how to fix it.
    """


class ConfigError(SpexError, ValueError):
    """An invalid option or configuration value."""


class BackendUnavailableError(SpexError):
    """A backend (server or embedded engine) cannot be reached or started."""


class BackendRequestError(SpexError):
    """A backend answered a request with an error or a malformed answer.

    `retryable` is False for answers that will not change on a retry (HTTP 4xx).
    """

    retryable: bool = True


class TransientBackendError(BackendUnavailableError):
    """A failure that may pass on retry: HTTP 429 or 502-504, a dropped connection.

    Attributes:
        retry_after_s: the server's Retry-After hint in seconds, if it sent one.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RewardModelError(SpexError):
    """A reward model raised or returned something that is not a finite number."""


class RequestCancelledError(SpexError):
    """A request was cancelled before it finished (speculation dropped, query stopped)."""


class ModelFileError(SpexError):
    """An embedded model file is missing or corrupt."""

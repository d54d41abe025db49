"""The few error types a user can cause. Each message names the problem and the fix.

Pages and the CLI catch ``CoreError`` at the edge and show ``str(error)``;
no traceback reaches a user. Each type has a stable English ``code``: the dashboard shows
it beside the error's kind in the reader's language, so logs stay searchable.
"""


class CoreError(Exception):
    """Base for every error a user can cause and fix."""

    code = "core_error"


class InvalidInput(CoreError):
    """A name, option or argument that is not acceptable (bad name, unknown choice)."""

    code = "invalid_input"


class ImageError(CoreError):
    """An upload that cannot be used as an image (not an image, truncated, too large)."""

    code = "image_error"


class DatasetError(CoreError):
    """A dataset that cannot be found or read."""

    code = "dataset_error"


class ModelError(CoreError):
    """A model that cannot be built, loaded or explained."""

    code = "model_error"


class NotAvailable(CoreError):
    """What a version's model format cannot give (a heatmap of a SavedModel without layers)."""

    code = "not_available"


class VersionNotFound(CoreError):
    """A model version that is not in the registry."""

    code = "version_not_found"


class StorageUnavailable(CoreError):
    """The database or artifact store cannot be reached (HTTP 503): not the caller's
    fault, but the message still names the fix for whoever runs the servers."""

    code = "storage_unavailable"


class RegistryError(CoreError):
    """A registry operation that is not allowed in the current state."""

    code = "registry_error"


class ActionRefused(CoreError):
    """An action the actor's role, the target's state or separation of duties forbids.

    Refusals are written to the audit log before this is raised.
    """

    code = "action_refused"


class Unauthenticated(CoreError):
    """A request without valid credentials where they are needed (HTTP 401)."""

    code = "unauthenticated"


class RequestTooLarge(InvalidInput):
    """A request asking for more than one request may (HTTP 413): a body over its byte
    limit, or images that would decode to more pixels than ``MAX_REQUEST_PIXELS``."""

    code = "too_large"


class Overloaded(CoreError):
    """The service is too busy to take this now (HTTP 503 with ``Retry-After``): its
    decoding budget is spent, its log writer is behind, or the database is locked by
    another writer. ``retry_after`` is in seconds; nothing was changed."""

    code = "overloaded"

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(CoreError):
    """A caller over its rate limit (HTTP 429); ``retry_after`` is in seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after

"""The server's one error tree. Pure: no FastAPI here; ``api.errors`` maps it to HTTP in one place.

Every error carries the HTTP status, an OpenAI ``type``, a stable machine ``code`` (a bounded set,
safe as a metric label) and a human message that names the limit and the offending value. A
message never contains raw input, base64, object reprs or addresses (SECURITY.md item 10).

The status and type belong to the class: nothing changes them after construction. The media
pipeline's errors (:mod:`videomodel_server.media.errors`) are part of this tree: each is a
:class:`~videomodel_server.media.errors.MediaError` and one of the categories below
(:class:`InvalidRequest`, :class:`PayloadTooLarge`, :class:`UnprocessableMedia`,
:class:`MediaTimeout`, :class:`OverBudget`, :class:`Unavailable`), so they need no mapping.
"""

from __future__ import annotations


class ServerError(Exception):
    """Base of everything the API reports to a client."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"
    retryable: bool = True
    """Whether the same request may succeed if sent again unchanged. Sent as ``x-should-retry``,
    which the OpenAI SDKs obey before their status rule (408, 409, 429, 5xx)."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(ServerError):
    """The request is malformed or asks for something this server does not do (400)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"
    retryable = False


class OverBudget(InvalidRequest):
    """The request is well-formed but exceeds the served budget (400, names the limit).

    Media the budget refuses is a subclass with status 422
    (:class:`~videomodel_server.media.errors.MediaOverBudget`).
    """

    code = "over_budget"


class PayloadTooLarge(InvalidRequest):
    """The body or a media item is bigger than allowed (413)."""

    status = 413
    code = "payload_too_large"


class UnprocessableMedia(InvalidRequest):
    """Media that could not be fetched, probed or decoded for a reason on the client's side (422)."""

    status = 422
    code = "unprocessable_media"


class MediaTimeout(InvalidRequest):
    """The media host the client named was too slow (422, not retried).

    Not 408: the OpenAI SDKs retry 408 twice by default, so one slow origin would cost three
    full fetch timeouts of server time and of the client's wait. The slow party is the media
    host, which an immediate retry does not speed up.
    """

    status = 422
    code = "media_fetch_timeout"


class Unauthorized(ServerError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"
    retryable = False


class ModelNotFound(ServerError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"
    retryable = False


class Unavailable(ServerError):
    """The server cannot take the request now; the client should retry (503 + Retry-After).

    The only errors a client is told to retry, besides our own 500s."""

    status = 503
    type = "service_unavailable"
    code = "unavailable"

    def __init__(
        self, message: str, *, code: str | None = None, param: str | None = None, retry_after: int = 1
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    code = "overloaded"


class NotReady(Unavailable):
    """The engine is loading or has stopped: nothing is wrong with the request."""

    code = "not_ready"


class DeadlineExceeded(ServerError):
    """The request ran past its overall deadline (504; not retried: a retry redoes the same work)."""

    status = 504
    type = "timeout_error"
    code = "deadline_exceeded"
    retryable = False


class EngineFailure(ServerError):
    """The engine failed on a valid request: our bug or a dead engine (500)."""

    code = "engine_error"


class RoutingError(ServerError):
    """What the HTTP framework itself refused (unknown route, wrong method): the status it chose.

    The one error whose status is an instance's, fixed at construction.
    """

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.type = "invalid_request_error" if status < 500 else "server_error"
        self.retryable = status >= 500 or status in (408, 429)

"""The server's one error tree. Pure: no FastAPI here; ``api.errors`` maps it to HTTP in one place.

Every error carries the HTTP status, an OpenAI ``type``, a stable machine ``code`` (a bounded set,
safe as a metric label) and a human message that names the limit and the offending value. A
message never contains raw input, base64, object reprs or addresses (docs/security.md#error-messages).

The status and type belong to the class: nothing changes them after construction. The media
pipeline's errors (:mod:`videomodel_server.media.errors`) are part of this tree: each is a
:class:`~videomodel_server.media.errors.MediaError` and one of the categories below
(:class:`InvalidRequest`, :class:`PayloadTooLarge`, :class:`UnprocessableMedia`,
:class:`MediaTimeout`, :class:`OverBudget`, :class:`Unavailable`), so they need no mapping.

The whole tree, with each class's HTTP status and default ``code`` (``*``: also a
:class:`~videomodel_server.media.errors.MediaError`, defined in :mod:`videomodel_server.media.errors`
unless another module is named; ``-``: no fixed status). Of the statuses drawn, 500 and 503 are
sent with ``x-should-retry: true``, the rest (504 included) with ``false``.
``tests/unit/test_error_tree.py`` keeps this drawing equal to the classes::

    ServerError                            500  internal_error
    +-- InvalidRequest                     400  invalid_request
    |   +-- OverBudget                     400  over_budget
    |   |   +-- FramesOverBudget *         400  video_frames_over_budget
    |   |   +-- MediaOverBudget *          422  video_over_budget
    |   +-- PayloadTooLarge                413  payload_too_large
    |   |   +-- TooLarge *                 413  media_too_large
    |   +-- UnprocessableMedia             422  unprocessable_media
    |   |   +-- NoVideoStream *            422  video_no_video_stream
    |   |   +-- DecodeTimeout *            422  video_decode_timeout
    |   |   +-- DecodeMemory *             422  video_decode_memory
    |   +-- MediaTimeout                   422  media_fetch_timeout
    |   |   +-- FetchTimeout *             422  media_fetch_timeout
    |   +-- InvalidMediaURL *              400  invalid_media_url
    |   +-- UnsupportedScheme *            400  unsupported_media_scheme
    |   +-- ForbiddenAddress *             400  media_address_forbidden
    |   +-- DomainNotAllowed *             400  media_domain_not_allowed
    |   +-- LocalFileRefused *             400  media_file_refused
    |   +-- FetchFailed *                  400  media_fetch_failed
    |   +-- TooManyRedirects *             400  media_too_many_redirects
    |   +-- InvalidDataURL *               400  invalid_data_url
    |   +-- InvalidVideo *                 400  invalid_video
    |   +-- InvalidImage *                 400  invalid_image
    |   +-- InvalidFrames *                400  invalid_video_frames
    |   +-- InvalidWindow *                400  invalid_video_window   (media.sampling)
    +-- Unauthorized                       401  invalid_api_key
    +-- ModelNotFound                      404  model_not_found
    +-- Unavailable                        503  unavailable            (+ Retry-After; also draining, shutdown)
    |   +-- Overloaded                     503  overloaded             (admission: queue_full, queue_timeout)
    |   +-- NotReady                       503  not_ready
    |   +-- MediaUnavailable *             503  media_unavailable
    +-- DeadlineExceeded                   504  deadline_exceeded
    +-- EngineFailure                      500  engine_error
    +-- RoutingError                       -    (the framework's: not_found, method_not_allowed, ...)
    +-- MediaError                         -    (the media branch's base; never raised itself)
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

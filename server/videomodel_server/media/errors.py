"""The media pipeline's errors: a branch of the server's one error tree.

Each error is a :class:`MediaError` and one of the categories of
:mod:`videomodel_server.errors`, which fixes its HTTP status and OpenAI type; the class adds a
stable ``code``. The server reports them as they are (the loader only fills in ``param``, the
request field at fault); nothing maps them by status. The whole tree, this branch included, is
drawn in :mod:`videomodel_server.errors`. Categories follow docs/security.md#error-messages: bad
input is 400 (malformed), 413 (too many bytes) or 422 (well-formed media outside the model's
budget); a fetch that runs out of time is **422** (``media_fetch_timeout``); our own capacity
problems are 503 + Retry-After. Never 5xx for bad input.

Why 422, not 408, for fetch timeouts: the slow party is the media host the client named, so it
is not a server fault (not 504), and the OpenAI SDKs retry 408 twice on their own, which would
triple the cost of one slow origin. Every 4xx here is sent with ``x-should-retry: false``.

Messages are written for the client and name the setting and the value ("video is 312.4 s
long; this model accepts at most 300 s (maxSeconds)"). They NEVER contain the URL, raw bytes,
base64, object reprs, resolved IP addresses or upstream error text: messages are built only
from numbers and fixed words here, so a hostile input cannot smuggle anything into a response
or log line. No FastAPI here: :mod:`videomodel_server.errors` is pure.
"""

from __future__ import annotations

from ..errors import (
    InvalidRequest,
    MediaTimeout,
    OverBudget,
    PayloadTooLarge,
    ServerError,
    Unavailable,
    UnprocessableMedia,
)


class MediaError(ServerError):
    """Base of every error the media pipeline raises on purpose.

    ``code``: a stable machine-readable reason (also a bounded metrics label); ``param``: the
    request field at fault, when the caller knows it (``load_video`` leaves it None; the server's
    loader fills in e.g. ``messages[0].content[1]``). The status comes from the category each
    subclass also derives from.
    """

    code = "invalid_media"

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross the worker-process boundary by pickle; keep param.
        return (_rebuild, (type(self), self.message, self.param))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


def _rebuild(cls: type[MediaError], message: str, param: str | None) -> MediaError:
    return cls(message, param=param)


# -- fetch: 400 --------------------------------------------------------------------------------


class InvalidMediaURL(MediaError, InvalidRequest):
    """Not a parseable URL, or one with parts we refuse (credentials, missing host)."""

    code = "invalid_media_url"


class UnsupportedScheme(MediaError, InvalidRequest):
    code = "unsupported_media_scheme"


class ForbiddenAddress(MediaError, InvalidRequest):
    """The host resolves to a non-global address (SSRF guard). The address is never named."""

    code = "media_address_forbidden"


class DomainNotAllowed(MediaError, InvalidRequest):
    code = "media_domain_not_allowed"


class LocalFileRefused(MediaError, InvalidRequest):
    """``file://`` outside the allowed root, through a symlink or ``..``, or not a regular file."""

    code = "media_file_refused"


class FetchFailed(MediaError, InvalidRequest):
    """The host could not be resolved or reached, or answered with an error status."""

    code = "media_fetch_failed"


class TooManyRedirects(MediaError, InvalidRequest):
    code = "media_too_many_redirects"


class InvalidDataURL(MediaError, InvalidRequest):
    code = "invalid_data_url"


class TooLarge(MediaError, PayloadTooLarge):
    code = "media_too_large"


class FetchTimeout(MediaError, MediaTimeout):
    code = "media_fetch_timeout"


# -- probe and decode ----------------------------------------------------------------------------


class InvalidVideo(MediaError, InvalidRequest):
    """Not a video we can read: not a container, corrupt, truncated, or the decoder failed."""

    code = "invalid_video"


class InvalidImage(MediaError, InvalidRequest):
    code = "invalid_image"


class InvalidFrames(MediaError, InvalidRequest):
    """A pre-extracted frame sequence (``data:video/jpeg``) that is malformed or whose metadata
    (``media_io_kwargs.video``) contradicts it: 400, ``param`` names the field at fault."""

    code = "invalid_video_frames"


class FramesOverBudget(MediaError, OverBudget):
    """A frame sequence whose declared or actual size passes the budget (too many frames, too long,
    frames too large): 400 like any request field over the budget, ``param`` names the field.

    Unlike :class:`MediaOverBudget` (422: a fetched video the budget refuses), what is refused here
    is what the client wrote into the request."""

    code = "video_frames_over_budget"


class MediaOverBudget(MediaError, OverBudget):
    """Well-formed media the model's budget does not accept (too long, too many streams...).

    The server's one :class:`~videomodel_server.errors.OverBudget`, answered 422 (unprocessable
    media) rather than 400: the request was fine, the video it names is not."""

    status = 422
    code = "video_over_budget"


class NoVideoStream(MediaError, UnprocessableMedia):
    code = "video_no_video_stream"


class DecodeTimeout(MediaError, UnprocessableMedia):
    """Decoding took longer than the per-video limit: the worker was killed."""

    code = "video_decode_timeout"


class DecodeMemory(MediaError, UnprocessableMedia):
    """Decoding needed more memory than the per-worker limit."""

    code = "video_decode_memory"


class MediaUnavailable(MediaError, Unavailable):
    """Our side cannot take the work now (pool shut down): not the client's fault."""

    code = "media_unavailable"


__all__ = [
    "DecodeMemory",
    "DecodeTimeout",
    "DomainNotAllowed",
    "FetchFailed",
    "FetchTimeout",
    "ForbiddenAddress",
    "FramesOverBudget",
    "InvalidDataURL",
    "InvalidFrames",
    "InvalidImage",
    "InvalidMediaURL",
    "InvalidVideo",
    "LocalFileRefused",
    "MediaError",
    "MediaOverBudget",
    "MediaUnavailable",
    "NoVideoStream",
    "TooLarge",
    "TooManyRedirects",
    "UnsupportedScheme",
]

"""The media pipeline's one error tree, each error carrying its HTTP status and a stable code.

Callers catch :class:`MediaError` and map ``status``/``code``/``message``/``param`` into the
OpenAI error envelope; nothing here knows about FastAPI. Status codes follow SECURITY.md item
10: bad input is 400 (malformed), 413 (too many bytes) or 422 (well-formed media outside the
model's budget); a fetch that runs out of time is **408**; our own capacity problems are 503.
Never 5xx for bad input.

Why 408 for fetch timeouts: the slow party is the media host the client named, so it is a
client-side problem (not 5xx), and 408 tells the client that trying again later may work (a
timeout can be transient, unlike a 400). 504 would claim a server fault.

Messages are written for the client and name the setting and the value ("video is 312.4 s
long; this model accepts at most 300 s (maxSeconds)"). They NEVER contain the URL, raw bytes,
base64, object reprs, resolved IP addresses or upstream error text: messages are built only
from numbers and fixed words here, so a hostile input cannot smuggle anything into a response
or log line.
"""

from __future__ import annotations

from typing import ClassVar


class MediaError(Exception):
    """Base of every error the media pipeline raises on purpose.

    ``status``: HTTP status to answer with; ``code``: a stable machine-readable reason (also a
    bounded metrics label); ``param``: the request field at fault, when the caller knows it
    (``load_video`` leaves it None; the API layer fills in e.g. ``messages[0].content[1]``).
    """

    status: ClassVar[int] = 400
    code: ClassVar[str] = "invalid_media"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def with_param(self, param: str | None) -> MediaError:
        self.param = param
        return self

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross the worker-process boundary by pickle; keep param.
        return (_rebuild, (type(self), self.message, self.param))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


def _rebuild(cls: type[MediaError], message: str, param: str | None) -> MediaError:
    return cls(message, param=param)


# -- fetch: 400 --------------------------------------------------------------------------------


class InvalidMediaURL(MediaError):
    """Not a parseable URL, or one with parts we refuse (credentials, missing host)."""

    code = "invalid_media_url"


class UnsupportedScheme(MediaError):
    code = "unsupported_media_scheme"


class ForbiddenAddress(MediaError):
    """The host resolves to a non-global address (SSRF guard). The address is never named."""

    code = "media_address_forbidden"


class DomainNotAllowed(MediaError):
    code = "media_domain_not_allowed"


class LocalFileRefused(MediaError):
    """``file://`` outside the allowed root, through a symlink or ``..``, or not a regular file."""

    code = "media_file_refused"


class FetchFailed(MediaError):
    """The host could not be resolved or reached, or answered with an error status."""

    code = "media_fetch_failed"


class TooManyRedirects(MediaError):
    code = "media_too_many_redirects"


class InvalidDataURL(MediaError):
    code = "invalid_data_url"


class TooLarge(MediaError):
    status = 413
    code = "media_too_large"


class FetchTimeout(MediaError):
    status = 408
    code = "media_fetch_timeout"


# -- probe and decode ----------------------------------------------------------------------------


class InvalidVideo(MediaError):
    """Not a video we can read: not a container, corrupt, truncated, or the decoder failed."""

    code = "invalid_video"


class InvalidImage(MediaError):
    code = "invalid_image"


class OverBudget(MediaError):
    """Well-formed media the model's budget does not accept (too long, too many streams...)."""

    status = 422
    code = "video_over_budget"


class NoVideoStream(MediaError):
    status = 422
    code = "video_no_video_stream"


class DecodeTimeout(MediaError):
    """Decoding took longer than the per-video limit: the worker was killed."""

    status = 422
    code = "video_decode_timeout"


class DecodeMemory(MediaError):
    """Decoding needed more memory than the per-worker limit."""

    status = 422
    code = "video_decode_memory"


class MediaUnavailable(MediaError):
    """Our side cannot take the work now (pool shut down): not the client's fault."""

    status = 503
    code = "media_unavailable"


__all__ = [
    "DecodeMemory",
    "DecodeTimeout",
    "DomainNotAllowed",
    "FetchFailed",
    "FetchTimeout",
    "ForbiddenAddress",
    "InvalidDataURL",
    "InvalidImage",
    "InvalidMediaURL",
    "InvalidVideo",
    "LocalFileRefused",
    "MediaError",
    "MediaUnavailable",
    "NoVideoStream",
    "OverBudget",
    "TooLarge",
    "TooManyRedirects",
    "UnsupportedScheme",
]

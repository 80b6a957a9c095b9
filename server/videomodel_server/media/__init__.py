"""The media pipeline: fetch, probe, sample and decode videos (and images) for the engine.

Public surface (everything else is private): :func:`load_video` / :func:`load_image` with
their settings (:class:`MediaLimits`, :class:`SamplingBudget`, :class:`SamplingOverrides`,
:class:`ImageBudget`), the seams (:class:`Fetcher` with an injectable resolver,
:class:`DecodePool`), the results, and the error tree rooted at :class:`MediaError`. Pure
parts (URL and address validation, sampling) are usable on their own. No FastAPI here: every
:class:`MediaError` is also a :class:`~videomodel_server.errors.ServerError` of a fixed category,
which ``videomodel_server.api.errors`` turns into the OpenAI error envelope like any other.
"""

from .addresses import is_fetchable, refusal_reason
from .decode import DecodedFrames
from .errors import (
    DecodeMemory,
    DecodeTimeout,
    DomainNotAllowed,
    FetchFailed,
    FetchTimeout,
    ForbiddenAddress,
    InvalidDataURL,
    InvalidImage,
    InvalidMediaURL,
    InvalidVideo,
    LocalFileRefused,
    MediaError,
    MediaOverBudget,
    MediaUnavailable,
    NoVideoStream,
    TooLarge,
    TooManyRedirects,
    UnsupportedScheme,
)
from .fetch import FetchedMedia, Fetcher, Resolver, system_resolver
from .images import ImageBudget
from .limits import ClampedBudget, MediaLimits, SamplingBudget, SamplingOverrides, apply_overrides
from .pipeline import LoadedFrames, LoadedImage, LoadedVideo, StageTimings, load_frame_sequence, load_image, load_video
from .pool import DecodePool, PoolStats
from .probe import ProbeResult, check_probe
from .sampling import SamplingPlan, plan_sampling
from .urls import classify_url

__all__ = [
    "ClampedBudget",
    "DecodeMemory",
    "DecodePool",
    "DecodeTimeout",
    "DecodedFrames",
    "DomainNotAllowed",
    "FetchFailed",
    "FetchTimeout",
    "FetchedMedia",
    "Fetcher",
    "ForbiddenAddress",
    "ImageBudget",
    "InvalidDataURL",
    "InvalidImage",
    "InvalidMediaURL",
    "InvalidVideo",
    "LoadedFrames",
    "LoadedImage",
    "LoadedVideo",
    "LocalFileRefused",
    "MediaError",
    "MediaLimits",
    "MediaOverBudget",
    "MediaUnavailable",
    "NoVideoStream",
    "PoolStats",
    "ProbeResult",
    "Resolver",
    "SamplingBudget",
    "SamplingOverrides",
    "SamplingPlan",
    "StageTimings",
    "TooLarge",
    "TooManyRedirects",
    "UnsupportedScheme",
    "apply_overrides",
    "check_probe",
    "classify_url",
    "is_fetchable",
    "load_frame_sequence",
    "load_image",
    "load_video",
    "plan_sampling",
    "refusal_reason",
    "system_resolver",
]

"""Pure URL validation: which media URLs are acceptable before any I/O happens.

``classify_url`` turns a client URL into one of three targets (:class:`HttpTarget`,
:class:`DataTarget`, :class:`FileTarget`) or raises a 400-class :class:`MediaError` that names
the scheme/setting but never echoes the URL. Address checks (SSRF) of host names need DNS and
run in ``fetch.py``, with the pure rules in ``addresses.py`` and :func:`check_addresses` here;
this module checks what the URL text alone can tell: scheme, credentials, host shape, allowed
domains, an IP-literal host's address, data-URL header and size, ``file://`` path shape.
:func:`check_url` is the part of that a request is refused on as it is read, before anything
else is done for it.
"""

from __future__ import annotations

import ipaddress
import math
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

import httpx

from videomodel_server.budget import flag, label

from .addresses import IPAddress, parse_ip_literal, refusal_reason
from .errors import (
    DomainNotAllowed,
    ForbiddenAddress,
    InvalidDataURL,
    InvalidMediaURL,
    LocalFileRefused,
    TooLarge,
    UnsupportedScheme,
)
from .limits import MediaLimits

MediaKind = Literal["video", "image"]

MAX_URL_CHARS = 8192
"""Longest http(s)/file URL accepted (data URLs are bounded by bytes instead)."""


@dataclass(frozen=True)
class HttpTarget:
    url: httpx.URL
    host: str
    """Lower-case ASCII (IDNA) host, IPv6 without brackets."""
    port: int

    @property
    def scheme(self) -> str:
        return self.url.scheme


@dataclass(frozen=True)
class DataTarget:
    media_type: str
    payload: str
    """The base64 text, not yet decoded (its length was checked)."""


@dataclass(frozen=True)
class FileTarget:
    path: str
    """Absolute, normalised, no ``..``: still to be resolved under the root by ``fetch.py``."""


Target = HttpTarget | DataTarget | FileTarget


def classify_url(url: str, limits: MediaLimits, kind: MediaKind = "video") -> Target:
    """Validate ``url``'s text and say how to fetch it. Raises a 400/413 ``MediaError``."""
    if not isinstance(url, str) or not url:
        raise InvalidMediaURL(f"the {kind} URL is empty")
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme.isascii() or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        raise InvalidMediaURL(f"the {kind} URL has no scheme; use https://, data: or file://")
    scheme = scheme.lower()
    if scheme == "data":
        return _classify_data(url, limits, kind)
    if len(url) > MAX_URL_CHARS:
        raise InvalidMediaURL(f"the {kind} URL is {len(url)} characters long; the limit is {MAX_URL_CHARS}")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidMediaURL(f"the {kind} URL contains whitespace or control characters")
    if scheme in ("http", "https"):
        if scheme == "http" and not limits.allow_http:
            raise UnsupportedScheme(f"http:// {kind} URLs are disabled on this server (allow_http); use https://")
        return classify_http(url, limits, kind)
    if scheme == "file":
        return _classify_file(url, limits, kind)
    allowed = _allowed_schemes(limits)
    # The scheme is echoed only when it is short and plain ASCII letters: it is a fixed token.
    shown = scheme if len(scheme) <= 16 and scheme.isalpha() else "this"
    raise UnsupportedScheme(f"the {shown} scheme is not supported for {kind} URLs; use {allowed}")


def classify_http(url: str, limits: MediaLimits, kind: MediaKind = "video") -> HttpTarget:
    """An http(s) URL: parsed the way httpx will send it, host shape and domains checked."""
    try:
        parsed = httpx.URL(url)
        # httpx decodes an IDNA host lazily: a malformed A-label ("xn--") raises here, not above.
        host = parsed.host.lower().rstrip(".")
    except (httpx.InvalidURL, ValueError, TypeError):  # idna.IDNAError is a UnicodeError, a ValueError
        raise InvalidMediaURL(f"the {kind} URL is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsupportedScheme(f"only http(s) URLs can be fetched here; use {_allowed_schemes(limits)}")
    if parsed.scheme == "http" and not limits.allow_http:
        raise UnsupportedScheme(f"http:// {kind} URLs are disabled on this server (allow_http); use https://")
    if parsed.userinfo:
        raise InvalidMediaURL(f"{kind} URLs with user credentials are not accepted")
    if not host:
        raise InvalidMediaURL(f"the {kind} URL has no host")
    if len(host) > 253:
        raise InvalidMediaURL(f"the {kind} URL's host name is longer than 253 characters")
    check_domain_allowed(host, limits.allowed_domains, kind)
    literal = parse_ip_literal(host)
    if literal is not None:
        check_addresses([literal], limits, kind)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return HttpTarget(url=parsed, host=host, port=port)


def check_url(url: str, limits: MediaLimits, kind: MediaKind = "video") -> None:
    """Refuse an http(s) URL now for whatever :func:`classify_url` refuses it (its text: scheme,
    credentials, host, domains, an IP-literal host in a forbidden range), with the same error.

    Pure and cheap, so it runs as a request is read, before its prompt is rendered or counted:
    such a URL costs nothing more. Other URLs pass; they are checked as they are fetched (a
    ``data:`` URL's checks are its decoding, a ``file://`` URL's the opening of the file).
    """
    scheme = url.partition(":")[0].lower() if isinstance(url, str) else ""
    if scheme in ("http", "https"):
        classify_url(url, limits, kind)


def check_addresses(addresses: Iterable[IPAddress], limits: MediaLimits, kind: MediaKind = "video") -> None:
    """Refuse a host whose addresses (its IP literal, or what its name resolved to) include one
    that is not global unicast, unless ``limits`` exempt it (tests only)."""
    if limits.allow_private_addresses:
        return
    exempt = [ipaddress.ip_network(n) for n in limits.exempt_networks]
    for address in addresses:
        reason = refusal_reason(address)
        if reason is not None and not any(address in net for net in exempt):
            raise ForbiddenAddress(
                f"the {kind} URL's host resolves to a {reason} address; only public addresses are fetched"
            )


def check_domain_allowed(host: str, allowed_domains: tuple[str, ...], kind: MediaKind = "video") -> None:
    """With an allow-list, ``host`` must equal an entry or be a subdomain of one.

    IP literals never match a domain list. An empty list allows every host (the address check
    still applies).
    """
    if not allowed_domains:
        return
    if parse_ip_literal(host) is None:
        for domain in allowed_domains:
            if host == domain or host.endswith("." + domain):
                return
    raise DomainNotAllowed(
        f"the {kind} URL's host is not in this server's allowed media domains (allowed_domains, "
        f"{len(allowed_domains)} configured)"
    )


def resolve_redirect(current: HttpTarget, location: str, limits: MediaLimits, kind: MediaKind = "video") -> HttpTarget:
    """The next hop of a redirect, re-validated like a fresh client URL (http(s) only)."""
    if not location:
        raise InvalidMediaURL(f"the {kind} host redirected without a Location")
    try:
        joined = current.url.join(location)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise InvalidMediaURL(f"the {kind} host redirected to an invalid URL") from None
    if joined.scheme not in ("http", "https"):
        raise UnsupportedScheme(f"the {kind} host redirected to a scheme other than http(s)")
    if joined.scheme == "http" and not limits.allow_http:
        raise UnsupportedScheme(f"the {kind} host redirected to http:// which is disabled (allow_http)")
    return classify_http(str(joined), limits, kind)


def max_base64_chars(max_bytes: int) -> int:
    """Base64 length of ``max_bytes`` bytes (padded): anything longer decodes to more."""
    return 4 * math.ceil(max_bytes / 3)


def _classify_data(url: str, limits: MediaLimits, kind: MediaKind) -> DataTarget:
    if not limits.allow_data_urls:
        raise UnsupportedScheme(f"data: {kind} URLs are disabled on this server (allow_data_urls)")
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise InvalidDataURL(f"the {kind} data URL has no ',' separating header and data")
    if len(header) > 256:
        raise InvalidDataURL(f"the {kind} data URL's header is longer than 256 characters")
    params = [p.strip().lower() for p in header.split(";")]
    if params[-1] != "base64":
        raise InvalidDataURL(f"{kind} data URLs must be base64-encoded (data:{kind}/...;base64,...)")
    media_type = params[0] or "application/octet-stream"
    allowed_prefix = f"{kind}/"
    if not (media_type.startswith(allowed_prefix) or media_type == "application/octet-stream"):
        raise InvalidDataURL(f"a {kind} data URL must have a {kind}/* media type")
    cap = limits.max_video_bytes if kind == "video" else limits.max_image_bytes
    limit_chars = max_base64_chars(cap)
    # Measured before decoding anything: base64 of more than the cap cannot decode to less.
    stripped = len(payload) - payload.count("=", max(0, len(payload) - 2))
    if stripped > limit_chars:
        setting = byte_setting(kind)
        approx = len(payload) * 3 // 4
        raise TooLarge(f"the {kind} data URL decodes to about {approx} bytes; the limit is {cap} bytes ({setting})")
    return DataTarget(media_type=media_type, payload=payload)


def _classify_file(url: str, limits: MediaLimits, kind: MediaKind) -> FileTarget:
    if limits.allowed_local_root is None:
        raise UnsupportedScheme(f"file:// {kind} URLs are disabled on this server (no allowed_local_root)")
    rest = url[5:]
    if not rest.startswith("//"):
        raise LocalFileRefused(f"file {kind} URLs must look like file:///absolute/path")
    authority, slash, path = rest[2:].partition("/")
    if authority not in ("", "localhost") or not slash:
        raise LocalFileRefused(f"file {kind} URLs must not name a host")
    path = "/" + path
    if "?" in path or "#" in path:
        path = path.split("?", 1)[0].split("#", 1)[0]
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise LocalFileRefused(f"the file {kind} URL's path is not valid UTF-8") from None
    if "\x00" in decoded:
        raise LocalFileRefused(f"the file {kind} URL's path contains a NUL byte")
    segments = decoded.split("/")
    if ".." in segments:
        raise LocalFileRefused(f"file {kind} URLs may not contain '..'")
    return FileTarget(path=posixpath.normpath(decoded))


def _allowed_schemes(limits: MediaLimits) -> str:
    schemes = ["https://"]
    if limits.allow_http:
        schemes.append("http://")
    if limits.allow_data_urls:
        schemes.append("data:;base64")
    if limits.allowed_local_root is not None:
        schemes.append("file://")
    return ", ".join(schemes)


def byte_setting(kind: MediaKind) -> str:
    """The setting a byte cap comes from, as a message names it (CR key and flag)."""
    return label("max_video_bytes") if kind == "video" else flag("max_image_bytes")

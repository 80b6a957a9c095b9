"""HTTP validators of a fetched video (pure): what lets a repeated URL skip its download.

A response's validators (RFC 9110 section 8.8) are remembered with the content hash of its bytes
(:class:`~.cache.VideoCache`). When the same URL comes again and its decoded frames are still
cached, the fetch is a conditional GET: a ``304 Not Modified`` means the origin vouches that the
bytes are the ones hashed before, so nothing is downloaded, probed or decoded (issue 10: "a
repeated video costs no second fetch or decode"). A ``200`` is an ordinary fetch.

Only **strong** validators are used, because the frames must come from the very same bytes:

* an ``ETag`` without the ``W/`` (weak) prefix, sent back as ``If-None-Match``;
* else a ``Last-Modified`` at least :data:`STRONG_AGE_SECONDS` before the response's ``Date``
  (RFC 9110 8.8.2.2: only then may it be taken as strong, a file changed twice within a second
  would otherwise keep its date), sent back as ``If-Modified-Since``.

Responses marked ``Cache-Control: no-store`` or ``private`` are not remembered: the cache is
shared by every client of the server, which makes it a shared cache in RFC 9111's sense.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass

STRONG_AGE_SECONDS = 60.0
"""How much older than the response's ``Date`` a ``Last-Modified`` must be to count as strong."""
MAX_VALIDATOR_CHARS = 256
"""Longer validators are ignored (they are echoed back in a request header)."""


@dataclass(frozen=True)
class Validators:
    """The strong validator of one response: an entity tag, else a modification date."""

    etag: str | None = None
    last_modified: str | None = None

    def conditional_headers(self) -> dict[str, str]:
        """The request headers that ask the origin whether the bytes changed."""
        if self.etag is not None:
            return {"If-None-Match": self.etag}
        if self.last_modified is not None:
            return {"If-Modified-Since": self.last_modified}
        return {}


def validators_of(headers: Mapping[str, str]) -> Validators | None:
    """The strong validators of a ``200`` response's ``headers`` (lower-case names), or None when it
    has none or must not be stored by a shared cache."""
    directives = {d.strip().split("=", 1)[0].lower() for d in headers.get("cache-control", "").split(",")}
    if directives & {"no-store", "private"}:
        return None
    etag = headers.get("etag", "").strip()
    if etag and not etag.startswith("W/") and _printable(etag):
        return Validators(etag=etag)
    modified = headers.get("last-modified", "").strip()
    if modified and _printable(modified) and _strong_date(modified, headers.get("date", "")):
        return Validators(last_modified=modified)
    return None


def _printable(value: str) -> bool:
    return len(value) <= MAX_VALIDATOR_CHARS and value.isascii() and value.isprintable()


def _strong_date(modified: str, date: str) -> bool:
    try:
        changed = email.utils.parsedate_to_datetime(modified)
        sent = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return False
    if changed.tzinfo is None or sent.tzinfo is None:
        return False
    return (sent - changed).total_seconds() >= STRONG_AGE_SECONDS

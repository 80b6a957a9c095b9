"""The hostile-input catalogue, as data: one table per category, each row an input and its bounds.

Each row says what to send, the status and error code the server must answer, and how long and
how much memory it may take. The tests iterate over these tables (``test_hostile_urls.py``,
``test_hostile_media.py``, ``test_upstream.py``); for every row they also check that no
forbidden address got a connection and that the server is still healthy and serving.

URL templates are filled in at run time: ``{v4}`` / ``{v6}`` are the ports of the forbidden
listeners on ``127.0.0.1`` / ``[::1]`` (they count connections), ``{o}`` is the origin's port
(``127.0.0.9``, the one "public" host), ``{origin}`` its base URL, ``{root}`` the server's
``file://`` root. Media rows name a builder that writes the file at test time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

BAD_URL = ("invalid_media_url",)
FORBIDDEN = ("media_address_forbidden",)
SCHEME = ("unsupported_media_scheme",)
FILE = ("media_file_refused",)
# A host spelling that either does not parse (400 invalid URL) or parses to a refused address.
BAD_OR_FORBIDDEN = ("invalid_media_url", "media_address_forbidden")


@dataclass(frozen=True)
class Row:
    id: str
    input: str
    """A URL template (see the module docstring) or, for media rows, a builder name."""
    status: int | tuple[int, ...]
    codes: tuple[str, ...]
    """Acceptable error codes (empty for a 200)."""
    max_seconds: float = 2.0
    max_api_mb: float = 64.0
    """Growth of the API process's RSS while the row runs."""
    kind: str = "video"
    root: str | None = None
    """Run with the server's file:// root swapped to this (a misconfigured deployment)."""

    @property
    def statuses(self) -> tuple[int, ...]:
        return self.status if isinstance(self.status, tuple) else (self.status,)


def _redirect(to: str, code: int = 302) -> str:
    """A hop through the origin to ``to`` (``<<...>>`` is percent-encoded once filled in)."""
    return "{origin}/redirect?code=" + str(code) + "&to=<<" + to + ">>"


_ENCODED = re.compile(r"<<([^<>]*)>>")


def fill(template: str, **values: object) -> str:
    """The URL of a row: placeholders filled, then ``<<...>>`` parts encoded, innermost first."""
    url = template.format(**values)
    while (m := _ENCODED.search(url)) is not None:
        url = url[: m.start()] + quote(m.group(1), safe="") + url[m.end() :]
    return url


def _u(id: str, url: str, codes: tuple[str, ...] = FORBIDDEN, status: int | tuple[int, ...] = 400, **kw: object) -> Row:
    return Row(id, url, status, codes, **kw)  # type: ignore[arg-type]


URLS: list[Row] = [
    # -- loopback in every spelling (all aimed at the counting listeners) ---------------------------
    _u("v4-canonical", "http://127.0.0.1:{v4}/v.mp4"),
    _u("v4-short-2", "http://127.1:{v4}/v.mp4"),
    _u("v4-short-3", "http://127.0.1:{v4}/v.mp4"),
    _u("v4-decimal", "http://2130706433:{v4}/v.mp4"),
    _u("v4-hex", "http://0x7f000001:{v4}/v.mp4"),
    _u("v4-dotted-hex", "http://0x7f.0x0.0x0.0x1:{v4}/v.mp4"),
    _u("v4-hex-short", "http://0x7f.1:{v4}/v.mp4"),
    _u("v4-octal-dotted", "http://0177.0.0.1:{v4}/v.mp4", BAD_OR_FORBIDDEN),
    _u("v4-octal-whole", "http://017700000001:{v4}/v.mp4", BAD_OR_FORBIDDEN),
    _u("v4-zero-padded", "http://127.000.000.001:{v4}/v.mp4", BAD_OR_FORBIDDEN),
    _u("v4-other-loopback", "http://127.0.0.2:{v4}/v.mp4"),
    _u("v4-unspecified", "http://0.0.0.0:{v4}/v.mp4"),
    _u("v4-zero", "http://0:{v4}/v.mp4"),
    _u("localhost", "http://localhost:{v4}/v.mp4"),
    _u("localhost-upper", "http://LOCALHOST:{v4}/v.mp4"),
    _u("localhost-dot", "http://localhost.:{v4}/v.mp4"),
    _u("v6-loopback", "http://[::1]:{v6}/v.mp4"),
    _u("v6-loopback-long", "http://[0:0:0:0:0:0:0:1]:{v6}/v.mp4"),
    _u("v6-unspecified", "http://[::]:{v6}/v.mp4"),
    _u("v4-mapped", "http://[::ffff:127.0.0.1]:{v4}/v.mp4"),
    _u("v4-mapped-hex", "http://[::ffff:7f00:1]:{v4}/v.mp4"),
    _u("v4-compatible", "http://[::127.0.0.1]:{v4}/v.mp4"),
    _u("nat64", "http://[64:ff9b::127.0.0.1]:{v4}/v.mp4"),
    _u("nat64-local", "http://[64:ff9b:1::7f00:1]:{v4}/v.mp4"),
    _u("6to4", "http://[2002:7f00:1::]:{v4}/v.mp4"),
    _u("teredo", "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{v4}/v.mp4"),
    _u("zone-id-encoded", "http://[fe80::1%25lo]:{v6}/v.mp4", BAD_OR_FORBIDDEN),
    _u("zone-id-raw", "http://[fe80::1%lo]:{v6}/v.mp4", BAD_OR_FORBIDDEN),
    _u("v6-link-local", "http://[fe80::1]:{v6}/v.mp4"),
    _u("v6-ula", "http://[fd00::1]/v.mp4"),
    _u("v6-site-local", "http://[fec0::1]/v.mp4"),
    _u("v6-multicast", "http://[ff02::1]/v.mp4"),
    # -- cloud metadata -----------------------------------------------------------------------------
    _u("metadata", "http://169.254.169.254/latest/meta-data/"),
    _u("metadata-decimal", "http://2852039166/latest/meta-data/"),
    _u("metadata-hex", "http://0xa9fea9fe/latest/meta-data/"),
    _u("metadata-mapped", "http://[::ffff:169.254.169.254]/latest/meta-data/"),
    _u("metadata-aws-v6", "http://[fd00:ec2::254]/latest/meta-data/"),
    _u("metadata-gcp-name", "http://metadata.google.internal/computeMetadata/v1/"),
    _u("metadata-alibaba", "http://100.100.100.200/latest/meta-data/"),
    # -- private and reserved -------------------------------------------------------------------------
    _u("rfc1918-10", "http://10.0.0.1/v.mp4"),
    _u("rfc1918-172", "http://172.16.0.1/v.mp4"),
    _u("rfc1918-192", "http://192.168.1.1/v.mp4"),
    _u("cgnat", "http://100.64.0.1/v.mp4"),
    _u("multicast", "http://224.0.0.1/v.mp4"),
    _u("broadcast", "http://255.255.255.255/v.mp4"),
    _u("benchmarking", "http://198.18.0.1/v.mp4"),
    _u("this-network", "http://0.1.2.3/v.mp4"),
    # -- names whose DNS answers are private, mixed, or rebinding ------------------------------------
    _u("dns-loopback", "http://loopback.test:{v4}/v.mp4"),
    _u("dns-nip-io", "http://127.0.0.1.nip.io:{v4}/v.mp4"),
    _u("dns-metadata", "http://metadata.test/latest/meta-data/"),
    _u("dns-private", "http://private10.test/v.mp4"),
    _u("dns-cgnat", "http://cgnat.test/v.mp4"),
    _u("dns-mixed-public-private", "http://mixed.test/v.mp4"),
    _u("dns-mixed-public-first", "http://mixed-late.test:{v4}/v.mp4"),
    _u("dns-mixed-v6", "http://mixed-v6.test:{v6}/v.mp4"),
    _u("dns-mapped", "http://mapped.test:{v4}/v.mp4"),
    _u("dns-compatible", "http://compat.test:{v4}/v.mp4"),
    _u("dns-nat64", "http://nat64.test:{v4}/v.mp4"),
    _u("dns-6to4", "http://sixtofour.test:{v4}/v.mp4"),
    _u("dns-teredo", "http://teredo.test:{v4}/v.mp4"),
    _u("dns-ula", "http://ula.test/v.mp4"),
    _u("dns-link-local-v6", "http://linklocal6.test/v.mp4"),
    _u("dns-multicast", "http://multicast.test/v.mp4"),
    _u("dns-unspecified", "http://unspecified.test:{v4}/v.mp4"),
    _u("dns-trailing-dot", "http://loopback.test.:{v4}/v.mp4"),
    # Public at the check, loopback afterwards: the fetch is pinned, so it reaches the origin.
    Row("dns-rebind-after-check", "http://rebind.test:{o}/files/ok.mp4", 200, ()),
    _u("dns-rebind-private-first", "http://rebind-private-first.test:{o}/files/ok.mp4"),
    # -- redirects to forbidden places ------------------------------------------------------------------
    _u("redirect-loopback", _redirect("http://127.0.0.1:{v4}/v.mp4")),
    _u("redirect-v6-loopback", _redirect("http://[::1]:{v6}/v.mp4", 301)),
    _u("redirect-metadata", _redirect("http://169.254.169.254/latest/meta-data/", 303)),
    _u("redirect-decimal", _redirect("http://2130706433:{v4}/v.mp4", 307)),
    _u("redirect-dns-loopback", _redirect("http://loopback.test:{v4}/v.mp4", 308)),
    _u("redirect-localhost", _redirect("http://localhost:{v4}/v.mp4")),
    _u("redirect-mapped", _redirect("http://[::ffff:127.0.0.1]:{v4}/v.mp4")),
    _u("redirect-scheme-relative", _redirect("//127.0.0.1:{v4}/v.mp4")),
    _u("redirect-two-hops", _redirect(_redirect("http://127.0.0.1:{v4}/v.mp4"))),
    _u("redirect-file", _redirect("file:///etc/passwd"), SCHEME + BAD_URL),
    _u("redirect-gopher", _redirect("gopher://127.0.0.1:{v4}/_GET"), SCHEME + BAD_URL),
    _u("redirect-data", _redirect("data:video/mp4;base64,AAAA"), SCHEME + BAD_URL),
    _u("redirect-userinfo", _redirect("http://origin.test@127.0.0.1:{v4}/v.mp4"), BAD_URL + FORBIDDEN),
    _u("redirect-loop", "{origin}/loop", ("media_too_many_redirects",)),
    _u("redirect-ping-pong", "{origin}/pingpong", ("media_too_many_redirects",)),
    # -- schemes ------------------------------------------------------------------------------------------
    _u("scheme-ftp", "ftp://origin.test/v.mp4", SCHEME),
    _u("scheme-gopher", "gopher://127.0.0.1:{v4}/_GET%20/", SCHEME),
    _u("scheme-dict", "dict://127.0.0.1:{v4}/info", SCHEME),
    _u("scheme-ldap", "ldap://127.0.0.1:{v4}/", SCHEME),
    _u("scheme-javascript", "javascript:alert(1)", SCHEME),
    _u("scheme-jar", "jar:http://127.0.0.1:{v4}/a.jar!/v.mp4", SCHEME),
    _u("scheme-rtsp", "rtsp://127.0.0.1:{v4}/live", SCHEME),
    _u("scheme-rtmp", "rtmp://127.0.0.1:{v4}/live", SCHEME),
    _u("scheme-tcp", "tcp://127.0.0.1:{v4}", SCHEME),
    _u("scheme-udp", "udp://127.0.0.1:{v4}", SCHEME),
    _u("scheme-ffmpeg-concat", "concat:http://127.0.0.1:{v4}/a.mp4|http://127.0.0.1:{v4}/b.mp4", SCHEME),
    _u("scheme-ffmpeg-subfile", "subfile,,start,0,end,0,,:/etc/passwd", BAD_URL + SCHEME),
    _u("scheme-ffmpeg-hls", "hls+http://127.0.0.1:{v4}/x.m3u8", SCHEME),
    _u("scheme-ffmpeg-pipe", "pipe:0", SCHEME),
    _u("scheme-upper-http", "HTTP://127.0.0.1:{v4}/v.mp4"),
    _u("scheme-data-not-base64", "data:video/mp4,AAAA", ("invalid_data_url",)),
    _u("scheme-data-html", "data:text/html;base64,PHNjcmlwdD4=", ("invalid_data_url",)),
    _u("scheme-data-bad-base64", "data:video/mp4;base64,!!!!", ("invalid_data_url",)),
    _u("scheme-empty", "", ("invalid_request",)),
    _u("scheme-none", "//127.0.0.1:{v4}/v.mp4", BAD_URL),
    # -- user@host, backslashes, fragments ----------------------------------------------------------------
    _u("userinfo-host", "http://origin.test@127.0.0.1:{v4}/v.mp4", BAD_URL),
    _u("userinfo-reversed", "http://127.0.0.1:{v4}@origin.test:{o}/files/ok.mp4", BAD_URL),
    _u("userinfo-password", "http://user:pass@origin.test:{o}/files/ok.mp4", BAD_URL),
    _u("backslash-at", "http://origin.test:{o}\\@127.0.0.1:{v4}/v.mp4", BAD_OR_FORBIDDEN),
    _u("backslash-authority", "http:\\\\127.0.0.1:{v4}\\v.mp4", BAD_OR_FORBIDDEN),
    _u("single-slash", "http:/127.0.0.1:{v4}/v.mp4", BAD_OR_FORBIDDEN),
    _u("fragment-at", "http://origin.test:{o}#@127.0.0.1:{v4}/v.mp4", ("media_fetch_failed",)),
    _u("query-at", "http://origin.test:{o}?@127.0.0.1:{v4}/v.mp4", ("media_fetch_failed",)),
    _u("whitespace-host", "http://127.0.0.1 :{v4}/v.mp4", BAD_URL),
    _u("crlf-injection", "http://origin.test:{o}/files/ok.mp4%0d%0aHost:%20127.0.0.1", ("media_fetch_failed",)),
    _u("tab-in-host", "http://127.0.0.1\t:{v4}/v.mp4", BAD_URL),
    # -- IDNA and percent-encoding ---------------------------------------------------------------------
    _u("pct-host", "http://%31%32%37.0.0.1:{v4}/v.mp4", (*BAD_OR_FORBIDDEN, "media_fetch_failed")),
    _u("pct-dots", "http://127%2e0%2e0%2e1:{v4}/v.mp4", (*BAD_OR_FORBIDDEN, "media_fetch_failed")),
    _u("idna-roman-l", "http://\u217cocalhost:{v4}/v.mp4", (*BAD_OR_FORBIDDEN, "media_fetch_failed")),
    _u("idna-fullwidth", "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{v4}/v.mp4", BAD_OR_FORBIDDEN),
    _u("idna-fullwidth-digits", "http://\uff11\uff12\uff17.0.0.1:{v4}/v.mp4", BAD_OR_FORBIDDEN),
    _u("idna-ideographic-dots", "http://127\u30020\u30020\u30021:{v4}/v.mp4", BAD_OR_FORBIDDEN),
    _u("idna-circled", "http://\u2460\u2461\u2466.0.0.1:{v4}/v.mp4", (*BAD_OR_FORBIDDEN, "media_fetch_failed")),
    _u("idna-punycode-garbage", "http://xn--:{v4}/v.mp4", (*BAD_URL, "media_fetch_failed")),
    _u("idna-malformed-alabel-redirect", _redirect("http://xn--:{v4}/v.mp4"), BAD_URL),
    _u("overlong-host", "http://" + "a" * 300 + ".test/v.mp4", BAD_URL),
    _u("overlong-url", "http://origin.test/" + "a" * 9000, BAD_URL),
    # -- file:// under the root -----------------------------------------------------------------------------
    Row("file-control", "file://{root}/ok.mp4", 200, ()),
    _u("file-dotdot", "file://{root}/../outside/secret.mp4", FILE),
    _u("file-dotdot-encoded", "file://{root}/%2e%2e/outside/secret.mp4", FILE),
    _u("file-dotdot-mixed", "file://{root}/.%2E/outside/secret.mp4", FILE),
    _u("file-symlink-file", "file://{root}/link-out.mp4", FILE),
    _u("file-symlink-dir", "file://{root}/dir-out/secret.mp4", FILE),
    _u("file-symlink-chain", "file://{root}/link-link.mp4", FILE),
    _u("file-hard-link", "file://{root}/hard-out.mp4", FILE),
    _u("file-symlink-proc", "file://{root}/proc/self/environ", FILE),
    _u("file-symlink-dev", "file://{root}/dev/zero", FILE),
    _u("file-fifo", "file://{root}/fifo.mp4", FILE),
    _u("file-directory", "file://{root}/subdir", FILE),
    _u("file-missing", "file://{root}/missing.mp4", FILE),
    _u("file-nul", "file://{root}/ok.mp4%00.png", FILE),
    _u("file-host", "file://evil.example{root}/ok.mp4", FILE),
    _u("file-etc-passwd", "file:///etc/passwd", FILE),
    _u("file-proc-outside-root", "file:///proc/self/environ", FILE),
    _u("file-dev-outside-root", "file:///dev/zero", FILE),
    _u("file-relative", "file:ok.mp4", FILE),
    # The root itself misconfigured to "/": the pseudo-filesystems must still be refused.
    _u("file-root-slash-proc-environ", "file:///proc/self/environ", FILE, root="/"),
    _u("file-root-slash-proc-cmdline", "file:///proc/self/cmdline", FILE, root="/"),
    _u("file-root-slash-proc-fd", "file:///proc/self/fd/0", FILE, root="/"),
    _u("file-root-slash-dev-zero", "file:///dev/zero", FILE, root="/"),
    _u("file-root-slash-dev-urandom", "file:///dev/urandom", FILE, root="/"),
    _u("file-root-slash-sys", "file:///sys/kernel/mm/transparent_hugepage/enabled", FILE, root="/"),
]


# -- hostile media files (built at test time by test_hostile_media.BUILDERS) ------------------------------

INVALID = ("invalid_video",)
OVER = ("video_over_budget",)
IMAGE_BAD = ("invalid_image",)
TOO_LARGE = ("media_too_large",)
# A damaged but partly decodable file may still be served: 200 or a clear 4xx, never a 5xx.
MAYBE = (200, 400, 422)
MAYBE_CODES = ("invalid_video", "video_over_budget", "video_no_video_stream", "video_decode_timeout")


def _m(id: str, status: int | tuple[int, ...], codes: tuple[str, ...], **kw: object) -> Row:
    kw.setdefault("max_seconds", 6.0)
    return Row(id, id, status, codes, **kw)  # type: ignore[arg-type]


MEDIA: list[Row] = [
    _m("zero-length", 400, INVALID),
    _m("one-byte", 400, INVALID),
    _m("random-64k", 400, INVALID),
    _m("random-3m", 400, INVALID),
    _m("text", 400, INVALID),
    _m("html", 400, INVALID),
    _m("truncated-header", 400, INVALID),
    _m("truncated-half", 400, INVALID),
    _m("truncated-90", 400, INVALID),
    _m("truncated-faststart-half", MAYBE, MAYBE_CODES),
    _m("truncated-webm-half", MAYBE, MAYBE_CODES),
    _m("bitflip-200", MAYBE, MAYBE_CODES),
    _m("bitflip-heavy", MAYBE, MAYBE_CODES),
    _m("bitflip-seed-2", MAYBE, MAYBE_CODES),
    _m("bitflip-seed-3", MAYBE, MAYBE_CODES),
    _m("bitflip-mkv", MAYBE, MAYBE_CODES),
    _m("huge-wide", 422, OVER),
    _m("huge-tall", 422, OVER),
    _m("huge-area", 422, OVER, max_seconds=10.0),
    _m("y4m-declares-100000x100000", (400, 422), INVALID + OVER),
    _m("mp4-box-size-4g", MAYBE, MAYBE_CODES),
    _m("mkv-element-size-huge", MAYBE, MAYBE_CODES),
    _m("mp4-sample-count-huge", MAYBE, MAYBE_CODES),
    _m("fps-zero", MAYBE, MAYBE_CODES),
    _m("fps-absurd", 422, OVER),
    _m("fps-negative-delta", MAYBE, MAYBE_CODES),
    _m("timescale-zero", MAYBE, MAYBE_CODES),
    _m("duration-absurd", MAYBE, MAYBE_CODES),
    _m("hours-long-tiny", 422, OVER),
    _m("sparse-pts-hours", 422, OVER),
    _m("no-timing-raw-h264", MAYBE, MAYBE_CODES),
    _m("many-streams-43", 422, OVER),
    _m("hundreds-of-streams", 422, OVER, max_seconds=10.0),
    _m("unknown-codec-mp4", 400, INVALID),
    _m("unknown-codec-mkv", 400, INVALID),
    _m("audio-only", 422, ("video_no_video_stream",)),
    _m("png-as-video", MAYBE, MAYBE_CODES),
    _m("polyglot-mp4-zip", 200, ()),
    _m("polyglot-gif-mp4", MAYBE, MAYBE_CODES),
    _m("hls-playlist-loopback", 400, INVALID),
    _m("hls-playlist-file", 400, INVALID),
    _m("hls-playlist-over-http", 400, INVALID),
    _m("ffconcat-loopback", 400, INVALID),
    _m("ffconcat-file", 400, INVALID),
    _m("sdp-rtp-loopback", 400, INVALID),
    _m("gzip-wrapped-mp4", 400, INVALID),
    _m("tiny-2x2", MAYBE, MAYBE_CODES),
    _m("image-bomb-header", 413, TOO_LARGE, kind="image"),
    _m("image-bomb-png-zeros", 413, TOO_LARGE, kind="image"),
    _m("image-bomb-gif", 413, TOO_LARGE, kind="image"),
    _m("image-truncated", 400, IMAGE_BAD, kind="image"),
    _m("image-random", 400, IMAGE_BAD, kind="image"),
    _m("image-is-a-video", 400, IMAGE_BAD, kind="image"),
    _m("image-base64-over-cap", 413, TOO_LARGE, kind="image"),
    _m("video-base64-over-cap", 413, (*TOO_LARGE, "payload_too_large")),
    _m("body-over-request-cap", 413, ("payload_too_large",)),
    _m("forged-frame-list", 400, ("unsupported",), kind="part"),
    _m("forged-frame-metadata", 400, ("invalid_request",), kind="part"),
    # Pre-extracted JPEG frame sequences (data:video/jpeg;base64,<frame>,<frame>,...; issue 12 item 1).
    _m("jpeg-frames-garbage-between", 400, ("invalid_video_frames",)),
    _m("jpeg-frames-not-base64", 400, ("invalid_video_frames",)),
    _m("jpeg-frames-truncated-jpeg", 400, ("invalid_video_frames",)),
    _m("jpeg-frames-over-pixel-cap", 400, ("video_frames_over_budget",)),
    _m("jpeg-frames-more-than-max-frames", 400, ("video_frames_over_budget",)),
]


# -- a misbehaving upstream (test_upstream.py) -----------------------------------------------------------

UPSTREAM: list[Row] = [
    Row("slowloris-headers", "{origin}/slowloris", 422, ("media_fetch_timeout",), max_seconds=4.5),
    Row("drip-body", "{origin}/drip-body", 422, ("media_fetch_timeout",), max_seconds=4.5),
    Row("longer-than-content-length", "{origin}/longer-than-declared", (400, 422), ("invalid_video",)),
    Row("endless-chunked", "{origin}/endless-chunked", 413, ("media_too_large",), max_seconds=4.5),
    Row("two-gigabytes-declared", "{origin}/two-gigabytes", 413, ("media_too_large",)),
    Row("two-gigabytes-undeclared", "{origin}/two-gigabytes-undeclared", 413, ("media_too_large",), max_seconds=4.5),
    Row("redirect-loop", "{origin}/loop", 400, ("media_too_many_redirects",)),
    Row("stall-mid-body", "{origin}/stall-mid-body", 422, ("media_fetch_timeout",), max_seconds=4.5),
    Row("stall-before-headers", "{origin}/stall-headers", 422, ("media_fetch_timeout",), max_seconds=4.5),
    Row(
        "tls-handshake-never-finishes",
        "https://origin.test:{tls}/v.mp4",
        422,
        ("media_fetch_timeout",),
        max_seconds=4.5,
    ),
    Row("upstream-500", "{origin}/status?code=500", 400, ("media_fetch_failed",)),
    Row("upstream-connection-refused", "http://origin.test:1/v.mp4", 400, ("media_fetch_failed",)),
]

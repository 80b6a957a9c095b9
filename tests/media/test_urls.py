"""URL validation (pure): schemes, data URLs, file paths, domains; messages never echo input."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videomodel_server.media import MediaError, MediaLimits, classify_url
from videomodel_server.media.errors import (
    DomainNotAllowed,
    ForbiddenAddress,
    InvalidDataURL,
    InvalidMediaURL,
    LocalFileRefused,
    TooLarge,
    UnsupportedScheme,
)
from videomodel_server.media.urls import (
    DataTarget,
    FileTarget,
    HttpTarget,
    check_url,
    max_base64_chars,
    resolve_redirect,
)

SECRET = "s3cr3t-marker"


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://example.com/{SECRET}.mp4",
        f"gopher://example.com/{SECRET}",
        f"javascript:alert('{SECRET}')",
        f"file:///etc/{SECRET}",
        f"dict://example.com:11211/{SECRET}",
        f"jar:http://example.com/{SECRET}!/",
        f"{SECRET}-no-scheme",
    ],
)
def test_other_schemes_are_400_and_not_echoed(url: str) -> None:
    with pytest.raises(MediaError) as info:
        classify_url(url, MediaLimits())
    assert info.value.status == 400
    assert SECRET not in info.value.message
    assert isinstance(info.value, UnsupportedScheme | InvalidMediaURL)


def test_scheme_is_named() -> None:
    with pytest.raises(UnsupportedScheme, match="ftp scheme is not supported"):
        classify_url("ftp://example.com/a.mp4", MediaLimits())
    with pytest.raises(UnsupportedScheme, match="allowed_local_root"):
        classify_url("file:///data/a.mp4", MediaLimits())


def test_http_switch() -> None:
    assert isinstance(classify_url("http://example.com/a.mp4", MediaLimits()), HttpTarget)
    with pytest.raises(UnsupportedScheme, match="allow_http"):
        classify_url("http://example.com/a.mp4", MediaLimits(allow_http=False))
    target = classify_url("HTTPS://Example.COM./v.mp4?sig=1", MediaLimits())
    assert isinstance(target, HttpTarget) and target.host == "example.com" and target.port == 443


@pytest.mark.parametrize(
    "url", [f"https://user:{SECRET}@example.com/v.mp4", "https:///v.mp4", "https://exa mple.com/", "http://[::1/"]
)
def test_malformed_http_urls(url: str) -> None:
    with pytest.raises(MediaError) as info:
        classify_url(url, MediaLimits())
    assert info.value.status == 400 and SECRET not in info.value.message


def test_allowed_domains_narrow() -> None:
    limits = MediaLimits(allowed_domains=("videos.example.com", "CDN.example.net."))
    assert classify_url("https://videos.example.com/a.mp4", limits)
    assert classify_url("https://eu.cdn.example.net/a.mp4", limits)
    for url in ["https://example.com/a.mp4", "https://videos.example.com.evil.io/a", "https://evilcdn.example.net/"]:
        with pytest.raises(DomainNotAllowed):
            classify_url(url, limits)
    with pytest.raises(DomainNotAllowed):  # IP literals never match a domain list
        classify_url("https://93.184.216.34/a.mp4", limits)


def test_redirects_are_revalidated() -> None:
    limits = MediaLimits(allowed_domains=("example.com",), allow_http=False)
    start = classify_url("https://example.com/a", limits)
    assert isinstance(start, HttpTarget)
    nxt = resolve_redirect(start, "/b.mp4", limits)
    assert str(nxt.url) == "https://example.com/b.mp4"
    with pytest.raises(DomainNotAllowed):
        resolve_redirect(start, "https://other.org/b.mp4", limits)
    with pytest.raises(UnsupportedScheme):
        resolve_redirect(start, "http://example.com/b.mp4", limits)
    with pytest.raises(UnsupportedScheme):
        resolve_redirect(start, "file:///etc/passwd", limits)


# -- IP-literal hosts: refused on the text, before any I/O -----------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v.mp4",
        "HTTPS://[::1]/v.mp4",
        "http://[::ffff:10.0.0.1]/v.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/v.mp4",
        "http://[fe80::1%25eth0]/v.mp4",
    ],
)
def test_forbidden_ip_literal_refused_by_the_text(url: str) -> None:
    for check in (classify_url, check_url):
        with pytest.raises(ForbiddenAddress) as info:
            check(url, MediaLimits())
        assert info.value.status == 400 and "only public addresses" in info.value.message
        assert "127.0.0.1" not in info.value.message and "169.254" not in info.value.message


def test_ip_literal_check_keeps_the_text_checks_first_and_the_exemptions() -> None:
    with pytest.raises(InvalidMediaURL):  # credentials are refused first, as before
        check_url("http://user@127.0.0.1/v.mp4", MediaLimits())
    with pytest.raises(UnsupportedScheme):  # so is a disabled scheme
        check_url("http://127.0.0.1/v.mp4", MediaLimits(allow_http=False))
    with pytest.raises(DomainNotAllowed):  # and a domain list (IP literals never match one)
        check_url("https://10.0.0.1/v.mp4", MediaLimits(allowed_domains=("example.com",)))
    exempt = MediaLimits(exempt_networks=("127.0.0.1/32",))
    check_url("http://127.0.0.1:8080/v.mp4", exempt)
    with pytest.raises(ForbiddenAddress):
        check_url("http://127.0.0.2:8080/v.mp4", exempt)
    check_url("http://10.0.0.1/v.mp4", MediaLimits(allow_private_addresses=True))
    check_url("https://93.184.216.34/v.mp4", MediaLimits())  # public
    check_url("https://localhost/v.mp4", MediaLimits())  # a name: its addresses are checked at the fetch


def test_check_url_leaves_other_schemes_to_the_fetch() -> None:
    limits = MediaLimits(allow_data_urls=False)
    for url in ("data:video/mp4;base64,AAAA", "file:///etc/passwd", "gopher://127.0.0.1/", "", "//127.0.0.1/v"):
        check_url(url, limits)


# -- data URLs ---------------------------------------------------------------------------------


def test_data_url_ok() -> None:
    payload = base64.b64encode(b"\0" * 100).decode()
    target = classify_url(f"data:video/mp4;base64,{payload}", MediaLimits())
    assert isinstance(target, DataTarget) and target.media_type == "video/mp4"


@pytest.mark.parametrize(
    "url",
    [
        f"data:video/mp4,{SECRET}",  # not base64
        f"data:text/html;base64,{SECRET}",  # wrong media type
        "data:video/mp4;base64",  # no comma
    ],
)
def test_data_url_bad(url: str) -> None:
    with pytest.raises(InvalidDataURL) as info:
        classify_url(url, MediaLimits())
    assert SECRET not in info.value.message


def test_oversized_base64_refused_by_length_before_decoding() -> None:
    limits = MediaLimits(max_video_bytes=3000)
    ok = "A" * max_base64_chars(3000)
    assert classify_url(f"data:video/mp4;base64,{ok}", limits)
    # Invalid base64 (would fail to decode) is refused as too large without decoding it.
    with pytest.raises(TooLarge) as info:
        classify_url(f"data:video/mp4;base64,{ok}AAAA!!!!", limits)
    assert (
        info.value.status == 413
        and "maxVideoBytes (--max-video-bytes)" in info.value.message
        and "3000" in info.value.message
    )


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=5000))
def test_base64_length_bound_is_tight(size: int) -> None:
    encoded = base64.b64encode(b"x" * size)
    assert len(encoded) <= max_base64_chars(size)
    assert len(base64.b64encode(b"x" * (size + 1))) > max_base64_chars(size) or size % 3 != 0


# -- file URLs ---------------------------------------------------------------------------------


def test_file_url_shapes(tmp_path: Path) -> None:
    limits = MediaLimits(allowed_local_root=tmp_path)
    target = classify_url(f"file://{tmp_path}/a%20b.mp4", limits)
    assert isinstance(target, FileTarget) and target.path == f"{tmp_path}/a b.mp4"
    for url in [
        f"file://{tmp_path}/../etc/passwd",
        f"file://{tmp_path}/x/%2e%2e/%2e%2e/etc/passwd",
        "file://otherhost/etc/passwd",
        f"file://{tmp_path}/a%00.mp4",
        "file:relative.mp4",
    ]:
        with pytest.raises(LocalFileRefused):
            classify_url(url, limits)


# -- properties ---------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_and_is_never_echoed(text: str) -> None:
    url = text + SECRET
    try:
        classify_url(url, MediaLimits())
    except MediaError as exc:
        assert 400 <= exc.status < 500
        assert SECRET not in exc.message


@settings(max_examples=300)
@given(
    st.sampled_from(["http", "https", "HTTP", "data", "file", "ftp", "ws", "blob"]),
    st.text(alphabet=st.characters(codec="ascii"), max_size=80),
)
def test_scheme_prefixed_text(scheme: str, rest: str) -> None:
    url = f"{scheme}:{rest}{SECRET}"
    try:
        target = classify_url(url, MediaLimits())
    except MediaError as exc:
        assert 400 <= exc.status < 500 and SECRET not in exc.message
    else:
        assert isinstance(target, HttpTarget | DataTarget)

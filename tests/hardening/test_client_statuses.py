"""Statuses a client handles right: every error the server emits against the OpenAI SDKs' retry rules.

The Python rule is the installed SDK's own ``_should_retry`` (openai/_base_client.py); the JS
SDK (openai-node ``shouldRetry``) has the same one: obey ``x-should-retry: true|false``, else
retry 408, 409, 429 and >= 500. The server must be retried only for overload / not ready (503 +
Retry-After) and its own 500s; nothing a retry cannot fix (bad input, over budget, a slow media
host, an expired deadline) may be retried, so one slow origin costs one fetch timeout, not three.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest
from openai import _base_client

from tests.harness import MediaServer
from tests.harness.hardening import FETCH_TIMEOUT_S, Hardened
from videomodel_server.api.errors import error_response
from videomodel_server.errors import EngineFailure, RoutingError, ServerError, Unavailable
from videomodel_server.media.errors import MediaError


def _all_errors(cls: type[ServerError] = ServerError) -> Iterator[type[ServerError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _all_errors(sub)


def _instances() -> list[ServerError]:
    out: list[ServerError] = []
    for cls in dict.fromkeys(_all_errors()):
        if cls is MediaError:
            continue  # an abstract base: nothing raises it bare (its subclasses fix the status)
        if cls is RoutingError:
            # What Starlette itself can refuse with (unknown route, wrong method, body, media type).
            out += [RoutingError("x", status=s, code="http_error") for s in (400, 404, 405, 413, 415, 422)]
        else:
            out.append(cls("x"))
    return out


ERRORS = _instances()


def python_sdk_retries(status: int, headers: dict[str, str]) -> bool:
    client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9/v1")
    response = _base_client.httpx2.Response(status, headers=headers)
    return bool(client._should_retry(response))


def js_sdk_retries(status: int, headers: dict[str, str]) -> bool:
    """openai-node's ``shouldRetry`` (core.ts): the header first, then 408, 409, 429, >= 500."""
    header = {k.lower(): v for k, v in headers.items()}.get("x-should-retry")
    if header == "true":
        return True
    if header == "false":
        return False
    return status in (408, 409, 429) or status >= 500


def intended_retry(err: ServerError) -> bool:
    """What a client should do: retry overload / not-ready, and our own (500) faults only."""
    return isinstance(err, Unavailable) or (err.status == 500 and (type(err) in (ServerError, EngineFailure)))


def test_the_tree_is_covered() -> None:
    codes = {e.code for e in ERRORS}
    assert {"media_fetch_timeout", "video_decode_timeout", "overloaded", "not_ready", "deadline_exceeded"} <= codes
    assert len(ERRORS) >= 30


@pytest.mark.parametrize("err", ERRORS, ids=[f"{type(e).__name__}-{e.status}-{e.code}" for e in ERRORS])
def test_error_against_sdk_retry_rules(err: ServerError) -> None:
    response = error_response(err)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    want = intended_retry(err)
    assert python_sdk_retries(response.status_code, headers) is want
    assert js_sdk_retries(response.status_code, headers) is want
    assert err.status != 408, "408 is retried by the SDKs; a slow media host is a 422"
    if response.status_code == 503:
        assert isinstance(err, Unavailable) and "retry-after" in response.headers
    if not want and response.status_code < 500:
        # Even a client (or proxy) that drops x-should-retry must not retry it by status.
        assert response.status_code not in (408, 409, 429)


def test_slow_origin_costs_one_fetch_timeout(hardened: Hardened, origin: MediaServer) -> None:
    """The real SDK, with its default two retries, sends a request whose media host stalls: once."""
    client = openai.OpenAI(base_url=hardened.url + "/v1", api_key="unused", timeout=30)
    assert client.max_retries == 2
    before = origin.hits("/stall-headers")
    started = time.monotonic()
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(
            model="tiny",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "video_url", "video_url": {"url": f"http://origin.test:{origin.port}/stall-headers"}}
                    ],  # type: ignore[list-item,misc]
                }
            ],
        )
    elapsed = time.monotonic() - started
    assert info.value.code == "media_fetch_timeout"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert origin.hits("/stall-headers") - before == 1
    assert elapsed < 2 * FETCH_TIMEOUT_S

"""Schema-driven fuzzing (schemathesis) of the real app's OpenAPI schema, on loopback.

Every operation the app publishes gets a bounded number of generated requests, valid and
invalid (schemathesis's positive and negative phases), against the hardened server (the real
media loader behind its SSRF guard, the fake engine). Two properties: no 5xx, and every error
is the OpenAI envelope ``{"error": {"message", "type", "param", "code"}}`` with string message,
type and code. ``HARDENING_FUZZ_EXAMPLES`` raises the bound for a longer run.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.harness.hardening import Hardened

MAX_EXAMPLES = int(os.environ.get("HARDENING_FUZZ_EXAMPLES", "25"))


def _operations(hardened: Hardened) -> list[Any]:
    schema = schemathesis.openapi.from_url(hardened.url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def check_envelope(status: int, body: bytes, content_type: str) -> None:
    assert status < 500, f"{status}: {body[:500]!r}"
    if status < 400:
        return
    assert content_type.startswith("application/json"), content_type
    payload = json.loads(body)
    assert set(payload) == {"error"}, payload
    err = payload["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and isinstance(err["code"], str)
    assert err["param"] is None or isinstance(err["param"], str)


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_fuzzed_requests_get_no_5xx_and_the_envelope(mode: GenerationMode, hardened: Hardened) -> None:
    operations = _operations(hardened)
    calls: list[int] = []
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/models", "/health"}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: Any) -> None:
            response = case.call(timeout=15)
            content_type = response.headers.get("content-type") or [""]
            if isinstance(content_type, list):
                content_type = content_type[0]
            check_envelope(response.status_code, response.content, content_type)
            calls.append(response.status_code)

        try:
            run()
        except Unsatisfiable:
            # Negative mode on an operation with no inputs (GET /health): nothing to negate.
            assert mode is GenerationMode.NEGATIVE
    assert len(calls) >= MAX_EXAMPLES


def test_every_schema_reference_resolves(hardened: Hardened) -> None:
    """Gap found by the fuzzer: the chat body's ``#/$defs/...`` pointed nowhere, so it got no body."""
    doc = httpx.get(hardened.url + "/openapi.json", timeout=10).json()

    def resolve(ref: str) -> Any:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    for ref in refs:
        assert isinstance(resolve(ref), dict), ref
    body = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "messages" in body["properties"]

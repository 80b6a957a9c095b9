"""The vLLM adapter across the vLLM versions the server runs on (0.26 on the GPU, 0.32 in tests).

No engine is started: each case is the shape of that version's ``AsyncLLM`` that the adapter
touches, so a version difference fails here instead of as a 500 from /metrics (issue 11).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from videomodel_server.engine import EngineConfig, VllmEngine, select_model_runner, unfinished_requests_of


class AsyncLLM032:
    """vLLM 0.32: ``AsyncLLM.get_num_unfinished_requests()`` asks its output processor."""

    errored = False

    def __init__(self, n: int) -> None:
        self.output_processor = SimpleNamespace(get_num_unfinished_requests=lambda: n)

    def get_num_unfinished_requests(self) -> int:
        return int(self.output_processor.get_num_unfinished_requests())


class AsyncLLM026:
    """vLLM 0.26: no such method on ``AsyncLLM``; its ``OutputProcessor`` has it."""

    errored = False

    def __init__(self, n: int) -> None:
        self.output_processor = SimpleNamespace(get_num_unfinished_requests=lambda: n, request_states={})


class Bare:
    """A version that has neither: the count is unknown, never an exception."""

    errored = False


@pytest.mark.parametrize(("llm", "count"), [(AsyncLLM032(3), 3), (AsyncLLM026(2), 2), (Bare(), 0), (None, 0)])
def test_unfinished_requests_on_every_version(llm: Any, count: int) -> None:
    assert unfinished_requests_of(llm) == count


def test_the_adapter_reports_vllm_026_unfinished_requests() -> None:
    engine = VllmEngine(
        EngineConfig(
            model=Path("/m"),
            served_model_name="m",
            max_model_len=16,
            limit_mm_per_prompt={},
            mm_processor_kwargs={},
        )
    )
    assert engine.unfinished_requests() == 0
    engine._llm = AsyncLLM026(5)
    assert engine.unfinished_requests() == 5


def test_a_failing_count_reads_as_zero() -> None:
    class Broken:
        errored = False

        def get_num_unfinished_requests(self) -> int:
            raise RuntimeError("engine core gone")

    assert unfinished_requests_of(Broken()) == 0


class EncoderRunner026:
    """vLLM 0.26's V2 ``EncoderRunner``: no encoder profiling (its ``profile_run`` skips the tower)."""


class EncoderRunner032:
    def profile_encoder_cache(self) -> None: ...


def test_vllm_026_gets_the_v1_runner_so_the_encoder_is_profiled() -> None:
    environ: dict[str, str] = {}
    assert select_model_runner(environ, EncoderRunner026) == "0"
    assert environ == {"VLLM_USE_V2_MODEL_RUNNER": "0"}


def test_vllm_032_keeps_its_default_runner() -> None:
    environ: dict[str, str] = {}
    assert select_model_runner(environ, EncoderRunner032) is None
    assert environ == {}


def test_an_explicit_runner_choice_wins() -> None:
    environ = {"VLLM_USE_V2_MODEL_RUNNER": "1"}
    assert select_model_runner(environ, EncoderRunner026) is None
    assert environ == {"VLLM_USE_V2_MODEL_RUNNER": "1"}


def test_the_installed_vllm_needs_no_runner_switch() -> None:
    """The tests' vLLM (0.32) profiles the encoder in its default runner."""
    pytest.importorskip("vllm")
    environ: dict[str, str] = {}
    assert select_model_runner(environ) is None and environ == {}

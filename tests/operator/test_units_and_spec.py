"""Quantities, the spec model's conversions for derive(), and the pure core's layering."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.harness.operator import EXAMPLES, load_body, load_cr
from videomodel_operator.units import (
    BINARY,
    QuantityError,
    format_bytes,
    format_decimal_milli,
    parse_bandwidth,
    parse_bytes,
    parse_cpu,
)
from videomodel_server.budget import BUILTIN_MODELS, Family


@pytest.mark.parametrize(
    ("text", "value"),
    [("256Mi", 256 * 1024**2), ("1G", 10**9), ("1.5Ki", 1536), (268435456, 268435456), ("0", 0)],
)
def test_parse_bytes(text: int | str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("4Mi", 4 * 1024**2), ("32Mbit", 4e6), ("100Mbps", 12.5e6), ("8MiB", 8 * 1024**2), (1000, 1000.0)],
)
def test_parse_bandwidth(text: int | str, value: float) -> None:
    assert parse_bandwidth(text) == value


@pytest.mark.parametrize("bad", ["", "lots", "1 Gi", "-1", "1e9", "Mi"])
def test_bad_quantities_are_rejected(bad: str) -> None:
    with pytest.raises(QuantityError):
        parse_bytes(bad)


@given(st.integers(min_value=0, max_value=2**62))
def test_format_bytes_round_trips_canonically(value: int) -> None:
    text = format_bytes(value)
    assert parse_bytes(text) == value
    suffix = text.lstrip("0123456789")
    if suffix in BINARY:  # the largest exact suffix, as the API server prints it
        bigger = [s for s, scale in BINARY.items() if scale > BINARY[suffix]]
        assert all(value % BINARY[s] for s in bigger)


@pytest.mark.parametrize(
    ("milli", "text"), [(4000, "4"), (1500, "1500m"), (4_000_000, "4k"), (32 * 10**12, "32G"), (0, "0")]
)
def test_decimal_quantities_print_as_the_api_server_does(milli: int, text: str) -> None:
    assert format_decimal_milli(milli) == text


def test_bytes_that_are_not_whole_kibibytes_print_as_decimal_si() -> None:
    assert (
        format_bytes(1_500_000) == "1500k" and format_bytes(1500) == "1500" and format_bytes(32 * 10**9) == "31250000Ki"
    )


def test_parse_cpu() -> None:
    assert parse_cpu("1500m") == 1500 and parse_cpu("2") == 2000 and parse_cpu(0.5) == 500


def test_spec_converts_to_the_budget_module_inputs() -> None:
    spec = load_cr(EXAMPLES / "qwen2-vl-7b-a100.yaml").spec
    budget = spec.to_budget()
    assert budget.max_seconds == 120 and budget.max_video_bytes == 256 * 1024**2
    assert budget.min_fetch_bandwidth == 4e6  # 32Mbit
    assert spec.to_model_spec() == BUILTIN_MODELS["Qwen2-VL-7B"]
    gpu = spec.to_gpu_spec()
    assert gpu.count == 1 and gpu.memory_bytes == 80 * 1024**3 and gpu.dtype_bytes == 2


def test_overrides_apply_to_the_builtin_row() -> None:
    body = load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    body["spec"]["model"]["maxPositionEmbeddings"] = 65536
    from videomodel_operator.spec import parse_video_model

    model = parse_video_model(body).spec.to_model_spec()
    assert model.max_position_embeddings == 65536 and model.num_hidden_layers == 28


def test_demo_model_is_fully_declared() -> None:
    model = load_cr(EXAMPLES / "demo-tiny-qwen2-vl.yaml").spec.to_model_spec()
    assert model.family is Family.QWEN2_VL and model.num_hidden_layers == 2 and model.head_dim == 64


def test_pure_core_imports_no_kopf_kubernetes_or_http() -> None:
    """Spec, planning, rendering and status are pure: importing them pulls in no I/O stack."""
    code = (
        "import sys\n"
        "import videomodel_operator.spec, videomodel_operator.planning\n"
        "import videomodel_operator.rendering, videomodel_operator.status, videomodel_operator.crdgen\n"
        "import videomodel_operator.cli\n"
        "bad = sorted(m for m in ('kopf', 'kubernetes', 'aiohttp', 'fastapi', 'vllm', 'torch') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""

# The two README commands: `make demo` and `make test`. Both build .venv/ first if needed.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: env demo test check fmt lock bench

env:
	@bash scripts/bootstrap.sh

demo: env
	$(BIN)/python scripts/demo.py

## format check, lint, types, layering, then the whole test suite: two xdist workers (the tests that
## share an engine stay on one worker: tests/conftest.py), then the `serial` tests alone on the machine.
## Each run ends with its 15 slowest tests. The 3.12 run stays on one process: on two workers
## test_decode's allocation-failure walk segfaulted in its child twice in a row (it passes alone).
PYTEST_PARALLEL := -n 2 --dist loadgroup
test: env check
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not serial"
	$(BIN)/python -m pytest -m serial

check: env
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: env
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock:
	bash scripts/lock.sh

## preprocessing per video, this project vs vLLM's loader vs qwen-vl-utils (BENCH_QUICK=1: no 10-min clip),
## then the floor (FFmpeg decoding alone), then end to end vs `vllm serve`, overload, repeated video
bench: env
	$(BIN)/python -m bench.media_bench
	$(BIN)/python -m bench.floor_bench
	$(BIN)/python -m bench.serve_bench

## benchmark 5 alone: FFmpeg full and keyframes-only decode of benchmark 1's clips
.PHONY: bench-floor bench-serve
bench-floor: env
	$(BIN)/python -m bench.floor_bench

## benchmarks 2-4 alone: tiny Qwen2-VL on CPU, this server vs `vllm serve` (a few minutes)
bench-serve: env
	$(BIN)/python -m bench.serve_bench

## Python 3.12 (the server image's Python): mypy and the tests that start no engine, in .venv312/
## (scripts/bootstrap312.sh: the lock's pins of only what these need; no vLLM, torch or FastAPI app)
.PHONY: test312
test: test312
TESTS312 := tests/unit tests/media tests/operator/test_crd.py tests/operator/test_rendering.py \
	tests/operator/test_status.py tests/operator/test_units_and_spec.py tests/operator/test_contains.py \
	tests/operator/test_server_contract.py tests/operator/test_scenarios.py
test312:
	@bash scripts/bootstrap312.sh
	.venv312/bin/mypy --python-version 3.12
	.venv312/bin/python -m pytest $(TESTS312)

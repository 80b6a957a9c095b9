# The two README commands: `make demo` and `make test`. Both build .venv/ first if needed.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: env demo test check fmt lock bench

env:
	@bash scripts/bootstrap.sh

demo: env
	$(BIN)/python scripts/demo.py

## format check, lint, types, layering, then the whole test suite
test: env check
	$(BIN)/python -m pytest

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

bench: env
	$(BIN)/python -m pytest tests/bench -s

"""Moved to :mod:`tests.harness.fakes`; this name stays only for tests/hardening/test_shutdown.py until it
imports from the harness (then delete this file)."""

from tests.harness.fakes import FakeEngine, FakeLoader

__all__ = ["FakeEngine", "FakeLoader"]

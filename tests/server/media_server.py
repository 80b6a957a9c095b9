"""Moved to :mod:`tests.harness.media` (one loopback media server for every test); this name stays only
for tests/server/test_engine_qwen2_vl.py, test_engine_hd_clip.py and tests/hardening/test_load.py,
test_shutdown.py until they import from the harness (then delete this file)."""

from tests.harness.media import MediaServer

__all__ = ["MediaServer"]

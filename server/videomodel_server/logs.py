"""Structured logs: one JSON object per line, with the request id and reason codes, never payloads.

Fields come from ``extra=`` on the logging call; only scalar and small dict values of the known
keys are kept, so a careless call cannot dump a request body into the log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_FIELDS = (
    "request_id",
    "status",
    "stage",
    "code",
    "reason",
    "timings_ms",
    "prompt_tokens",
    "completion_tokens",
    "model",
    "route",
    "method",
    "duration_ms",
    "host",
    "port",
    "detail",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for this package's loggers (vLLM keeps its own format)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("videomodel_server")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

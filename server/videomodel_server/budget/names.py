"""The names one settings field goes by: its CLI flag, its CR key, and both in messages.

Derived from the Python field name, never written by hand, so a message, a flag and a CR key
cannot disagree.
"""

from __future__ import annotations


def flag(name: str) -> str:
    """The CLI flag of a settings field: ``max_seconds`` -> ``--max-seconds``."""
    return "--" + name.replace("_", "-")


def cr_key(name: str) -> str:
    """The CR key of a budget field: ``max_seconds`` -> ``maxSeconds``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def label(name: str) -> str:
    """How messages name a budget field for both audiences: ``maxSeconds (--max-seconds)``."""
    return f"{cr_key(name)} ({flag(name)})"

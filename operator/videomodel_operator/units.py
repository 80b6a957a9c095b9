"""Kubernetes-style quantities and bandwidths: parse what users write, print what the API keeps.

Pure functions. Parsing accepts the forms users write in a CR (``256Mi``, ``1G``, ``4Mi``
bytes per second, ``32Mbit``); formatting prints the *canonical* form the API server would
store (``12Gi``, not ``12288Mi``), so that comparing a rendered object with the live one does
not see a difference the server itself introduced.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

BINARY = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6}
DECIMAL = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$"
"""Non-negative byte quantities (no exponent form, no milli): what a CR may hold."""
BANDWIDTH_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|k|K|M|G)?(bit|bps|B|Bps)?$"
"""``4Mi`` / ``4MiB`` style bytes per second, or ``32Mbit`` / ``32Mbps`` bits per second."""

_QUANTITY = re.compile(QUANTITY_PATTERN)
_BANDWIDTH = re.compile(BANDWIDTH_PATTERN)


class QuantityError(ValueError):
    """A quantity string that is not a valid byte count or bandwidth."""


def _number(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regexes rule this out
        raise QuantityError(f"not a number: {text!r}") from exc


def parse_bytes(value: int | str) -> int:
    """Bytes from ``268435456`` or ``"256Mi"`` / ``"1G"``; fractions round up to a whole byte."""
    if isinstance(value, bool):
        raise QuantityError("a byte quantity cannot be a boolean")
    if isinstance(value, int):
        if value < 0:
            raise QuantityError(f"a byte quantity cannot be negative (got {value})")
        return value
    match = _QUANTITY.match(value.strip())
    if not match:
        raise QuantityError(f"{value!r} is not a byte quantity such as 268435456, 256Mi or 1G")
    suffix = match.group(2) or ""
    number = _number(value.strip()[: len(value.strip()) - len(suffix)])
    scale = BINARY.get(suffix) or DECIMAL[suffix]
    return math.ceil(number * scale)


def parse_bandwidth(value: int | float | str) -> float:
    """Bytes per second from a number, ``"4Mi"`` (bytes/s) or ``"32Mbit"`` / ``"32Mbps"`` (bits/s)."""
    if isinstance(value, bool):
        raise QuantityError("a bandwidth cannot be a boolean")
    if isinstance(value, int | float):
        if value <= 0:
            raise QuantityError(f"a bandwidth must be positive (got {value})")
        return float(value)
    text = value.strip()
    match = _BANDWIDTH.match(text)
    if not match:
        raise QuantityError(f"{value!r} is not a bandwidth such as 4Mi (bytes/s) or 32Mbit (bits/s)")
    prefix, unit = match.group(2) or "", match.group(3) or ""
    number = _number(text[: len(text) - len(prefix) - len(unit)])
    scale = BINARY.get(prefix) or DECIMAL[prefix]
    result = float(number * scale)
    if unit in ("bit", "bps"):
        result /= 8
    if result <= 0:
        raise QuantityError(f"a bandwidth must be positive (got {value!r})")
    return result


def format_bytes(value: int) -> str:
    """The canonical form the API server stores: binary SI with the largest exact suffix (``12Gi``)
    when the value is a multiple of 1 Ki, otherwise decimal SI (``1500k``)."""
    if value < 0:
        raise QuantityError(f"a byte quantity cannot be negative (got {value})")
    for suffix, scale in sorted(BINARY.items(), key=lambda item: -item[1]):
        if value and value % scale == 0:
            return f"{value // scale}{suffix}"
    return format_decimal_milli(value * 1000)


_DECIMAL_CANONICAL = (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def format_decimal_milli(milli: int) -> str:
    """Canonical decimal-SI text of ``milli``/1000: ``"4"``, ``"1500m"``, ``"4k"``, ``"32G"``."""
    if milli % 1000:
        return f"{milli}m"
    whole = milli // 1000
    for suffix, scale in _DECIMAL_CANONICAL:
        if whole and whole % scale == 0:
            return f"{whole // scale}{suffix}"
    return str(whole)


def round_up_mib(value: float) -> int:
    """Round bytes up to a whole MiB, so formatted sizes stay short and canonical."""
    mib = 1024**2
    return int(math.ceil(value / mib) * mib)


def format_cpu(millicores: int) -> str:
    """Canonical CPU: whole cores as ``"3"``, otherwise millicores ``"1500m"``."""
    return format_decimal_milli(millicores)


def parse_cpu(value: int | float | str) -> int:
    """Millicores from ``2``, ``0.5`` or ``"1500m"``."""
    if isinstance(value, bool):
        raise QuantityError("a CPU quantity cannot be a boolean")
    if isinstance(value, int | float):
        return math.ceil(Decimal(str(value)) * 1000)
    text = value.strip()
    if re.fullmatch(r"[0-9]+m", text):
        return int(text[:-1])
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return math.ceil(Decimal(text) * 1000)
    raise QuantityError(f"{value!r} is not a CPU quantity such as 2, 0.5 or 1500m")

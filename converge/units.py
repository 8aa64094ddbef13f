"""Parsing and formatting of the spec's units: durations, memory sizes and CPU counts.

The engine speaks nanoseconds, bytes and nano-CPUs; users write ``1m30s``, ``512M`` and ``0.5``.
Parsed values are kept in engine units so that both sides of a diff compare as plain integers.
"""

from __future__ import annotations

import re

__all__ = [
    "format_cpus",
    "format_duration",
    "format_memory",
    "parse_cpus",
    "parse_duration",
    "parse_memory",
]

_NANOS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3_600 * 1_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")

_BYTES_PER_UNIT = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")

MAX_CPUS = 4096
_INT64_MAX = 2**63 - 1  # the engine keeps durations and sizes in int64


def _engine_int(amount: float, value: object, what: str) -> int:
    """``round(amount)``, refusing NaN, infinities and values the engine cannot hold."""
    if amount != amount or not -_INT64_MAX <= amount <= _INT64_MAX:  # NaN differs from itself
        raise ValueError(f"{what} {value!r} is out of range")
    return round(amount)


def parse_duration(value: object) -> int:
    """Parse ``10s``, ``1m30s``, ``250ms`` or a number of seconds into nanoseconds.

    Raises:
        ValueError: the value is not a non-negative duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 10s or 1m30s, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return _engine_int(value * 1_000_000_000, value, "duration")
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 10s or 1m30s, got {value!r}")
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return _engine_int(float(text) * 1_000_000_000, value, "duration")
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _NANOS_PER_UNIT[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"expected a duration such as 10s, 1m30s or 500ms, got {value!r}")
    return _engine_int(total, value, "duration")


def format_duration(nanoseconds: int) -> str:
    """Format nanoseconds the way a user writes them: ``1m30s``, ``500ms``, ``0s``."""
    if nanoseconds == 0:
        return "0s"
    parts: list[str] = []
    remaining = nanoseconds
    for unit in ("h", "m", "s", "ms", "us", "ns"):
        size = _NANOS_PER_UNIT[unit]
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_memory(value: object) -> int:
    """Parse ``512M``, ``1g``, ``64MiB`` or a number of bytes into bytes (binary multiples).

    Raises:
        ValueError: the value is not a non-negative size.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 512M or 1G, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value!r}")
        return _engine_int(value, value, "size")
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 512M or 1G, got {value!r}")
    match = _MEMORY.fullmatch(value.strip().lower())
    if match is None or match.group(2) not in _BYTES_PER_UNIT:
        raise ValueError(f"expected a size such as 512M, 1G or 64MiB, got {value!r}")
    return _engine_int(float(match.group(1)) * _BYTES_PER_UNIT[match.group(2)], value, "size")


def format_memory(size: int) -> str:
    """Format bytes with the largest binary unit that divides them: ``512M``, ``1G``."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def parse_cpus(value: object) -> int:
    """Parse a CPU count (``0.5``, ``"2"``) into nano-CPUs, the engine's unit.

    Raises:
        ValueError: the value is not a positive number of CPUs.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a number of CPUs such as 0.5, got {value!r}")
    try:
        cpus = float(value) if isinstance(value, int | float | str) else float("nan")
    except ValueError:
        cpus = float("nan")
    if not 0 < cpus <= MAX_CPUS:
        raise ValueError(f"expected a number of CPUs between 0 and {MAX_CPUS}, got {value!r}")
    return round(cpus * 1_000_000_000)


def format_cpus(nano_cpus: int) -> str:
    """Format nano-CPUs as a CPU count: ``0.5``, ``2``."""
    return f"{nano_cpus / 1_000_000_000:g}"

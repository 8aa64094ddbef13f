"""Durations, memory sizes and CPU counts: what users write -> engine units, and back."""

from __future__ import annotations

import re

import pytest

from converge.units import (
    format_cpus,
    format_duration,
    format_memory,
    parse_cpus,
    parse_duration,
    parse_memory,
)

SECOND = 1_000_000_000
MIB = 1024**2


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("10s", 10 * SECOND),
        ("1m30s", 90 * SECOND),
        ("500ms", SECOND // 2),
        ("1h", 3600 * SECOND),
        ("1h2m3s", 3723 * SECOND),
        ("1.5s", 3 * SECOND // 2),
        ("1.5h", 5400 * SECOND),
        ("250us", 250_000),
        ("250µs", 250_000),
        ("7ns", 7),
        ("0s", 0),
        (" 10s ", 10 * SECOND),
        ("10", 10 * SECOND),
        ("2.5", 5 * SECOND // 2),
        (10, 10 * SECOND),
        (0, 0),
        (0.25, SECOND // 4),
    ],
)
def test_parse_duration(text: object, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10 seconds", "expected a duration such as 10s, 1m30s or 500ms, got '10 seconds'"),
        ("", "expected a duration such as 10s, 1m30s or 500ms, got ''"),
        ("s", "expected a duration such as 10s, 1m30s or 500ms, got 's'"),
        ("1d", "expected a duration such as 10s, 1m30s or 500ms, got '1d'"),
        ("-1s", "expected a duration such as 10s, 1m30s or 500ms, got '-1s'"),
        ("1m 30s", "expected a duration such as 10s, 1m30s or 500ms, got '1m 30s'"),
        (-1, "a duration cannot be negative, got -1"),
        (True, "expected a duration such as 10s or 1m30s, got True"),
        (None, "expected a duration such as 10s or 1m30s, got None"),
        ([10], "expected a duration such as 10s or 1m30s, got [10]"),
        (float("inf"), "duration inf is out of range"),
        (float("nan"), "duration nan is out of range"),
        ("9" * 30 + "h", "duration '" + "9" * 30 + "h' is out of range"),
    ],
)
def test_parse_duration_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_duration(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (10 * SECOND, "10s"),
        (90 * SECOND, "1m30s"),
        (SECOND // 2, "500ms"),
        (3723 * SECOND, "1h2m3s"),
        (SECOND + 1, "1s1ns"),
        (250_000, "250us"),
    ],
)
def test_format_duration(nanoseconds: int, text: str) -> None:
    assert format_duration(nanoseconds) == text
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512M", 512 * MIB),
        ("512m", 512 * MIB),
        ("512MB", 512 * MIB),
        ("512MiB", 512 * MIB),
        ("1GiB", 1024 * MIB),
        ("1G", 1024 * MIB),
        ("1.5G", 1536 * MIB),
        ("64k", 64 * 1024),
        ("2T", 2 * 1024**4),
        ("100b", 100),
        ("100", 100),
        ("64 MiB", 64 * MIB),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_memory(text: object, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("512X", "expected a size such as 512M, 1G or 64MiB, got '512X'"),
        ("lots", "expected a size such as 512M, 1G or 64MiB, got 'lots'"),
        ("-1M", "expected a size such as 512M, 1G or 64MiB, got '-1M'"),
        ("", "expected a size such as 512M, 1G or 64MiB, got ''"),
        (-1, "a size cannot be negative, got -1"),
        (1.5, "expected a size such as 512M or 1G, got 1.5"),
        (False, "expected a size such as 512M or 1G, got False"),
        (2**64, f"size {2**64} is out of range"),
    ],
)
def test_parse_memory_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_memory(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("size", "text"),
    [(512 * MIB, "512M"), (1024 * MIB, "1G"), (64 * 1024, "64K"), (100, "100B"), (0, "0B")],
)
def test_format_memory(size: int, text: str) -> None:
    assert format_memory(size) == text
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    ("value", "nano_cpus"),
    [
        (0.5, 500_000_000),
        ("0.5", 500_000_000),
        (2, 2_000_000_000),
        ("2", 2_000_000_000),
        (0.001, 1_000_000),
        (4096, 4096_000_000_000),
    ],
)
def test_parse_cpus(value: object, nano_cpus: int) -> None:
    assert parse_cpus(value) == nano_cpus


@pytest.mark.parametrize("value", [0, -1, "half", "", 4097, True, None, "nan", "inf", [1]])
def test_parse_cpus_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="number of CPUs"):
        parse_cpus(value)


@pytest.mark.parametrize(("nano_cpus", "text"), [(500_000_000, "0.5"), (2_000_000_000, "2")])
def test_format_cpus(nano_cpus: int, text: str) -> None:
    assert format_cpus(nano_cpus) == text
    assert parse_cpus(text) == nano_cpus

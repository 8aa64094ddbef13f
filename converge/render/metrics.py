"""Drift reports as Prometheus metrics, for node_exporter's textfile collector.

Gauges in a registry of their own, in the text exposition format (version 0.0.4) of
``prometheus_client``, written atomically (``converge.files.atomic_write``) so the collector
never reads half a file: its temporary name does not end in ``.prom``, so the collector ignores
it. Every series carries a ``stack`` label, so several stacks can write files side by side in
one textfile directory. No decisions here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from converge.errors import ConvergeError
from converge.files import atomic_write

if TYPE_CHECKING:
    # Types only: the renderer reads the report, it needs nothing else of converge.drift.
    from converge.drift import DriftReport

__all__ = ["failure_metrics", "report_metrics", "write_metrics"]

# One metric family: its name, its label names, and its samples (label values in that order).
Family = tuple[str, tuple[str, ...], list[tuple[tuple[str, ...], float]]]

_HELP = {
    "converge_drift_check_success": (
        "1 when the last drift check observed the swarm, 0 when it failed (bad spec, engine "
        "unreachable)."
    ),
    "converge_drift_last_check_timestamp_seconds": "When the last drift check ran (Unix time).",
    "converge_drift_check_duration_seconds": "How long the last drift check took.",
    "converge_drift_findings": "Drift findings of the last check, by kind (sync or health).",
    "converge_drift_in_sync": "1 when the swarm matches the spec, else 0.",
    "converge_drift_healthy": "1 when every service and node of the stack is healthy, else 0.",
    "converge_drift_services_unhealthy": "Services of the stack with a health finding.",
    "converge_drift_nodes_not_ready": "Swarm nodes that are down or not ready.",
    "converge_service_in_sync": "1 when the service matches the spec, else 0.",
    "converge_service_healthy": "1 when the service runs as desired, else 0.",
    "converge_service_running_tasks": "Tasks of the service running on ready nodes.",
    "converge_service_desired_tasks": "Tasks the service should run.",
}
_PER_SERVICE = [name for name in _HELP if name.startswith("converge_service_")]


def _exposition(families: Iterable[Family]) -> str:
    # Imported here: prometheus_client is not needed by any command but drift.
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    for name, labelnames, samples in families:
        gauge = Gauge(name, _HELP[name], labelnames, registry=registry)
        for values, value in samples:
            (gauge.labels(*values) if labelnames else gauge).set(value)
    return generate_latest(registry).decode("utf-8")


def report_metrics(report: DriftReport) -> str:
    """The metrics of one successful drift check."""
    stack = (report.stack,)
    families: list[Family] = [
        ("converge_drift_check_success", ("stack",), [(stack, 1)]),
        (
            "converge_drift_last_check_timestamp_seconds",
            ("stack",),
            [(stack, report.checked_at.timestamp())],
        ),
        ("converge_drift_check_duration_seconds", ("stack",), [(stack, round(report.duration, 3))]),
        (
            "converge_drift_findings",
            ("stack", "kind"),
            [
                ((report.stack, "sync"), len(report.sync_findings)),
                ((report.stack, "health"), len(report.health_findings)),
            ],
        ),
        ("converge_drift_in_sync", ("stack",), [(stack, int(report.in_sync))]),
        ("converge_drift_healthy", ("stack",), [(stack, int(report.healthy))]),
        ("converge_drift_services_unhealthy", ("stack",), [(stack, report.services_unhealthy)]),
        ("converge_drift_nodes_not_ready", ("stack",), [(stack, len(report.nodes_not_ready))]),
    ]
    per_service: list[Family] = [(name, ("stack", "service"), []) for name in _PER_SERVICE]
    for service in report.services:
        values = (int(service.in_sync), int(service.healthy), service.running, service.desired)
        for (_, _, samples), value in zip(per_service, values, strict=True):
            samples.append(((report.stack, service.key), value))
    return _exposition(families + per_service)


def failure_metrics(stack: str | None, checked_at: datetime, duration: float) -> str:
    """The metrics of a drift check that failed: success 0, when, and how long it took.

    Args:
        stack: None when the spec could not be read: the series then carry no label.
    """
    labelnames, values = (("stack",), (stack,)) if stack else ((), ())
    return _exposition(
        [
            ("converge_drift_check_success", labelnames, [(values, 0)]),
            (
                "converge_drift_last_check_timestamp_seconds",
                labelnames,
                [(values, checked_at.timestamp())],
            ),
            ("converge_drift_check_duration_seconds", labelnames, [(values, round(duration, 3))]),
        ]
    )


def write_metrics(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by all (the collector may run as another
    user).

    Raises:
        ConvergeError: the directory is missing or not writable.
    """
    try:
        atomic_write(path, text, mode=0o644)
    except OSError as error:
        raise ConvergeError(f"cannot write the metrics file {Path(path)}: {error}") from None

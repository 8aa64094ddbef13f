"""Drift reports as Prometheus metrics, for node_exporter's textfile collector.

The text exposition format (version 0.0.4), written atomically: a temporary file in the same
directory, then a rename, so the collector never reads half a file. The temporary name does not
end in ``.prom``, so the collector ignores it. Every series carries a ``stack`` label, so
several stacks can write files side by side in one textfile directory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from converge.drift import DriftReport
from converge.errors import ConvergeError

__all__ = ["failure_metrics", "report_metrics", "write_metrics"]

Sample = tuple[dict[str, str], float]

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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _family(name: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        shown = ",".join(f'{key}="{_escape(item)}"' for key, item in labels.items())
        lines.append(
            f"{name}{{{shown}}} {_format_number(value)}"
            if shown
            else f"{name} {_format_number(value)}"
        )
    return lines


def report_metrics(report: DriftReport) -> str:
    """The metrics of one successful drift check."""
    stack = {"stack": report.stack}
    families: list[tuple[str, list[Sample]]] = [
        ("converge_drift_check_success", [(stack, 1)]),
        ("converge_drift_last_check_timestamp_seconds", [(stack, report.checked_at.timestamp())]),
        ("converge_drift_check_duration_seconds", [(stack, round(report.duration, 3))]),
        (
            "converge_drift_findings",
            [
                ({**stack, "kind": "sync"}, len(report.sync_findings)),
                ({**stack, "kind": "health"}, len(report.health_findings)),
            ],
        ),
        ("converge_drift_in_sync", [(stack, int(report.in_sync))]),
        ("converge_drift_healthy", [(stack, int(report.healthy))]),
        ("converge_drift_services_unhealthy", [(stack, report.services_unhealthy)]),
        ("converge_drift_nodes_not_ready", [(stack, len(report.nodes_not_ready))]),
    ]
    per_service: list[tuple[str, list[Sample]]] = [
        (name, []) for name in _HELP if name.startswith("converge_service_")
    ]
    for service in report.services:
        labels = {**stack, "service": service.key}
        values = (int(service.in_sync), int(service.healthy), service.running, service.desired)
        for (_, samples), value in zip(per_service, values, strict=True):
            samples.append((labels, value))
    lines: list[str] = []
    for name, samples in families + per_service:
        lines += _family(name, samples)
    return "\n".join(lines) + "\n"


def failure_metrics(stack: str | None, checked_at: datetime, duration: float) -> str:
    """The metrics of a drift check that failed: success 0, when, and how long it took."""
    labels = {"stack": stack} if stack else {}
    lines = [
        *_family("converge_drift_check_success", [(labels, 0)]),
        *_family("converge_drift_last_check_timestamp_seconds", [(labels, checked_at.timestamp())]),
        *_family("converge_drift_check_duration_seconds", [(labels, round(duration, 3))]),
    ]
    return "\n".join(lines) + "\n"


def write_metrics(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same directory, rename).

    Raises:
        ConvergeError: the directory is missing or not writable.
    """
    target = Path(path)
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as error:
        raise ConvergeError(f"cannot write the metrics file {target}: {error}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # the collector may run as another user
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

"""Renderers for ``converge status``: text and JSON, from the report ``stack_status`` returns.

No decisions here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.markup import escape

from converge.loader import LoadedSpec
from converge.masking import Masker
from converge.version import converge_version

__all__ = [
    "STATUS_FORMAT_VERSION",
    "masked_status",
    "status_document",
    "status_json",
    "status_text",
]

STATUS_FORMAT_VERSION = "1.3"
"""1.1: ``lock``, the stack's apply lock when one is held; 1.2: ``job`` and ``completed``;
1.3: ``rollouts`` in progress."""


def masked_status(report: Mapping[str, Any], loaded: LoadedSpec | None) -> dict[str, Any]:
    """The status document with the spec's secrets scrubbed from task errors and failures."""
    masker = Masker(loaded)
    services = []
    for service in report["services"]:
        shown = dict(service)
        shown["errors"] = [masker.text(str(error)) for error in service.get("errors", [])]
        if service.get("failure"):
            shown["failure"] = masker.text(str(service["failure"]))
        services.append(shown)
    return {**report, "services": services}


def status_text(report: Mapping[str, Any], loaded: LoadedSpec | None = None) -> str:
    """Per service: counts, update state, placement and last errors, with rich markup.

    Empty when the stack has no service and the spec declares nothing missing.

    Args:
        loaded: the spec whose secrets are scrubbed from task errors.
    """
    report = masked_status(report, loaded)
    lines: list[str] = []
    for service in report["services"]:
        if service["converged"]:
            mark = "[green]ok[/green]"
        elif service["failure"]:
            mark = "[red]failed[/red]"
        else:
            mark = "[yellow]not converged[/yellow]"
        state = f", update {escape(service['update_state'])}" if service["update_state"] else ""
        counts = f"{service['running']}/{service['desired']} running"
        if service.get("job"):
            counts = f"job, {service['completed']}/{service['desired']} completed"
        lines.append(f"[bold]{escape(service['name'])}[/bold] {counts}{state} {mark}")
        placement = ", ".join(f"{node}={count}" for node, count in service["placement"].items())
        if service["failure"]:
            lines.append(f"  [red]failure:[/red] {escape(service['failure'])}")
        lines.append(f"  placement: {escape(placement or '(no running tasks)')}")
        lines.extend(f"  [red]error[/red] {escape(error)}" for error in service["errors"])
    lines.extend(
        f"[yellow]{escape(missing)}: declared in the spec, not in the swarm[/yellow]"
        for missing in report["missing"]
    )
    lines.extend(
        f"[yellow]{escape(rollout['message'])} ({rollout['running']}/{rollout['desired']} "
        "running)[/yellow]"
        for rollout in report.get("rollouts", [])
    )
    lock = report.get("lock")
    if lock:
        style = "yellow" if lock["state"] == "live" else "red"
        lines.append(f"[{style}]{escape(lock['message'])}[/{style}]")
    return "\n".join(lines)


def status_document(report: Mapping[str, Any], loaded: LoadedSpec | None = None) -> dict[str, Any]:
    """The report as a JSON-ready document (``format_version`` first;
    docs/schemas/status.schema.json), task errors scrubbed of the spec's secrets."""
    return {
        "format_version": STATUS_FORMAT_VERSION,
        "converge_version": converge_version(),
        **masked_status(report, loaded),
    }


def status_json(report: Mapping[str, Any], loaded: LoadedSpec | None = None) -> str:
    """``status_document`` as indented JSON."""
    return json.dumps(status_document(report, loaded), indent=2)

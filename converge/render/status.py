"""Renderers for ``converge status``: text and JSON, from the document ``stack_status`` returns.

No decisions here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.markup import escape

__all__ = ["status_json", "status_text"]


def status_text(report: Mapping[str, Any]) -> str:
    """Per service: counts, update state, placement and last errors, with rich markup.

    Empty when the stack has no service and the spec declares nothing missing.
    """
    lines: list[str] = []
    for service in report["services"]:
        mark = "[green]ok[/green]" if service["converged"] else "[yellow]not converged[/yellow]"
        state = f", update {escape(service['update_state'])}" if service["update_state"] else ""
        lines.append(
            f"[bold]{escape(service['name'])}[/bold] {service['running']}/{service['desired']} "
            f"running{state} {mark}"
        )
        placement = ", ".join(f"{node}={count}" for node, count in service["placement"].items())
        lines.append(f"  placement: {escape(placement or '(no running tasks)')}")
        lines.extend(f"  [red]error[/red] {escape(error)}" for error in service["errors"])
    lines.extend(
        f"[yellow]{escape(missing)}: declared in the spec, not in the swarm[/yellow]"
        for missing in report["missing"]
    )
    lock = report.get("lock")
    if lock:
        style = "yellow" if lock["state"] == "live" else "red"
        lines.append(f"[{style}]{escape(lock['message'])}[/{style}]")
    return "\n".join(lines)


def status_json(report: Mapping[str, Any]) -> str:
    """The status document as indented JSON."""
    return json.dumps(report, indent=2)

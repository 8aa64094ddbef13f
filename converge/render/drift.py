"""Renderers for drift reports: text, versioned JSON and Markdown. No decisions here.

The report comes with its secrets already masked (``converge.drift`` builds it so).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from converge.render._markdown import markdown_cell
from converge.version import converge_version

if TYPE_CHECKING:
    # Types only: the renderer reads the report, it needs nothing else of converge.drift.
    from converge.drift import DriftFinding, DriftReport

__all__ = [
    "DRIFT_FORMAT_VERSION",
    "report_document",
    "report_json",
    "report_markdown",
    "report_text",
    "status_line",
]

DRIFT_FORMAT_VERSION = "1.0"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def report_document(report: DriftReport) -> dict[str, Any]:
    """The report as a JSON-ready document (``format_version`` first;
    docs/schemas/drift.schema.json)."""
    return {
        "format_version": DRIFT_FORMAT_VERSION,
        "converge_version": converge_version(),
        "checked_at": _timestamp(report.checked_at),
        "duration_seconds": round(report.duration, 3),
        "stack": report.stack,
        "spec": {
            "files": list(report.spec.files),
            "digest": report.spec.digest,
            "git_commit": report.spec.git_commit,
            "git_dirty": report.spec.git_dirty,
        },
        "in_sync": report.in_sync,
        "healthy": report.healthy,
        "summary": {
            "sync": len(report.sync_findings),
            "health": len(report.health_findings),
            "services_unhealthy": report.services_unhealthy,
            "nodes_not_ready": len(report.nodes_not_ready),
        },
        "findings": [_finding_json(finding) for finding in report.findings],
        "services": [
            {
                "key": service.key,
                "name": service.name,
                "in_sync": service.in_sync,
                "healthy": service.healthy,
                "running": service.running,
                "desired": service.desired,
                "update_state": service.update_state,
            }
            for service in report.services
        ],
        "nodes_not_ready": list(report.nodes_not_ready),
        "notes": list(report.notes),
    }


def _finding_json(finding: DriftFinding) -> dict[str, Any]:
    document: dict[str, Any] = {
        "kind": finding.kind,
        "address": finding.address,
        "name": finding.name,
        "field": finding.field,
        "message": finding.message,
    }
    if finding.kind == "sync":
        document.update(before=finding.before, after=finding.after, action=finding.action)
    return document


def report_json(report: DriftReport) -> str:
    """``report_document`` as indented JSON."""
    return json.dumps(report_document(report), indent=2, default=str)


def status_line(report: DriftReport) -> str:
    """``In sync and healthy.`` or what is wrong, in one line."""
    if report.in_sync and report.healthy:
        return "In sync and healthy: the swarm matches the spec."
    parts = []
    if not report.in_sync:
        objects = len({finding.address for finding in report.sync_findings})
        parts.append(
            f"{len(report.sync_findings)} difference{_s(len(report.sync_findings))} "
            f"in {objects} object{_s(objects)}"
        )
    if not report.healthy:
        parts.append(
            f"{len(report.health_findings)} health problem{_s(len(report.health_findings))}"
        )
    return "Drift: " + ", ".join(parts) + "."


# What apply would do about a sync finding, in the plan's symbols; x: it cannot (collision).
_SYMBOLS = {"create": "+", "remove": "-", "replace": "-/+", "collision": "x"}


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _identity_text(report: DriftReport) -> str:
    spec = report.spec
    commit = ""
    if spec.git_commit:
        commit = f", git {spec.git_commit[:12]}" + (" (modified)" if spec.git_dirty else "")
    return f"{', '.join(spec.files)} (sha256 {spec.digest[:12]}{commit})"


def report_text(report: DriftReport) -> str:
    """Text with rich markup for colour (rich strips it when not on a terminal)."""
    lines = [
        f"converge drift: stack [bold]{escape(report.stack)}[/bold], "
        f"checked {_timestamp(report.checked_at)} in {report.duration:.2f}s",
        f"[dim]spec: {escape(_identity_text(report))}[/dim]",
        "",
    ]
    if report.sync_findings:
        lines.append("[bold]Out of sync[/bold] (the swarm differs from the spec):")
        lines.extend(
            f"  [yellow]{_SYMBOLS.get(finding.action or '', '~')}[/yellow] "
            f"{escape(f'{finding.address}: {finding.message}')}"
            for finding in report.sync_findings
        )
        lines.append("")
    if report.health_findings:
        lines.append("[bold]Unhealthy:[/bold]")
        lines.extend(
            f"  [red]![/red] {escape(f'{finding.address}: {finding.message}')}"
            for finding in report.health_findings
        )
        lines.append("")
    for note in report.notes:
        lines.append(f"[dim]plan {escape(note)}[/dim]")
    if report.notes:
        lines.append("")
    style = "green" if report.in_sync and report.healthy else "red"
    lines.append(f"[bold {style}]{status_line(report)}[/bold {style}]")
    return "\n".join(lines)


def report_markdown(report: DriftReport) -> str:
    """Markdown for an issue or a chat message: status first, then a table per kind."""
    icon = ":white_check_mark:" if report.in_sync and report.healthy else ":warning:"
    lines = [
        f"### converge drift for stack `{report.stack}`",
        "",
        f"{icon} **{status_line(report)}**",
        "",
        f"Checked {_timestamp(report.checked_at)}; spec {markdown_cell(_identity_text(report))}.",
        "",
    ]
    for title, findings in (
        ("Out of sync", report.sync_findings),
        ("Unhealthy", report.health_findings),
    ):
        if not findings:
            continue
        lines += [f"#### {title}", "", "| object | field | finding |", "|---|---|---|"]
        lines.extend(
            f"| `{finding.address}` | {f'`{finding.field}`' if finding.field else ''} "
            f"| {markdown_cell(finding.message)} |"
            for finding in findings
        )
        lines.append("")
    return "\n".join(lines)

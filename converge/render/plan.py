"""Renderers for plans: text (terraform-like), JSON (versioned) and Markdown. No decisions here.

Values that came from the environment as secrets are masked (``converge.masking``) on both
sides of every change.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape

from converge.actions import (
    ADOPT_NOTE,
    PLAN_FORMAT_VERSION,
    Action,
    Phase,
    Plan,
    PlanFinding,
    format_change,
    format_value,
)
from converge.diff import FieldChange
from converge.errors import PlanError
from converge.loader import LoadedSpec
from converge.masking import Masker
from converge.render._markdown import markdown_cell
from converge.version import converge_version

__all__ = [
    "plan_document",
    "plan_from_document",
    "plan_json",
    "plan_markdown",
    "plan_text",
    "summary_line",
    "targeting_warning",
]

_STYLE = {"+": "green", "~": "yellow", "-": "red", "-/+": "magenta"}


def summary_line(plan: Plan) -> str:
    """Terraform's closing line: ``Plan: 1 to add, 2 to change, 0 to destroy.``

    A plan with errors says so instead: it can be applied in no form.
    """
    errors = len(plan.errors)
    if errors:
        return f"The plan has {errors} error{'' if errors == 1 else 's'}: nothing can be applied."
    if not plan.has_changes:
        return "No changes. The swarm matches the spec."
    counts = plan.counts()
    return (
        f"Plan: {counts['add']} to add, {counts['change']} to change, "
        f"{counts['destroy']} to destroy."
    )


def targeting_warning(targets: Sequence[str]) -> str:
    """Terraform's warning for ``--target``: a plan limited so is not the whole spec's."""
    return (
        f"resource targeting is in effect ({', '.join(targets)}): the plan may not include "
        "every change the spec asks for. --target is for exceptional situations, such as "
        "recovering from errors or mistakes, not for routine use."
    )


def _change_symbol(change: FieldChange) -> str:
    if change.before is None:
        return "+"
    if change.after is None:
        return "-"
    return "~"


def plan_text(plan: Plan, loaded: LoadedSpec | None = None) -> str:
    """Terraform-like text, with rich markup for colour (strip it when not on a TTY)."""
    masker = Masker(loaded, plan)
    lines: list[str] = []
    if plan.actions:
        stack = escape(plan.stack)
        lines.append(f"converge will perform these actions on stack [bold]{stack}[/bold]:")
        lines.append("")
    for action in plan.actions:
        style = _STYLE[action.symbol]
        if action.object_kind in ("secret", "config"):
            # One line says it all (never a value): + secret db_password (...): new version
            what = action.description.removeprefix(f"{action.symbol} ")
            lines.extend([f"  [{style}]{action.symbol}[/{style}] {escape(what)}", ""])
            continue
        lines.append(f"  [dim]# {escape(f'{action.address}: {action.reason}')}[/dim]")
        if action.waits_for and plan.waves:
            after = f"wave {action.wave}, after {', '.join(action.waits_for)}"
            lines.append(f"  [dim]# {escape(after)}[/dim]")
        forced = ""
        if action.forced_by:
            forced = f" [dim]({escape('forced by ' + ', '.join(action.forced_by))})[/dim]"
        adopting = f": {escape(ADOPT_NOTE)}" if action.kind == "adopt" else ""
        lines.append(
            f"  [{style}]{action.symbol}[/{style}] {action.object_kind} "
            f"[bold]{escape(action.name)}[/bold]{adopting}{forced}"
        )
        for change in action.changes:
            shown = masker.change(action, change)
            symbol = _change_symbol(shown)
            change_style = _STYLE[symbol]
            if _is_config_text(action, shown):
                lines.append(
                    f"      [{change_style}]{symbol}[/{change_style}] {escape(shown.field)}:"
                )
                lines.extend(f"          {_styled_diff_line(line)}" for line in _text_diff(shown))
                continue
            if action.kind == "create":
                text = f"{shown.field} = {format_value(shown.path, shown.after)}"
            else:
                text = format_change(shown)
            lines.append(f"      [{change_style}]{symbol}[/{change_style}] {escape(text)}")
        lines.append("")
    order = waves_lines(plan)
    if order:
        lines.extend(escape(line) for line in order)
        lines.append("")
    if plan.graph_changes:
        lines.append(GRAPH_CHANGED if plan.graph_recorded else GRAPH_NEW)
        lines.extend(f"  {escape(line)}" for line in plan.graph_changes)
        lines.append("")
    for finding in plan.findings:
        style = "red" if finding.severity == "error" else "yellow"
        label = finding.severity.capitalize()
        message = escape(masker.text(finding.message))
        lines.append(f"[{style}]{label}:[/{style}] {escape(finding.address)}: {message}")
    if plan.findings:
        lines.append("")
    lines.append(f"[bold]{summary_line(plan)}[/bold]")
    return "\n".join(lines)


def _change_json(masker: Masker, action: Action, change: FieldChange) -> dict[str, Any]:
    shown = masker.change(action, change)
    return {
        "field": shown.field,
        "path": list(shown.path),
        "before": shown.before,
        "after": shown.after,
    }


def plan_document(plan: Plan, loaded: LoadedSpec | None = None) -> dict[str, Any]:
    """The plan as a JSON-ready document (``format_version`` first; docs/schemas/plan.schema.json).

    ``spec.digest`` is the plan's ``spec_digest``: ``converge.api.resolved_spec_hash``.
    """
    masker = Masker(loaded, plan)
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "converge_version": converge_version(),
        "stack": plan.stack,
        "spec": {"files": list(plan.spec_files), "digest": plan.spec_digest},
        "changes": plan.has_changes,
        "summary": plan.counts(),
        "actions": [
            {
                "address": action.address,
                "phase": action.phase.name.lower(),
                "kind": action.kind,
                "symbol": action.symbol,
                "object_kind": action.object_kind,
                "key": action.key,
                "name": action.name,
                "description": masker.text(masker.action(action).description),
                "reason": action.reason,
                "forced_by": list(action.forced_by),
                "wave": action.wave,
                "waits_for": list(action.waits_for),
                "changes": [_change_json(masker, action, change) for change in action.changes],
                "observed": {"id": action.observed_id, "version": action.observed_version},
            }
            for action in plan.actions
        ],
        "findings": [
            {
                "severity": finding.severity,
                "address": finding.address,
                "message": masker.text(finding.message),
            }
            for finding in plan.findings
        ],
        "versions": dict(sorted(plan.versions.items())),
        "graph_changes": list(plan.graph_changes),
        "graph_recorded": plan.graph_recorded,
    }


def plan_from_document(document: Mapping[str, Any]) -> Plan:
    """The plan a ``plan_document`` describes (a saved plan), for rendering it again.

    Its values are the document's, masked when it was written.

    Raises:
        PlanError: the document lacks what a plan document has.
    """
    try:
        actions = tuple(
            Action(
                phase=Phase[str(item["phase"]).upper()],
                kind=item["kind"],
                object_kind=item["object_kind"],
                key=item["key"],
                name=item["name"],
                reason=item["reason"],
                changes=tuple(
                    FieldChange(tuple(change["path"]), change["before"], change["after"])
                    for change in item["changes"]
                ),
                forced_by=tuple(item["forced_by"]),
                observed_id=item["observed"]["id"],
                observed_version=item["observed"]["version"],
                wave=int(item.get("wave", 0)),
                waits_for=tuple(item.get("waits_for", ())),
            )
            for item in document["actions"]
        )
        findings = tuple(
            PlanFinding(item["severity"], item["address"], item["message"])
            for item in document["findings"]
        )
        return Plan(
            stack=document["stack"],
            actions=actions,
            findings=findings,
            versions=dict(document.get("versions") or {}),
            spec_digest=(document.get("spec") or {}).get("digest", ""),
            spec_files=tuple((document.get("spec") or {}).get("files", ())),
            graph_changes=tuple(document.get("graph_changes") or ()),
            graph_recorded=bool(document.get("graph_recorded", True)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PlanError(f"not a plan document: missing or malformed {error}") from None


GRAPH_CHANGED = "The dependency graph (depends_on) changed since the last apply:"
GRAPH_NEW = "The dependency graph (depends_on) is new: no earlier apply recorded one:"


def waves_lines(plan: Plan) -> list[str]:
    """The services phase's order, one line per wave, when ``depends_on`` orders it::

        Services in 3 waves (depends_on), each once the one before reached its condition:
          wave 1: db
          wave 2: seed (after db (healthy))
          wave 3: web (after seed (completed successfully))

    Nothing for a plan of one wave.
    """
    services = [action for action in plan.actions if action.wave]
    count = plan.waves
    if count < 2:
        return []  # each action's own lines say what it waits for
    lines = [
        f"Services in {count} wave{'' if count == 1 else 's'} (depends_on), each once the "
        "one before reached its condition:"
    ]
    for wave in range(1, count + 1):
        members = [
            action.key + (f" (after {', '.join(action.waits_for)})" if action.waits_for else "")
            for action in services
            if action.wave == wave
        ]
        if members:
            lines.append(f"  wave {wave}: " + "; ".join(members))
    return lines


def plan_json(plan: Plan, loaded: LoadedSpec | None = None) -> str:
    """``plan_document`` as indented JSON."""
    return json.dumps(plan_document(plan, loaded), indent=2, default=str)


def plan_markdown(plan: Plan, loaded: LoadedSpec | None = None) -> str:
    """Markdown for a pull-request comment: summary first, one collapsible block per object."""
    masker = Masker(loaded, plan)
    lines = [f"### converge plan for stack `{plan.stack}`", "", f"**{summary_line(plan)}**", ""]
    errors = [finding for finding in plan.findings if finding.severity == "error"]
    warnings = [finding for finding in plan.findings if finding.severity == "warning"]
    for finding in errors:
        lines.append(f"> :x: **Error** `{finding.address}`: {masker.text(finding.message)}")
    for finding in warnings:
        lines.append(f"> :warning: **Warning** `{finding.address}`: {masker.text(finding.message)}")
    if errors or warnings:
        lines.append("")
    order = waves_lines(plan)
    if order:
        lines.append(order[0])
        lines.append("")
        lines.extend(f"- {markdown_cell(line.strip())}" for line in order[1:])
        lines.append("")
    if plan.graph_changes:
        lines.append(GRAPH_CHANGED if plan.graph_recorded else GRAPH_NEW)
        lines.append("")
        lines.extend(f"- {markdown_cell(line)}" for line in plan.graph_changes)
        lines.append("")
    if plan.actions:
        lines.append("| | object | change |")
        lines.append("|---|---|---|")
        for action in plan.actions:
            description = masker.text(masker.action(action).description).split(": ", 1)[-1]
            lines.append(
                f"| `{action.symbol}` | `{action.address}` | {markdown_cell(description)} |"
            )
        lines.append("")
    for action in plan.actions:
        if not action.changes:
            continue
        lines.append(
            f"<details><summary><code>{action.symbol} {action.address}</code> "
            f"({action.reason})</summary>"
        )
        lines.append("")
        lines.append("```diff")
        for change in action.changes:
            shown = masker.change(action, change)
            if _is_config_text(action, shown):
                lines.extend(_text_diff(shown))
                continue
            if shown.before is not None and action.kind != "create":
                lines.append(f"- {shown.field}: {format_value(shown.path, shown.before)}")
            if shown.after is not None:
                lines.append(f"+ {shown.field}: {format_value(shown.path, shown.after)}")
        lines.append("```")
        lines.append("")
        lines.append("</details>")
        lines.append("")
    return "\n".join(lines)


# A load balancer's rendered haproxy.cfg is shown as a unified diff, not as two long values.


def _is_config_text(action: Action, change: FieldChange) -> bool:
    return action.object_kind == "loadbalancer" and change.path == ("config",)


def _text_diff(change: FieldChange) -> list[str]:
    before = str(change.before or "").splitlines()
    after = str(change.after or "").splitlines()
    return list(
        difflib.unified_diff(
            before,
            after,
            "haproxy.cfg (running)" if change.before is not None else "/dev/null",
            "haproxy.cfg (rendered)",
            n=2,
            lineterm="",
        )
    )


def _styled_diff_line(line: str) -> str:
    text = escape(line)
    if line.startswith(("+++", "---")):
        return f"[bold]{text}[/bold]"
    if line.startswith("+"):
        return f"[green]{text}[/green]"
    if line.startswith("-"):
        return f"[red]{text}[/red]"
    if line.startswith("@@"):
        return f"[cyan]{text}[/cyan]"
    return text

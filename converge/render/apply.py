"""Renderers for apply's result: the JSON document and the closing summary line.

Both come from the plan that was applied and the executor's result. No decisions here. The
spec's secrets are masked (``converge.masking``) in descriptions and messages.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from converge.actions import Plan
from converge.masking import Masker
from converge.version import converge_version

if TYPE_CHECKING:
    # Types only: the executor imports the engine (docker), which fast commands must not load.
    from converge.executor import ApplyResult
    from converge.loader import LoadedSpec

__all__ = ["APPLY_FORMAT_VERSION", "apply_document", "apply_json", "apply_summary_line"]

APPLY_FORMAT_VERSION = "1.0"


def apply_document(result: ApplyResult, plan: Plan, loaded: LoadedSpec | None) -> dict[str, Any]:
    """The outcome of every action of ``plan`` as a JSON-ready document
    (docs/schemas/apply.schema.json).

    An action the executor did not report on (a later phase after a failure) is ``skipped``.

    Args:
        loaded: the spec applied, whose secrets are masked (without it: masked by name only).
    """
    masker = Masker(loaded, plan)
    outcomes = {outcome.address: outcome for outcome in result.outcomes}
    return {
        "format_version": APPLY_FORMAT_VERSION,
        "converge_version": converge_version(),
        "stack": result.stack,
        "ok": result.ok,
        "error": None if result.error is None else masker.text(result.error),
        "write_calls": result.write_calls,
        "actions": [
            {
                "address": action.address,
                "kind": action.kind,
                "description": masker.text(masker.action(action).description),
                "outcome": outcomes[action.address].outcome
                if action.address in outcomes
                else "skipped",
                "message": masker.text(outcomes[action.address].message)
                if action.address in outcomes
                else "",
            }
            for action in plan.actions
        ],
    }


def apply_json(result: ApplyResult, plan: Plan, loaded: LoadedSpec | None) -> str:
    """``apply_document`` as indented JSON."""
    return json.dumps(apply_document(result, plan, loaded), indent=2)


def apply_summary_line(plan: Plan, verb: str = "Apply") -> str:
    """``Apply complete! 1 added, 2 changed, 0 destroyed; ...`` with rich markup.

    Args:
        verb: ``Apply`` or ``Destroy``.
    """
    counts = plan.counts()
    return (
        f"[bold green]{verb} complete![/bold green] {counts['add']} added, "
        f"{counts['change']} changed, {counts['destroy']} destroyed; the swarm converged."
    )

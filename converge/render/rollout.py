"""Renderers for ``converge rollout status``: text and JSON from a ``RolloutStatus``.

No decisions here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from converge.version import converge_version

if TYPE_CHECKING:
    from converge.rollout import RolloutStatus

__all__ = [
    "ROLLOUT_FORMAT_VERSION",
    "rollout_status_document",
    "rollout_status_json",
    "rollout_status_text",
]

ROLLOUT_FORMAT_VERSION = "1.0"


def _steps(steps: tuple[int, ...]) -> str:
    return " -> ".join(f"{share}%" for share in steps)


def rollout_status_text(status: RolloutStatus) -> str:
    """One line: where the rollout stands and what the commands would do."""
    if status.candidate is None:
        if status.pending:
            return (
                f"service {status.service}: no rollout in progress; the next apply rolls out "
                f"the new spec ({status.strategy}: {_steps(status.steps)})"
            )
        return f"service {status.service}: no rollout in progress, it runs the spec"
    share = "unknown" if status.share is None else f"{status.share}%"
    done = [step for step in status.steps if status.share is not None and step <= status.share]
    where = f"step {len(done)} of {len(status.steps)}" if done else "not started"
    return (
        f"service {status.service}: {status.strategy} rollout in progress: {status.candidate} "
        f"({status.candidate_running}/{status.candidate_desired} running, "
        f"{status.candidate_up} servers up) takes {share} of the traffic "
        f"({where}: {_steps(status.steps)}); new version so far: {status.figures.line()}. "
        "`converge apply` resumes it, `converge rollout promote` finishes it now, "
        "`converge rollout abort` sends all traffic back and removes the new version"
    )


def rollout_status_document(status: RolloutStatus) -> dict[str, Any]:
    """The status as a JSON-ready document (``format_version`` first;
    docs/schemas/rollout.schema.json), with ``in_progress`` and the new version's error rate."""
    document: dict[str, Any] = {
        "format_version": ROLLOUT_FORMAT_VERSION,
        "converge_version": converge_version(),
        **dataclasses.asdict(status),
    }
    document["figures"]["error_rate"] = status.figures.error_rate
    document["in_progress"] = status.in_progress
    return document


def rollout_status_json(status: RolloutStatus) -> str:
    """``rollout_status_document`` as indented JSON."""
    return json.dumps(rollout_status_document(status), indent=2)

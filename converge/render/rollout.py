"""Renderers for ``converge rollout status``: text and JSON from a ``RolloutStatus``.

No decisions here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from converge.rollout import RolloutStatus

__all__ = ["rollout_status_json", "rollout_status_text"]


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


def rollout_status_json(status: RolloutStatus) -> str:
    """The status as indented JSON, with ``in_progress`` and the new version's error rate."""
    document = dataclasses.asdict(status)
    document["figures"]["error_rate"] = status.figures.error_rate
    document["in_progress"] = status.in_progress
    return json.dumps(document, indent=2)

"""The library API behind the commands: load, observe, diff, plan (and, later, apply).

The CLI is a thin layer over these functions; tests and other tools can call them directly.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from converge.actions import Plan
from converge.diff import diff
from converge.engine import Engine
from converge.loader import LoadedSpec, load_spec
from converge.observe import observe
from converge.planner import PlanOptions, plan
from converge.render import plan_document
from converge.state import ObservedState

__all__ = ["PlanResult", "make_plan", "resolved_spec_hash", "save_plan"]


@dataclass(frozen=True)
class PlanResult:
    loaded: LoadedSpec
    observed: ObservedState
    plan: Plan


def resolved_spec_hash(loaded: LoadedSpec) -> str:
    """A hash of the spec after interpolation: a saved plan is bound to exactly this spec."""
    return hashlib.sha256(loaded.spec.model_dump_json().encode()).hexdigest()


def make_plan(
    spec: LoadedSpec | Sequence[str | os.PathLike[str]],
    engine: Engine,
    options: PlanOptions = PlanOptions(),
) -> PlanResult:
    """Load (unless given loaded), observe, diff and plan.

    Raises:
        SpecError: the spec is invalid.
        EngineError: the engine is unreachable or not a swarm manager.
    """
    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
    observed = observe(engine, loaded.spec.stack)
    difference = diff(loaded.spec, observed)
    result = plan(
        loaded.spec,
        difference,
        observed,
        options,
        spec_digest=resolved_spec_hash(loaded),
        spec_files=loaded.files,
    )
    return PlanResult(loaded, observed, result)


def save_plan(result: PlanResult, path: str | os.PathLike[str]) -> None:
    """Write a plan for ``apply`` to use later (secrets masked; versions kept for staleness)."""
    document = plan_document(result.plan, result.loaded)
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    temporary.replace(target)

"""The JSON document a command prints on stdout instead of its result when it fails (``-o json``).

A script reading ``converge plan -o json`` or ``converge apply -o json`` always gets a JSON
document: the plan or the result, or this one, whose ``error`` says what went wrong. No
decisions here.
"""

from __future__ import annotations

import json
from typing import Any

from converge.actions import Plan
from converge.errors import (
    ConvergeError,
    EngineError,
    LabError,
    LoadBalancerError,
    LockError,
    PlanError,
    SourceError,
    SpecError,
)
from converge.loader import LoadedSpec
from converge.masking import Masker
from converge.version import converge_version

__all__ = ["ERROR_FORMAT_VERSION", "error_document", "error_json", "plan_errors_json"]

ERROR_FORMAT_VERSION = "1.0"

_KINDS: tuple[tuple[type[ConvergeError], str], ...] = (
    (SpecError, "spec"),
    (SourceError, "source"),
    (EngineError, "engine"),
    (PlanError, "plan"),
    (LockError, "lock"),
    (LoadBalancerError, "loadbalancer"),
    (LabError, "lab"),
)


def error_document(kind: str, message: str, problems: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"format_version", "converge_version", "error": {"kind", "message", "problems"}}``.

    Args:
        kind: ``spec``, ``source``, ``plan``, ``engine``, ``lock``, ``loadbalancer``, ``lab``
            or ``error``.
        problems: each located where it can be: ``file``/``line``/``column``/``path`` for the
            spec, ``address`` for the plan; always a ``message``.
    """
    return {
        "format_version": ERROR_FORMAT_VERSION,
        "converge_version": converge_version(),
        "error": {"kind": kind, "message": message, "problems": problems},
    }


def error_json(error: ConvergeError) -> str:
    """The error document of an expected error, as indented JSON."""
    kind = next((name for cls, name in _KINDS if isinstance(error, cls)), "error")
    problems: list[dict[str, Any]] = []
    message = Masker(None).text(str(error))
    if isinstance(error, SpecError):
        problems = [
            {
                "file": problem.file,
                "line": problem.line,
                "column": problem.column,
                "path": problem.path,
                "message": problem.message,
            }
            for problem in error.problems
        ]
        count = len(problems)
        message = f"the spec has {count} problem{'' if count == 1 else 's'}"
    return json.dumps(error_document(kind, message, problems), indent=2)


def plan_errors_json(plan: Plan, loaded: LoadedSpec | None = None) -> str:
    """The error document of a plan with errors (its error findings, masked)."""
    masker = Masker(loaded)
    problems: list[dict[str, Any]] = [
        {"address": finding.address, "message": masker.text(finding.message)}
        for finding in plan.errors
    ]
    count = len(problems)
    message = f"the plan has {count} error{'' if count == 1 else 's'}; nothing can be applied"
    return json.dumps(error_document("plan", message, problems), indent=2)

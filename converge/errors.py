"""The exception tree of converge.

Every error that converge expects to happen derives from ``ConvergeError``; the CLI catches
that one class, prints its message on one line and exits 1. Anything else is a bug and keeps
its traceback.

    ConvergeError
    ├── SpecError            the spec files are unreadable or invalid (carries every problem)
    ├── EngineError          the Docker engine is unreachable, not a manager, or refused a call
    ├── PlanError            a saved plan is unreadable or stale
    ├── ApplyError           applying a plan failed part-way (carries the partial result)
    ├── LockError            the stack is locked by another apply
    ├── LoadBalancerError    the load balancer's config is invalid or its container failed
    └── LabError             the local lab swarm cannot be started, stopped or used
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ApplyError",
    "ConvergeError",
    "EngineError",
    "LabError",
    "LoadBalancerError",
    "LockError",
    "PlanError",
    "SpecError",
    "SpecProblem",
]


class ConvergeError(Exception):
    """Base of every error converge expects; its message is meant for the user."""


@dataclass(frozen=True)
class SpecProblem:
    """One problem found in a spec, located in its source file."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class SpecError(ConvergeError):
    """The spec is invalid; ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: Sequence[SpecProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class EngineError(ConvergeError):
    """The Docker engine could not be reached or refused a request."""


class PlanError(ConvergeError):
    """A saved plan cannot be used (unreadable, other stack, or the swarm moved since)."""


class ApplyError(ConvergeError):
    """Applying a plan failed; the partial result is kept for reporting."""


class LockError(ConvergeError):
    """The stack is locked by another apply (the message names the holder)."""


class LabError(ConvergeError):
    """The local lab swarm cannot be started, stopped or used."""


class LoadBalancerError(ConvergeError):
    """The load balancer's rendered config is invalid, or its container did not start."""

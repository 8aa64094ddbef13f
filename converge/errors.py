"""The exception tree of converge.

Every error that converge expects to happen derives from ``ConvergeError``; the CLI catches
that one class, prints its message on one line and exits 1. Anything else is a bug and keeps
its traceback.

    ConvergeError
    ├── SpecError            the spec files are unreadable or invalid (carries every problem)
    ├── EngineError          the Docker engine is unreachable, not a manager, or refused a call
    │   ├── EngineUnavailableError  no answer at the address (connection refused, timeout)
    │   ├── NotFoundError           the object does not exist (any more)
    │   ├── AlreadyExistsError      an object of that name exists already
    │   ├── InUseError              the object is still used (a network with endpoints)
    │   └── OutOfSequenceError      a write carried a version that is no longer current
    ├── PlanError            a saved plan is unreadable or stale
    ├── LockError            the stack is locked by another apply
    ├── LoadBalancerError    the load balancer's config is invalid or its container failed
    └── LabError             the local lab swarm cannot be started, stopped or used
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AlreadyExistsError",
    "ConvergeError",
    "EngineError",
    "EngineUnavailableError",
    "InUseError",
    "LabError",
    "LoadBalancerError",
    "LockError",
    "NotFoundError",
    "OutOfSequenceError",
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


class EngineUnavailableError(EngineError):
    """Nothing answers at the engine's address, or it stopped answering in time."""


class NotFoundError(EngineError):
    """The object a request names does not exist (any more)."""


class AlreadyExistsError(EngineError):
    """A create named an object that exists already."""


class InUseError(EngineError):
    """The object cannot be removed while something uses it (a network with endpoints)."""


class OutOfSequenceError(EngineError):
    """A write carried a version that is no longer current: observe again and retry."""


class PlanError(ConvergeError):
    """A saved plan cannot be used (unreadable, other stack, or the swarm moved since)."""


class LockError(ConvergeError):
    """The stack is locked by another apply (the message names the holder)."""


class LabError(ConvergeError):
    """The local lab swarm cannot be started, stopped or used."""


class LoadBalancerError(ConvergeError):
    """The load balancer's rendered config is invalid, or its container did not start."""

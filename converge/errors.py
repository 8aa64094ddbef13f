"""The exception tree of converge.

Every error that converge expects to happen derives from ``ConvergeError``; the CLI catches
that one class, prints its message on one line and exits 1. Anything else is a bug and keeps
its traceback.

    ConvergeError
    ├── SpecError            the spec files are unreadable or invalid (carries every problem)
    ├── SourceError          a secret's or config's source cannot be read (a file, a failing
    │                        command, a wrong age identity); raised before any write
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

    Interrupted (a BaseException, like KeyboardInterrupt): SIGINT or SIGTERM arrived; raised by
    the command line's signal handler, it unwinds everything (locks are released on the way).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "AlreadyExistsError",
    "ConvergeError",
    "EngineError",
    "EngineUnavailableError",
    "InUseError",
    "Interrupted",
    "LabError",
    "LoadBalancerError",
    "LockError",
    "NotFoundError",
    "OutOfSequenceError",
    "PlanError",
    "RolloutError",
    "SourceError",
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


class SourceError(ConvergeError):
    """A secret's or config's content cannot be read from its source; nothing was written."""


class PlanError(ConvergeError):
    """A saved plan cannot be used (unreadable, other stack, or the swarm moved since)."""


class LockError(ConvergeError):
    """The stack is locked by another apply (the message names the holder)."""


class LabError(ConvergeError):
    """The local lab swarm cannot be started, stopped or used."""


class RolloutError(ConvergeError):
    """A blue-green or canary rollout stopped: a gate tripped (traffic is back on the running
    version) or it cannot go on; the message names the gate and its figures."""


class LoadBalancerError(ConvergeError):
    """The load balancer's rendered config is invalid, or its container did not start."""


@dataclass(eq=False)
class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: stop, releasing what is held on the way.

    Not an ``Exception``, so no ``except Exception`` swallows it. Whoever releases something
    while it passes records it, for the message the command line prints.
    """

    signal_number: int
    locks_released: list[str] = field(default_factory=list)
    """Stacks whose lock was released."""
    locks_kept: list[str] = field(default_factory=list)
    """Locks that could not be released, with why."""

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as shells report a process a signal stopped."""
        return 128 + self.signal_number

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"

"""The plan's vocabulary: a closed set of frozen Actions in fixed phases, and the Plan itself.

An action says what will happen (kind and symbol), to what (address), why (reason, for humans
only: apply never reads it) and which fields change. The plan is a value: it can be printed,
saved as JSON, loaded back and applied later, once its recorded versions are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal, overload

from converge.diff import FieldChange
from converge.images import short_digest
from converge.placement import ServicePlacement
from converge.units import format_cpus, format_duration, format_memory

__all__ = [
    "ADOPT_NOTE",
    "PLAN_FORMAT_VERSION",
    "RERUN_REASON",
    "Action",
    "ActionKind",
    "FindingCode",
    "Phase",
    "Plan",
    "PlanFinding",
    "Severity",
    "format_change",
    "format_value",
]

PLAN_FORMAT_VERSION = "1.2"
"""1.1 added waves and graph changes; 1.2 ``placement`` (the placement preview)."""
ADOPT_NOTE = "adopt (add the stack's ownership label)"
"""What an ``adopt`` action does before any change it lists."""
RERUN_REASON = "--rerun: run the job again"
"""The reason of a ``force`` action that ``converge apply --rerun JOB`` asked for."""

ActionKind = Literal["create", "update", "scale", "replace", "remove", "force", "adopt", "rollout"]
Severity = Literal["error", "warning"]
FindingCode = Literal["", "collision", "port_collision", "not_in_spec", "missing"]
ObjectKind = Literal["cluster", "node", "network", "service", "loadbalancer", "secret", "config"]

_SYMBOLS: dict[str, str] = {
    "create": "+",
    "update": "~",
    "scale": "~",
    "force": "~",
    "adopt": "~",
    "rollout": "~",
    "replace": "-/+",
    "remove": "-",
}


class Phase(IntEnum):
    """The order in which apply runs actions; a phase starts when the one before succeeded."""

    MEMBERSHIP = 0
    """Swarm init, joins, promotions, demotions, removals: one at a time, in plan order."""
    NODES = 1
    NETWORKS = 2
    VOLUMES = 3
    FILES = 4
    """Secrets and configs: created (new versions too) before the services that use them."""
    SERVICES = 5
    DRAINS = 6
    PRUNE_SERVICES = 7
    PRUNE_FILES = 8
    """Old versions of secrets and configs, once the services moved to the new ones."""
    PRUNE_NETWORKS = 9
    LOADBALANCER = 10


@dataclass(frozen=True)
class Action:
    phase: Phase
    kind: ActionKind
    object_kind: ObjectKind
    key: str
    name: str
    reason: str
    changes: tuple[FieldChange, ...] = ()
    forced_by: tuple[str, ...] = ()
    observed_id: str | None = None
    observed_version: int | None = None
    wave: int = 0
    """Services phase: the wave (1, 2, ...) the action runs in; a wave starts once the
    services of the waves before reached what it waits for (``depends_on``). 0 elsewhere."""
    waits_for: tuple[str, ...] = ()
    """What the service waits for, as ``mysql (healthy)``: its ``depends_on``."""

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self.kind]

    @property
    def address(self) -> str:
        return f"{self.object_kind}.{self.key}"

    @property
    def description(self) -> str:
        """One line: ``~ service exampleapp_mvc: replicas 5 -> 3``; for a secret or config its
        key, its swarm name and what happens:
        ``+ secret db_password (shop_db_password_1c2d3e4f5a): new version; 2 services roll``."""
        if self.object_kind in ("secret", "config"):
            return f"{self.symbol} {self.object_kind} {self.key} ({self.name}): {self.reason}"
        head = f"{self.symbol} {self.object_kind} {self.name}"
        if self.phase is Phase.MEMBERSHIP and self.changes[0].path == ("membership",):
            step = self.changes[0].after
            return f"{head}: " + ("leave the swarm" if step is None else f"swarm {step}")
        if self.kind == "create":
            return f"{head}: create"
        if self.kind == "remove":
            return f"{head}: remove"
        if self.kind == "replace":
            return f"{head}: replace ({', '.join(self.forced_by)} cannot change in place)"
        if self.kind == "force" and self.changes == () and self.reason == RERUN_REASON:
            return f"{head}: run the job again (--rerun)"
        if self.kind == "force":
            return f"{head}: redeploy every task ({self.reason})"
        if self.kind == "rollout":
            return f"{head}: {self.reason}"
        if self.kind == "adopt":
            adopt = f"{head}: {ADOPT_NOTE}"
            if not self.changes:
                return adopt
            return f"{adopt}, then " + ", ".join(change.field for change in self.changes)
        if len(self.changes) == 1:
            return f"{head}: {format_change(self.changes[0], sep=' ')}"
        return f"{head}: " + ", ".join(change.field for change in self.changes)


@dataclass(frozen=True)
class PlanFinding:
    """Something the plan found: an ``error`` stops apply, a ``warning`` does not."""

    severity: Severity
    address: str
    message: str
    code: FindingCode = ""
    """What kind of finding, for readers that sort them (drift): ``""`` for any other."""
    name: str = ""
    """The object's name in the swarm, where the finding is about one."""
    field: str | None = None
    """The field concerned (``ports.80/tcp``), if one."""


class _OnFirstRead:
    """A text field of a frozen dataclass given as the text or as a function that makes it,
    called on the first read (then kept): ``Plan.spec_digest``, which only saved plans, JSON
    documents and drift reports read, costs a serialisation of the whole spec (13 µs per
    service), and a plan shown as text never needs it.

    Reading it (``dataclasses.replace``, ``==`` and ``repr`` read every field) computes it: it
    is a value like any other, only made late.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}"

    @overload
    def __get__(self, instance: None, owner: type) -> str: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> str: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> str:
        if instance is None:
            return ""  # the field's default
        value: str | Callable[[], str] = instance.__dict__[self._slot]
        if not isinstance(value, str):
            value = value()
            instance.__dict__[self._slot] = value
        return value

    def __set__(self, instance: object, value: str | Callable[[], str]) -> None:
        instance.__dict__[self._slot] = value


@dataclass(frozen=True)
class Plan:
    stack: str
    actions: tuple[Action, ...] = ()
    findings: tuple[PlanFinding, ...] = ()
    versions: dict[str, int] = field(default_factory=dict)
    spec_digest: _OnFirstRead = _OnFirstRead()
    """Identifies the spec the plan was made from (``converge.api.resolved_spec_hash``): given
    as the digest, or as a function computing it when first read."""
    spec_files: tuple[str, ...] = ()
    images: dict[str, str] = field(default_factory=dict)
    """The ``ContainerSpec.Image`` apply sends per service key: tags pinned to the digests
    their registries gave when the plan was made (``converge.images``)."""
    registry_auth: bool = False
    """Send the docker client's registry credentials with creates and updates
    (``--with-registry-auth``)."""
    graph_changes: tuple[str, ...] = ()
    """How the services' ``depends_on`` differs from the graph the last apply recorded, one
    line each (``converge.ordering.graph_changes``)."""
    graph_recorded: bool = True
    """Whether an earlier apply recorded a graph (False: ``graph_changes`` lists a new one)."""
    placement: tuple[ServicePlacement, ...] = ()
    """The placement preview: each service's predicted tasks per node after the plan."""

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    @property
    def waves(self) -> int:
        """How many waves the services phase runs in (0: no service action)."""
        return max((action.wave for action in self.actions), default=0)

    @property
    def errors(self) -> tuple[PlanFinding, ...]:
        return tuple(finding for finding in self.findings if finding.severity == "error")

    def counts(self) -> dict[str, int]:
        """Terraform's summary: how many objects are added, changed and destroyed."""
        add = sum(action.kind in ("create", "replace") for action in self.actions)
        change = sum(
            action.kind in ("update", "scale", "force", "adopt", "rollout")
            for action in self.actions
        )
        destroy = sum(action.kind in ("remove", "replace") for action in self.actions)
        return {"add": add, "change": change, "destroy": destroy}


_DURATION_FIELDS = frozenset(
    {"delay", "monitor", "window", "interval", "timeout", "start_period", "stop_grace_period"}
)


def format_value(path: tuple[str, ...], value: Any) -> str:
    """A value as users write it in specs: durations as ``10s``, sizes as ``512M``."""
    if value is None:
        return "(none)"
    leaf = path[-1] if path else ""
    if isinstance(value, int) and not isinstance(value, bool):
        if leaf in _DURATION_FIELDS:
            return format_duration(value)
        if leaf in ("memory", "size"):
            return format_memory(value)
        if leaf == "cpus":
            return format_cpus(value)
        if leaf == "mode":  # a secret's or config's file mode
            return f"0{value:o}"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(path, item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(
            f"{key}: {format_value((*path, key), item)}" for key, item in value.items()
        )
        return "{" + inner + "}"
    return str(value)


def format_change(change: FieldChange, sep: str = ": ") -> str:
    """``field: before -> after``; a tag whose digest moved reads
    ``image: app:1.2 (sha256:3f1c0a9b7e2d… → sha256:9d8e7f6a5b4c…)``."""
    before, after = change.before, change.after
    if change.path == ("image",) and isinstance(before, str) and isinstance(after, str):
        tag, _, old = before.partition("@")
        new_tag, _, new = after.partition("@")
        if tag == new_tag and new and old != new:
            old_text = short_digest(old) if old else "no digest"
            return f"image{sep}{tag} ({old_text} → {short_digest(new)})"
    return (
        f"{change.field}{sep}{format_value(change.path, before)} -> "
        f"{format_value(change.path, after)}"
    )

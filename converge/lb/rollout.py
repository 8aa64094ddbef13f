"""Blue-green and canary rollouts through the balancer, pure: weights, counters and gates.

During a rollout a backend of the service holds two groups of servers (``converge.lb.config``):
``<backend>N`` resolve ``tasks.<stack>_<key>`` (the running version), ``<backend>-nextN``
resolve ``tasks.<stack>_<key>-next`` (the new one). The traffic share of the new version is
set with server weights through HAProxy's runtime API, and judged from HAProxy's own counters
of the new version's servers (``show stat``). Nothing here does I/O: ``converge.rollout``
reads and writes through ``converge.lb.runtime``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from math import gcd

from converge.lb.config import HOME_WEIGHT
from converge.naming import ROLLOUT_SUFFIX
from converge.spec import RolloutGates, RolloutSpec, Spec

__all__ = [
    "MAX_WEIGHT",
    "Figures",
    "GateFailure",
    "ServerStat",
    "candidate_figures",
    "current_share",
    "describe_rollout",
    "judge",
    "parse_stats",
    "remaining_shares",
    "rollout_backends",
    "servers",
    "share_weights",
    "weight_commands",
]

MAX_WEIGHT = 256
"""HAProxy's largest server weight."""


@dataclass(frozen=True)
class ServerStat:
    """One server line of ``show stat``: where traffic goes and what came back."""

    backend: str
    server: str
    status: str
    weight: int
    current_sessions: int
    responses: int
    server_errors: int
    connection_errors: int
    response_errors: int

    @property
    def is_up(self) -> bool:
        return self.status.startswith("UP") or self.status == "no check"

    @property
    def has_address(self) -> bool:
        """A template slot without a resolved address is in maintenance (``MAINT``)."""
        return not self.status.startswith("MAINT")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def parse_stats(text: str) -> tuple[ServerStat, ...]:
    """The server lines of ``show stat`` CSV output (the header line starts with ``# ``)."""
    lines = text.lstrip().removeprefix("# ").splitlines()
    result = []
    for row in csv.DictReader(io.StringIO("\n".join(line for line in lines if line.strip()))):
        server = row.get("svname") or ""
        if server in ("FRONTEND", "BACKEND", ""):
            continue
        result.append(
            ServerStat(
                backend=row.get("pxname") or "",
                server=server,
                status=row.get("status") or "",
                weight=_int(row.get("weight")),
                current_sessions=_int(row.get("scur")),
                responses=sum(
                    _int(row.get(f"hrsp_{kind}"))
                    for kind in ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
                ),
                server_errors=_int(row.get("hrsp_5xx")),
                connection_errors=_int(row.get("econ")),
                response_errors=_int(row.get("eresp")),
            )
        )
    return tuple(result)


def rollout_backends(spec: Spec, key: str) -> tuple[str, ...]:
    """The balancer's backends that send traffic to service ``key``."""
    if spec.loadbalancer is None:
        return ()
    return tuple(
        name for name, backend in spec.loadbalancer.backends.items() if backend.service == key
    )


def _group(stat: ServerStat, backends: Sequence[str]) -> str | None:
    """``home``, ``next``, or None for a server of another backend."""
    if stat.backend not in backends:
        return None
    if re.fullmatch(rf"{re.escape(stat.backend)}{re.escape(ROLLOUT_SUFFIX)}\d+", stat.server):
        return "next"
    if re.fullmatch(rf"{re.escape(stat.backend)}\d+", stat.server):
        return "home"
    return None


def servers(stats: Iterable[ServerStat], backends: Sequence[str], group: str) -> list[ServerStat]:
    """The servers of one group (``home`` or ``next``) in the service's backends."""
    return [stat for stat in stats if _group(stat, backends) == group]


def share_weights(share: int, home: int, candidate: int) -> tuple[int, int]:
    """Per-server weights (running version, new version) that give the new version ``share``
    percent of the requests, given how many servers of each answer.

    With ``home`` servers of weight ``a`` and ``candidate`` servers of weight ``b`` the new
    version gets ``candidate*b / (home*a + candidate*b)`` of a weighted round robin.
    """
    if share <= 0 or candidate == 0:
        return HOME_WEIGHT, 0
    if share >= 100 or home == 0:
        return 0, HOME_WEIGHT
    old, new = (100 - share) * candidate, share * home
    divisor = gcd(old, new)
    old, new = old // divisor, new // divisor
    largest = max(old, new)
    if largest > MAX_WEIGHT:
        old = max(1, round(old * MAX_WEIGHT / largest))
        new = max(1, round(new * MAX_WEIGHT / largest))
    return old, new


def current_share(stats: Iterable[ServerStat], backends: Sequence[str]) -> int:
    """The new version's share of the traffic, in percent, from the weights in force."""
    listed = list(stats)
    home = [s for s in servers(listed, backends, "home") if s.has_address]
    new = [s for s in servers(listed, backends, "next") if s.has_address]
    old_total = sum(stat.weight for stat in home)
    new_total = sum(stat.weight for stat in new)
    if new_total == 0:
        return 0
    return round(100 * new_total / (old_total + new_total))


@dataclass(frozen=True)
class Figures:
    """What the new version's servers did between two readings of the counters."""

    requests: int = 0
    server_errors: int = 0
    connection_errors: int = 0

    @property
    def errors(self) -> int:
        return self.server_errors + self.connection_errors

    @property
    def error_rate(self) -> float:
        """Failed requests in percent (0 before any request)."""
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    def line(self) -> str:
        return (
            f"{self.error_rate:.1f}% errors ({self.errors} of {self.requests} requests: "
            f"{self.server_errors} HTTP 5xx, {self.connection_errors} connection failures)"
        )


def candidate_figures(
    before: Iterable[ServerStat], after: Iterable[ServerStat], backends: Sequence[str]
) -> Figures:
    """The new version's requests and failures between the two readings."""

    def totals(stats: Iterable[ServerStat]) -> tuple[int, int, int]:
        group = servers(stats, backends, "next")
        failed = sum(s.connection_errors + s.response_errors for s in group)
        return sum(s.responses for s in group) + failed, sum(s.server_errors for s in group), failed

    start, end = totals(before), totals(after)
    requests, server_errors, connection_errors = (
        max(0, b - a) for a, b in zip(start, end, strict=True)
    )
    return Figures(requests, server_errors, connection_errors)


@dataclass(frozen=True)
class GateFailure:
    """A gate that stopped a rollout, and the figures that tripped it."""

    gate: str
    detail: str

    def __str__(self) -> str:
        return f"gate {self.gate}: {self.detail}"


HEALTH_GATE_GRACE = 5.0
"""Seconds the new version may have no server up before the health gate trips. One failed
connection marks a server down (``on-error mark-down``, so no request waits on it), and two
checks a second apart (``rise 2``) bring it back: a look in between must not end a rollout."""


def judge(
    gates: RolloutGates,
    figures: Figures,
    up: int,
    share: int,
    held_enough: bool,
    down_for: float = 0.0,
) -> GateFailure | bool | None:
    """One look at a step: a ``GateFailure``, ``True`` when the step passed, ``False`` to hold.

    Args:
        up: the new version's servers that pass their health checks now.
        held_enough: the step's pause has elapsed.
        down_for: seconds since the new version last had a server up (0 while one is).
    """
    if gates.health and share > 0 and up == 0:
        if down_for < HEALTH_GATE_GRACE:
            return False
        return GateFailure(
            "health",
            f"no server of the new version passed its health check for {down_for:.0f}s",
        )
    if figures.requests < gates.min_requests:
        return False
    if figures.error_rate > gates.max_error_rate:
        return GateFailure(
            "max_error_rate", f"{figures.line()} > {gates.max_error_rate:g}% allowed"
        )
    return held_enough


def remaining_shares(rollout: RolloutSpec, share: int) -> tuple[int, ...]:
    """The steps still to hold, from the share in force (a step in force is held again: an
    interrupted apply did not finish judging it)."""
    return tuple(step for step in rollout.shares if step >= share) or (100,)


def describe_rollout(rollout: RolloutSpec, candidate: str) -> str:
    """One line for the plan: what the rollout will do, step by step."""
    gates = rollout.gates
    steps = " -> ".join(f"{share}%" for share in rollout.shares)
    pause = f"{rollout.pause / 1e9:g}s"
    checks = ", backend health checks" if gates.health else ""
    return (
        f"{rollout.strategy}: start {candidate} beside it, traffic {steps}, each held "
        f"{pause} (gates: errors <= {gates.max_error_rate:g}% over >= {gates.min_requests} "
        f"requests{checks}), then the service runs the new version and {candidate} is removed"
    )


def weight_commands(
    stats: Iterable[ServerStat], backends: Sequence[str], share: int
) -> tuple[list[str], Mapping[str, int]]:
    """``set weight`` commands for every server slot of the service's backends."""
    listed = list(stats)
    home = [s for s in servers(listed, backends, "home") if s.has_address]
    new = [s for s in servers(listed, backends, "next") if s.has_address]
    old_weight, new_weight = share_weights(share, len(home), len(new))
    weights = {"home": old_weight, "next": new_weight}
    # The group that keeps traffic first: never a moment with every weight at 0 (a 503).
    order = ("next", "home") if old_weight == 0 else ("home", "next")
    commands = [
        f"set weight {stat.backend}/{stat.server} {weights[group]}"
        for group in order
        for stat in servers(listed, backends, group)
    ]
    return commands, weights

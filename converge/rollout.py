"""Blue-green and canary rollouts: the new version beside the running one, traffic moved in
the managed load balancer, each step judged by HAProxy's own counters.

A rollout of service ``key`` (``x-converge.rollout``), from the level of the swarm, never from
remembered events, so that an interrupted one is taken up where it stands:

1. ``<stack>_<key>-next`` runs the new spec (labelled ``io.converge.rollout.of=<key>``; no
   published ports, no network alias: only the balancer sends it traffic) until converged,
   and its servers pass HAProxy's health checks;
2. per step the new version's share of the traffic is set with server weights through the
   runtime API (no reload: no connection is dropped), held for the pause and judged: errors
   (HTTP 5xx and connection failures of its servers) over at least ``min_requests``; a tripped
   gate sets the share back to 0, removes the new service and raises ``RolloutError``;
3. at 100% the new version takes all traffic; the home service ``<stack>_<key>`` (the name
   other services and ``docker stack`` know) is updated to the new spec while it has none,
   takes the traffic back once healthy, and ``-next`` is removed.

The running version is never stopped before the new one took its traffic.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any

from converge.actions import Action, Phase
from converge.diff import diff
from converge.engine import Engine
from converge.engine_spec import service_engine_spec
from converge.errors import ConvergeError, NotFoundError, OutOfSequenceError, RolloutError
from converge.health import SETTLING_STATES, desired_task_count, service_health
from converge.lb.config import container_name
from converge.lb.container import execute_loadbalancer, loadbalancer_engine
from converge.lb.rollout import (
    Figures,
    GateFailure,
    ServerStat,
    candidate_figures,
    current_share,
    judge,
    remaining_shares,
    rollout_backends,
    servers,
    weight_commands,
)
from converge.lb.runtime import Runtime
from converge.naming import ROLLOUT_LABEL, ROLLOUT_SUFFIX, candidate_name, object_name
from converge.observe import observe
from converge.polling import Backoff, Clock, PollTimeoutError, SystemClock, poll_until
from converge.spec import Spec
from converge.state import ObservedService, ObservedState

__all__ = [
    "HEALTH_WAIT",
    "ROLLOUT_DIGEST_LABEL",
    "RolloutSettings",
    "RolloutStatus",
    "abort_rollout",
    "candidate_engine_spec",
    "promote_rollout",
    "rollout_status",
    "run_rollout",
]

HEALTH_WAIT = 120.0
"""Seconds every task of a version may take to pass HAProxy's checks (1s apart, 2 in a row)."""
ROLLOUT_DIGEST_LABEL = "io.converge.rollout.spec"
"""Digest of the spec the new version was started with: a changed spec starts it again."""


@dataclass(frozen=True)
class RolloutSettings:
    """Deadline, polling and progress of a rollout (apply's, or an operator command's)."""

    timeout: float = 600.0
    poll_interval: float = 0.5
    stable_for: float = 1.0
    clock: Clock = field(default_factory=SystemClock, compare=False, repr=False)
    progress: Callable[[str], None] = field(default=lambda line: None, compare=False)
    service_spec: Callable[[str, Mapping[str, Any] | None], dict[str, Any]] | None = field(
        default=None, compare=False
    )
    """Builds service ``key``'s ServiceSpec on ``base`` as apply sends it (the plan's pinned
    image, the versions of secrets and configs); default: from the spec alone."""
    registry_auth: Callable[[str], str | None] = field(default=lambda key: None, compare=False)
    """The ``X-Registry-Auth`` header for service ``key``'s image, if one is to be sent."""
    cancelled: Callable[[], bool] = field(default=lambda: False, compare=False)
    """True once the apply was interrupted: stop where the rollout stands (the next apply or
    ``converge rollout`` takes it up from there)."""


@dataclass(frozen=True)
class RolloutStatus:
    """Where a service's rollout stands, read from the swarm and the balancer."""

    stack: str
    key: str
    service: str
    strategy: str
    steps: tuple[int, ...]
    candidate: str | None
    share: int | None
    """The new version's traffic share in percent (None: no balancer to ask)."""
    home_up: int = 0
    candidate_up: int = 0
    candidate_running: int = 0
    candidate_desired: int = 0
    figures: Figures = field(default_factory=Figures)
    """The new version's requests and failures since the balancer started counting."""
    pending: bool = False
    """The service differs from the spec: the next apply rolls it out."""

    @property
    def in_progress(self) -> bool:
        return self.candidate is not None


def _digest(payload: Mapping[str, Any]) -> str:
    significant = {k: v for k, v in payload.items() if k not in ("Name", "Labels")}
    return hashlib.sha256(json.dumps(significant, sort_keys=True).encode()).hexdigest()[:16]


def candidate_engine_spec(
    spec: Spec, key: str, service_payload: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ServiceSpec of the new version: the service's (``service_payload``, as apply would
    create it; default: from the spec alone), named ``<stack>_<key>-next``, labelled as a
    rollout's, without published ports or network aliases (only the balancer reaches it; the
    home service keeps its name and aliases for everyone else)."""
    payload = copy.deepcopy(dict(service_payload or service_engine_spec(spec, key)))
    digest = _digest(payload)
    payload["Name"] = candidate_name(spec.stack, key)
    payload["Labels"] = {**payload["Labels"], ROLLOUT_LABEL: key, ROLLOUT_DIGEST_LABEL: digest}
    endpoint = dict(payload.get("EndpointSpec") or {})
    endpoint.pop("Ports", None)
    payload["EndpointSpec"] = endpoint
    task = payload["TaskTemplate"]
    task["Networks"] = [
        {k: v for k, v in network.items() if k != "Aliases"} for network in task["Networks"]
    ]
    return payload


def _candidate_digest(service: ObservedService) -> str:
    return str((service.raw_spec.get("Labels") or {}).get(ROLLOUT_DIGEST_LABEL, ""))


@dataclass
class _Rollout:
    spec: Spec
    key: str
    engine: Engine
    settings: RolloutSettings
    runtime: Runtime
    deadline: float
    observed: ObservedState

    @property
    def backends(self) -> tuple[str, ...]:
        return rollout_backends(self.spec, self.key)

    @property
    def home(self) -> str:
        return object_name(self.spec.stack, self.key)

    @property
    def candidate(self) -> str:
        return candidate_name(self.spec.stack, self.key)

    def refresh(self) -> ObservedState:
        self.observed = observe(self.engine, self.spec)
        return self.observed

    def stats(self) -> tuple[ServerStat, ...]:
        return self.runtime.stats()

    def wait(
        self,
        condition: Callable[[], bool],
        what: str,
        maximum: float = 1.0,
        limit: float | None = None,
    ) -> None:
        """Poll ``condition`` until the rollout's deadline (or ``limit`` seconds, if sooner)."""
        clock = self.settings.clock
        remaining = max(0.0, self.deadline - clock.monotonic())

        def unless_cancelled() -> bool:
            if self.settings.cancelled():
                raise _InterruptedError(f"rollout of service {self.home}: interrupted")
            return condition()

        try:
            poll_until(
                unless_cancelled,
                timeout=remaining if limit is None else min(limit, remaining),
                clock=clock,
                backoff=Backoff(initial=0.1, maximum=maximum),
            )
        except PollTimeoutError:
            raise RolloutError(
                f"rollout of service {self.home}: timed out waiting for {what}"
            ) from None

    def service_payload(self, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The service's ServiceSpec as apply sends it."""
        if self.settings.service_spec is not None:
            return self.settings.service_spec(self.key, base)
        return service_engine_spec(self.spec, self.key, base=base)

    def create_service(self, name: str, payload: dict[str, Any]) -> None:
        header = self.settings.registry_auth(self.key)
        if header is None:
            self.engine.create_service(name, payload)
        else:
            self.engine.create_service(name, payload, registry_auth=header)

    def update_service(self, service: ObservedService, payload: dict[str, Any]) -> None:
        header = self.settings.registry_auth(self.key)
        if header is None:
            self.engine.update_service(service.name, service.id, service.version, payload)
        else:
            self.engine.update_service(
                service.name, service.id, service.version, payload, registry_auth=header
            )

    def set_share(self, share: int) -> None:
        commands, weights = weight_commands(self.stats(), self.backends, share)
        self.runtime.run(commands)
        self.settings.progress(
            f"{self.home}: new version takes {share}% of the traffic "
            f"(weights {weights['home']} / {weights['next']})"
        )


@contextmanager
def _started(spec: Spec, key: str, engine: Engine, settings: RolloutSettings) -> Iterator[_Rollout]:
    """A rollout's context: the balancer's runtime API, its config ready for both versions."""
    if key not in spec.services:
        raise RolloutError(f"service {key!r} is not in the spec of stack {spec.stack}")
    if spec.loadbalancer is None or not rollout_backends(spec, key):
        raise RolloutError(f"service {key!r} is behind no load-balancer backend")
    observed = observe(engine, spec)
    name = container_name(spec.stack, spec.loadbalancer)
    balancer = next((lb for lb in observed.loadbalancers if lb.owned and lb.name == name), None)
    if balancer is None:
        raise RolloutError(
            f"rollout of {object_name(spec.stack, key)}: loadbalancer {name} "
            "is not running (apply creates it)"
        )
    if f"tasks.{candidate_name(spec.stack, key)}:" not in (balancer.config or ""):
        # Both versions' servers must be in the running config: validated, reloaded once.
        action = Action(
            Phase.LOADBALANCER,
            "update",
            "loadbalancer",
            spec.loadbalancer.name,
            name,
            "servers for the new version",
            observed_id=balancer.id,
        )
        execute_loadbalancer(spec, action, engine, observed)
        observed = observe(engine, spec)
        balancer = next(lb for lb in observed.loadbalancers if lb.owned and lb.name == name)
    with loadbalancer_engine(spec, engine) as target:
        yield _Rollout(
            spec=spec,
            key=key,
            engine=engine,
            settings=settings,
            runtime=Runtime(target, name, balancer.id),
            deadline=settings.clock.monotonic() + settings.timeout,
            observed=observed,
        )


def _home_matches_spec(run: _Rollout) -> bool:
    for item in diff(run.spec, run.observed).objects:
        if item.kind == "service" and item.key == run.key:
            return item.status == "unchanged"
    return False


def _wait_healthy(run: _Rollout, name: str, since: str, what: str) -> ObservedService:
    """Until service ``name`` converged, held ``stable_for``; raises if it failed."""
    clock = run.settings.clock
    held: list[float] = []
    found: list[ObservedService] = []

    def converged() -> bool:
        state = run.refresh()
        service = state.service_named(name)
        if service is None:
            raise RolloutError(f"service {name} disappeared during the rollout")
        health = service_health(state, name, service, since, update_since=since)
        if health.failure and health.update_state not in SETTLING_STATES:
            raise RolloutError(f"{what}: service {name}: {health.failure}")
        if not health.converged:
            held.clear()
            return False
        held.append(clock.monotonic())
        found[:] = [service]
        return clock.monotonic() - held[0] >= run.settings.stable_for

    run.wait(converged, f"service {name} to converge")
    return found[0]


def _wait_servers_up(run: _Rollout, group: str, count: int, gate: bool) -> None:
    """Until ``count`` servers of ``group`` pass HAProxy's health checks (the health gate)."""
    seen: list[int] = [0]

    def up() -> bool:
        listed = servers(run.stats(), run.backends, group)
        per_backend = max(1, len(run.backends))
        seen[0] = sum(stat.is_up for stat in listed) // per_backend
        # Exactly the tasks running now: a slot still holding a replaced task's address
        # (until DNS drops it) must not count, or traffic moves to servers about to fail.
        addressed = sum(stat.has_address for stat in listed) // per_backend
        return seen[0] == count == addressed

    try:
        run.wait(up, f"{count} servers of {group} to pass their health checks", limit=HEALTH_WAIT)
    except RolloutError:
        if not gate:
            raise
        raise RolloutError(
            str(
                GateFailure(
                    "health",
                    f"{seen[0]} of {count} servers of the new version pass their health checks",
                )
            )
        ) from None


def _engine_time(state: ObservedState) -> str:
    return max((task.timestamp for task in state.tasks), default="")


def _retire_candidate(run: _Rollout) -> None:
    """All traffic to the home service, in-flight requests to the new version finished, then
    the new version removed."""
    run.set_share(0)  # first: a broken version must stop serving at once
    candidate = run.refresh().rollout_candidates().get(run.key)
    if candidate is None:
        return

    def drained() -> bool:
        return all(
            stat.current_sessions == 0 for stat in servers(run.stats(), run.backends, "next")
        )

    run.wait(drained, f"requests to {run.candidate} to finish")
    with suppress(NotFoundError):
        run.engine.remove_service(candidate.name, candidate.id)
    run.wait(
        lambda: run.refresh().rollout_candidates().get(run.key) is None,
        f"service {candidate.name} to be gone",
    )
    run.settings.progress(f"{run.home}: {candidate.name} removed")


def _update_home(run: _Rollout) -> None:
    """The home service runs the new spec (it has no traffic while it updates)."""
    since = _engine_time(run.observed)
    for attempt in range(4):
        home = run.refresh().owned_services().get(run.key)
        if home is None:
            raise RolloutError(f"service {run.home} disappeared during the rollout")
        payload = run.service_payload(base=home.raw_spec)
        try:
            run.update_service(home, payload)
            break
        except OutOfSequenceError:
            if attempt == 3:
                raise
    run.settings.progress(f"{run.home}: updated to the new version (no traffic on it)")
    home_service = _wait_healthy(run, run.home, since, "promotion")
    _wait_servers_up(run, "home", _desired(home_service), gate=False)


def _desired(service: ObservedService) -> int:
    return desired_task_count(service)


def _promote(run: _Rollout) -> None:
    if current_share(run.stats(), run.backends) != 100:
        run.set_share(100)
    run.refresh()
    if not _home_matches_spec(run):
        _update_home(run)
    _retire_candidate(run)
    run.settings.progress(f"{run.home}: rollout complete, the service runs the new version")


def _hold(run: _Rollout, share: int) -> None:
    """Hold one step until its pause elapsed and the gates passed; raise when one trips."""
    rollout = run.spec.services[run.key].x_converge.rollout
    clock = run.settings.clock
    before = run.stats()
    started = clock.monotonic()
    verdict: list[GateFailure | None] = [None]
    figures: list[Figures] = [Figures()]
    last_up = [started]  # the step starts with the new version's servers up

    def judged() -> bool:
        now = run.stats()
        figures[0] = candidate_figures(before, now, run.backends)
        up = sum(stat.is_up for stat in servers(now, run.backends, "next"))
        looked = clock.monotonic()
        if up:
            last_up[0] = looked
        result = judge(
            rollout.gates,
            figures[0],
            up,
            share,
            held_enough=looked - started >= rollout.pause / 1e9,
            down_for=looked - last_up[0],
        )
        if isinstance(result, GateFailure):
            verdict[0] = result
            return True
        return bool(result)

    try:
        # Judged often: a broken version serves until its gate trips.
        run.wait(judged, f"step {share}% to be judged", maximum=0.2)
    except RolloutError:
        verdict[0] = GateFailure(
            "min_requests",
            f"{figures[0].requests} of {rollout.gates.min_requests} requests reached the new "
            "version before the deadline",
        )
    if verdict[0] is not None:
        raise _TrippedError(verdict[0], share)
    run.settings.progress(f"{run.home}: step {share}% passed: {figures[0].line()}")


class _InterruptedError(RolloutError):
    """The apply was interrupted: the rollout stays where it stands."""


class _TrippedError(Exception):
    def __init__(self, failure: GateFailure, share: int) -> None:
        super().__init__(str(failure))
        self.failure, self.share = failure, share


def run_rollout(
    spec: Spec, key: str, engine: Engine, settings: RolloutSettings = RolloutSettings()
) -> str:
    """Roll service ``key`` out to its spec, or take up a rollout an earlier apply left.

    Returns:
        the outcome: ``promoted``, or ``aborted`` (the spec no longer asks for a rollout).

    Raises:
        RolloutError: a gate tripped (traffic is back on the running version, the new one is
            removed) or the new version never became healthy.
        EngineError, LoadBalancerError: the engine or the balancer refused a call.
    """
    with _started(spec, key, engine, settings) as run:
        rollout = spec.services[key].x_converge.rollout
        candidate = run.observed.rollout_candidates().get(key)
        if rollout.strategy == "rolling":
            _retire_candidate(run)
            return "aborted"
        service_payload = run.service_payload()
        desired = candidate_engine_spec(spec, key, service_payload)
        if candidate is not None and _candidate_digest(candidate) != _digest(service_payload):
            settings.progress(f"{run.home}: {candidate.name} runs another spec: starting again")
            _retire_candidate(run)
            candidate = None
        if _home_matches_spec(run):
            if candidate is not None:  # an apply died after the promotion: finish it
                _promote(run)
            return "promoted"
        since = _engine_time(run.observed)
        if candidate is None:
            run.create_service(run.candidate, desired)
            settings.progress(f"{run.home}: {run.candidate} created with the new version")
        try:
            started = _wait_healthy(run, run.candidate, since, "the new version")
            _wait_servers_up(run, "next", _desired(started), rollout.gates.health)
            share = current_share(run.stats(), run.backends)
            for step in remaining_shares(rollout, share):
                run.set_share(step)
                _hold(run, step)
        except _InterruptedError:
            raise
        except (_TrippedError, RolloutError) as failure:
            _retire_candidate(run)
            at = f" at {failure.share}%" if isinstance(failure, _TrippedError) else ""
            raise RolloutError(
                f"rollout of service {run.home} aborted{at}: {failure}; all traffic is back on "
                f"{run.home} (the running version), {run.candidate} removed"
            ) from None
        _promote(run)
        return "promoted"


def promote_rollout(
    spec: Spec, key: str, engine: Engine, settings: RolloutSettings = RolloutSettings()
) -> str:
    """Finish a rollout now, skipping the steps left (the new version must be healthy).

    Raises:
        RolloutError: no rollout is in progress for ``key``, or the new version is unhealthy.
    """
    with _started(spec, key, engine, settings) as run:
        candidate = run.observed.rollout_candidates().get(key)
        if candidate is None:
            raise RolloutError(f"no rollout of service {run.home} is in progress")
        if _candidate_digest(candidate) != _digest(run.service_payload()):
            # Promoting would give all traffic to a version nobody tested.
            raise RolloutError(
                f"{candidate.name} runs another spec than the file gives for {run.home}: "
                "`converge apply` rolls the file's spec out, `converge rollout abort` undoes it"
            )
        service = _wait_healthy(run, candidate.name, "", "the new version")
        _wait_servers_up(run, "next", _desired(service), gate=True)
        _promote(run)
        return "promoted"


def abort_rollout(
    spec: Spec, key: str, engine: Engine, settings: RolloutSettings = RolloutSettings()
) -> str:
    """Send all traffic back to the running version and remove the new one.

    Raises:
        RolloutError: no rollout is in progress for ``key``.
    """
    with _started(spec, key, engine, settings) as run:
        if run.observed.rollout_candidates().get(key) is None:
            raise RolloutError(f"no rollout of service {run.home} is in progress")
        _retire_candidate(run)
        return "aborted"


def rollout_status(spec: Spec, key: str, engine: Engine) -> RolloutStatus:
    """Where the rollout of service ``key`` stands (read only: no write, no reload)."""
    if key not in spec.services:
        raise RolloutError(f"service {key!r} is not in the spec of stack {spec.stack}")
    rollout = spec.services[key].x_converge.rollout
    observed = observe(engine, spec)
    candidate = observed.rollout_candidates().get(key)
    home = object_name(spec.stack, key)
    pending = False
    for item in diff(spec, observed).objects:
        if item.kind == "service" and item.key == key:
            pending = item.status != "unchanged"
    status = RolloutStatus(
        stack=spec.stack,
        key=key,
        service=home,
        strategy=rollout.strategy,
        steps=rollout.shares,
        candidate=candidate.name if candidate is not None else None,
        share=None,
        pending=pending,
    )
    if candidate is not None:
        health = service_health(observed, key + ROLLOUT_SUFFIX, candidate)
        status = _with(status, candidate_running=health.running, candidate_desired=health.desired)
    stats = _read_stats(spec, engine, observed)
    if stats is None:
        return status
    backends = rollout_backends(spec, key)
    per_backend = max(1, len(backends))
    return _with(
        status,
        share=current_share(stats, backends),
        home_up=sum(s.is_up for s in servers(stats, backends, "home")) // per_backend,
        candidate_up=sum(s.is_up for s in servers(stats, backends, "next")) // per_backend,
        figures=candidate_figures((), stats, backends),
    )


def _with(status: RolloutStatus, **changes: Any) -> RolloutStatus:
    return replace(status, **changes)


def _read_stats(
    spec: Spec, engine: Engine, observed: ObservedState
) -> tuple[ServerStat, ...] | None:
    if spec.loadbalancer is None:
        return None
    name = container_name(spec.stack, spec.loadbalancer)
    balancer = next((lb for lb in observed.loadbalancers if lb.owned and lb.name == name), None)
    if balancer is None or f"{ROLLOUT_SUFFIX}" not in (balancer.config or ""):
        return None
    with loadbalancer_engine(spec, engine) as target:
        try:
            return Runtime(target, name, balancer.id).stats()
        except ConvergeError:
            return None

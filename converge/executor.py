"""Plan -> ApplyResult: version-checked writes, bounded retries, and waiting for convergence.

Phases run in order; the actions of one phase run concurrently (bounded), and a phase starts
only when the one before succeeded and the services it touched converged. The services phase
runs in waves (``depends_on``): a service is written once what it depends on reached its
condition, and skipped when that failed. A job has converged when its current run completed;
a failed job's error carries its last log lines. Every write sends the
version observed and a complete spec built on the observed one. "update out of sequence" means
observe again and retry that object, a bounded number of times. The executor prints nothing: it
reports through ``ApplyEvents`` callbacks.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, cast

from converge.actions import Action, Phase, Plan
from converge.engine import Engine, EventWatch
from converge.engine_spec import (
    network_create_body,
    service_engine_spec,
)
from converge.errors import (
    AlreadyExistsError,
    EngineError,
    InUseError,
    LoadBalancerError,
    NotFoundError,
    OutOfSequenceError,
    RolloutError,
)
from converge.fileobjects import (
    Contents,
    FileKind,
    FileRefs,
    create_labels,
    file_refs,
    resolve_versions,
)
from converge.health import SETTLING_STATES, ServiceHealth, has_failed_tasks, service_health
from converge.images import pull_failure_hint, without_digest
from converge.lb.container import execute_loadbalancer
from converge.naming import (
    CLUSTER_BY_LABEL,
    CLUSTER_LABELS_LABEL,
    CLUSTER_OWNER_CONFIG,
    CLUSTER_OWNER_LABEL,
    CLUSTER_SINCE_LABEL,
    object_name,
    ownership_labels,
)
from converge.observe import observe
from converge.polling import Backoff, Clock, PollTimeoutError, SystemClock, poll_until
from converge.spec import Spec
from converge.state import ObservedService, ObservedState

__all__ = [
    "WAIT_MODES",
    "ActionOutcome",
    "ApplyEvents",
    "ApplyOptions",
    "ApplyResult",
    "WaitMode",
    "apply_plan",
    "service_writes",
    "verify_converged",
]

WaitMode = Literal["stable", "running", "none"]
WAIT_MODES: tuple[WaitMode, ...] = ("stable", "running", "none")


Outcome = Literal[
    "created",
    "updated",
    "scaled",
    "replaced",
    "removed",
    "redeployed",
    "adopted",
    "promoted",
    "aborted",
    "unchanged",
    "failed",
    "skipped",
]
_DONE_OUTCOME: dict[str, Outcome] = {
    "create": "created",
    "update": "updated",
    "scale": "scaled",
    "replace": "replaced",
    "remove": "removed",
    "force": "redeployed",
    "adopt": "adopted",
    "rollout": "promoted",
}
_UNPLACEABLE_GRACE = 5.0


@dataclass(frozen=True)
class ActionOutcome:
    address: str
    kind: str
    outcome: Outcome
    message: str = ""


@dataclass(frozen=True)
class ApplyResult:
    stack: str
    outcomes: tuple[ActionOutcome, ...]
    error: str | None = None
    write_calls: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ApplyEvents:
    """Callbacks for progress; each defaults to doing nothing.

    Attributes:
        action_started: an action's write begins.
        action_finished: its write ended (a service then still has to converge).
        waiting: each poll while services converge: how each of them stands.
        service_converged: the executor judged the service converged (and stable).
        rollout_progress: a blue-green or canary rollout moved on (one line).
    """

    action_started: Callable[[Action], None] = lambda action: None
    action_finished: Callable[[ActionOutcome], None] = lambda outcome: None
    waiting: Callable[[list[ServiceHealth]], None] = lambda progress: None
    service_converged: Callable[[ServiceHealth], None] = lambda health: None
    rollout_progress: Callable[[str], None] = lambda line: None


@dataclass(frozen=True)
class ApplyOptions:
    timeout: float = 600.0
    concurrency: int = 8
    retries: int = 3
    poll_interval: float = 0.5
    stable_for: float | None = None
    """Seconds a service must stay converged; None: its update monitor window (default 5s)."""
    event_fallback: float = 2.0
    """Seconds between observations while every service left is in an update the engine
    itself watches: its events (``/events``) wake the wait at once; polling stays the
    fallback and the source of truth."""
    wait: WaitMode = "stable"
    """How long to wait once written: ``stable`` (converged and held for the stability
    window: the engine's update monitor), ``running`` (every task of the current template
    runs, no window, an update's monitor not waited for), ``none`` (not at all)."""
    clock: Clock = field(default_factory=SystemClock, compare=False, repr=False)
    """Every deadline and sleep of the apply: replaced by a fake clock in tests."""


class _ActionFailedError(Exception):
    pass


@dataclass
class _Run:
    spec: Spec
    engine: Engine
    options: ApplyOptions
    events: ApplyEvents
    deadline: float
    observed: ObservedState
    contents: Contents | None = field(default=None, repr=False)
    rotate: tuple[str, ...] = ()
    outcomes: list[ActionOutcome] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    images: dict[str, str] = field(default_factory=dict)
    """The image to send per service key (``Plan.images``); others as written."""
    registry_auth: bool = False
    sent_credentials: dict[str, bool] = field(default_factory=dict)
    """Per service key written with ``registry_auth``: whether credentials were found."""

    @classmethod
    def start(
        cls,
        spec: Spec,
        engine: Engine,
        observed: ObservedState,
        events: ApplyEvents | None,
        options: ApplyOptions | None,
        plan: Plan | None = None,
    ) -> _Run:
        """A run whose overall deadline starts now."""
        options = options or ApplyOptions()
        return cls(
            spec=spec,
            engine=engine,
            options=options,
            events=events or ApplyEvents(),
            deadline=options.clock.monotonic() + options.timeout,
            observed=observed,
            images=dict(plan.images) if plan is not None else {},
            registry_auth=plan.registry_auth if plan is not None else False,
        )

    def service_spec(
        self,
        key: str,
        base: Mapping[str, Any] | None = None,
        force_update: bool = False,
        state: ObservedState | None = None,
    ) -> dict[str, Any]:
        """The ServiceSpec to send for service ``key``, with the plan's image and the versions
        of secrets and configs in ``state`` (the last observed by default)."""
        return service_engine_spec(
            self.spec,
            key,
            base=base,
            force_update=force_update,
            files=self.files(state),
            image=self.images.get(key),
        )

    def _credentials(self, key: str) -> str | None:
        """The ``X-Registry-Auth`` header for service ``key``'s image, when asked for."""
        if not self.registry_auth or key not in self.spec.services:
            return None
        header = self.engine.registry_auth(self.images.get(key) or self.spec.services[key].image)
        self.sent_credentials[key] = header is not None
        return header

    def create_service(self, key: str, name: str) -> None:
        header = self._credentials(key)
        if header is None:
            self.engine.create_service(name, self.service_spec(key))
        else:
            self.engine.create_service(name, self.service_spec(key), registry_auth=header)

    def update_service(self, key: str, current: ObservedService, payload: dict[str, Any]) -> None:
        """Without credentials to send, the engine keeps those the service had."""
        header = self._credentials(key)
        if header is None:
            self.engine.update_service(current.name, current.id, current.version, payload)
        else:
            self.engine.update_service(
                current.name, current.id, current.version, payload, registry_auth=header
            )

    def refresh(self) -> ObservedState:
        self.observed = observe(self.engine, self.spec)
        return self.observed

    def files(self, state: ObservedState | None = None) -> FileRefs:
        """The versions of secrets and configs the services reference, as observed now."""
        versions = resolve_versions(self.spec, state or self.observed, self.contents, self.rotate)
        return file_refs(versions)


def service_writes(
    plan: Plan,
    spec: Spec,
    engine: Engine,
    observed: ObservedState,
    contents: Contents | None,
) -> tuple[Callable[[str, Mapping[str, Any] | None], dict[str, Any]], Callable[[str], str | None]]:
    """How ``plan`` writes a service outside an apply (``converge rollout promote``), as apply
    does: its ServiceSpec on a base (the plan's image, the secrets' and configs' versions in
    ``observed``) and the ``X-Registry-Auth`` header to send with it, if any."""
    run = _Run.start(spec, engine, observed, None, None, plan)
    run.contents = contents
    return partial(_spec_on_base, run), run._credentials


def _spec_on_base(run: _Run, key: str, base: Mapping[str, Any] | None) -> dict[str, Any]:
    return run.service_spec(key, base=base)


def apply_plan(
    plan: Plan,
    spec: Spec,
    engine: Engine,
    observed: ObservedState,
    events: ApplyEvents | None = None,
    options: ApplyOptions | None = None,
    contents: Contents | None = None,
    rotate: tuple[str, ...] = (),
) -> ApplyResult:
    """Execute ``plan`` phase by phase and wait until the swarm converged.

    ``contents`` holds the secrets' and configs' contents by (kind, key), read from their
    sources (``converge.sources``); ``rotate`` the secrets to give a new version even when
    their current one cannot be verified.

    Never raises for a failed action: the result lists every action with its outcome
    (later ones ``skipped``) and ``error`` says what failed.
    """
    run = _Run.start(spec, engine, observed, events, options, plan)
    run.contents, run.rotate = contents, rotate
    writes_before = engine.write_count
    phases = sorted({action.phase for action in plan.actions})
    error: str | None = None
    for phase in phases:
        actions = [action for action in plan.actions if action.phase == phase]
        if error is not None:
            run.outcomes.extend(
                ActionOutcome(a.address, a.kind, "skipped", "an earlier phase failed")
                for a in actions
            )
            continue
        error = _run_phase(run, phase, actions)
    return ApplyResult(
        stack=plan.stack,
        outcomes=tuple(run.outcomes),
        error=error,
        write_calls=engine.write_count - writes_before,
    )


def verify_converged(
    spec: Spec,
    engine: Engine,
    observed: ObservedState,
    events: ApplyEvents | None = None,
    options: ApplyOptions | None = None,
) -> ApplyResult:
    """Wait, writing nothing, until the spec's services have converged, and report the state
    they are in: for an apply with nothing to change, and after an apply's actions for the
    services they did not touch.

    An update in flight (a concurrent or killed apply's) is waited for; a paused or rolled-back
    update, whenever it happened, tasks that keep failing or cannot be placed fail, as in
    ``apply_plan``. A service that runs as wanted and never failed with its current spec is
    accepted at once; one whose current spec failed before must hold for its monitor window.
    """
    run = _Run.start(spec, engine, observed, events, options)
    writes_before = engine.write_count
    keys = [key for key in spec.services if key in observed.owned_services()]
    waits = keys and run.options.wait != "none"
    error = _wait_for_services(run, keys, verify_only=True) if waits else None
    return ApplyResult(
        stack=spec.stack, outcomes=(), error=error, write_calls=engine.write_count - writes_before
    )


def _run_phase(run: _Run, phase: Phase, actions: list[Action]) -> str | None:
    if phase is Phase.SERVICES:
        return _run_waves(run, actions)
    return _run_actions(run, phase, actions)


def _run_waves(run: _Run, actions: list[Action]) -> str | None:
    """The services phase, wave after wave (``depends_on``): before a service is written, the
    services it depends on reach their condition; those this apply does not write are
    checked as they stand. A service whose required dependency failed is skipped, and so is
    everything that depends on it; services that do not depend on it go on."""
    acted = {action.key for action in actions if action.object_kind == "service"}
    failed: dict[str, str] = {}
    errors: list[str] = []
    for wave in sorted({action.wave for action in actions}):
        in_wave = [action for action in actions if action.wave == wave]
        untouched = sorted(
            {
                name
                for action in in_wave
                for name in _dependencies(run, action.key)
                if name not in acted and name not in failed
            }
        )
        if untouched:
            for key, message in _wait_services(run, untouched, verify_only=True).items():
                failed[key] = message
                errors.append(message)
        ready: list[Action] = []
        for action in in_wave:
            blocking = (
                [
                    name
                    for name, dependency in run.spec.services[action.key].depends_on.items()
                    if dependency.required and name in failed
                ]
                if action.key in run.spec.services
                else []
            )
            if blocking:
                failed[action.key] = f"skipped: {', '.join(blocking)} failed"
                outcome = ActionOutcome(
                    action.address,
                    action.kind,
                    "skipped",
                    f"not touched: it depends on {', '.join(blocking)}, which failed",
                )
                run.outcomes.append(outcome)
                run.events.action_finished(outcome)
            else:
                ready.append(action)
        if not ready:
            continue
        error = _run_actions(run, Phase.SERVICES, ready, failed)
        if error is not None:
            errors.append(error)
    return "; ".join(errors) if errors else None


def _dependencies(run: _Run, key: str) -> list[str]:
    service = run.spec.services.get(key)
    return sorted(service.depends_on) if service is not None else []


def _run_actions(
    run: _Run, phase: Phase, actions: list[Action], failed: dict[str, str] | None = None
) -> str | None:
    """Run ``actions`` at once (bounded), then wait for the services they wrote; the error,
    if any. ``failed`` collects the keys of services that failed, with why."""
    failed = {} if failed is None else failed

    def execute(action: Action) -> ActionOutcome:
        run.events.action_started(action)
        try:
            if action.object_kind == "loadbalancer":
                # Rendered from a fresh observation: tasks backends follow the new placement.
                state = run.observed if action.kind == "remove" else run.refresh()
                done = cast(Outcome, execute_loadbalancer(run.spec, action, run.engine, state))
            elif action.kind == "rollout":
                done = cast(Outcome, _rollout(run, action))
            else:
                _execute(run, action)
                done = _DONE_OUTCOME[action.kind]
            outcome = ActionOutcome(action.address, action.kind, done)
        except (_ActionFailedError, EngineError, LoadBalancerError, RolloutError) as failure:
            outcome = ActionOutcome(action.address, action.kind, "failed", str(failure))
        run.events.action_finished(outcome)
        return outcome

    workers = max(1, min(run.options.concurrency, len(actions)))
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(execute, action) for action in actions]
        outcomes = [future.result() for future in futures]
    except BaseException:
        # Interrupted (SIGINT, SIGTERM): start no further action, and stop the waits of those
        # running, so that the lock is released soon and no write follows the release.
        run.cancelled.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    run.outcomes.extend(outcomes)
    broken = [
        (action, outcome)
        for action, outcome in zip(actions, outcomes, strict=True)
        if outcome.outcome == "failed"
    ]
    if broken:
        failed.update({action.key: outcome.message for action, outcome in broken})
        return "; ".join(outcome.message for _, outcome in broken)
    to_wait = [
        action.key
        for action in actions
        if action.object_kind == "service" and action.kind != "remove"
    ]
    if phase is Phase.DRAINS:
        to_wait = list(run.spec.services)
    if phase is Phase.FILES:
        run.refresh()  # the services reference the new versions by id
    if not to_wait or run.options.wait == "none":
        return None
    failures = _wait_services(run, to_wait)
    failed.update(failures)
    return "; ".join(dict.fromkeys(failures.values())) if failures else None


# ---------------------------------------------------------------------------------------------
# Writes


def _with_retries(run: _Run, what: str, write: Callable[[ObservedState], None]) -> None:
    """Run ``write`` against the latest observation, observing again when out of sequence."""
    for attempt in range(run.options.retries + 1):
        _stop_if_cancelled(run)
        try:
            write(run.observed)
            return
        except OutOfSequenceError as error:
            if attempt == run.options.retries:
                raise _ActionFailedError(
                    f"{what}: still out of sequence after {run.options.retries} retries "
                    f"(someone else keeps changing it): {error}"
                ) from None
            run.refresh()


def _execute(run: _Run, action: Action) -> None:
    spec, engine = run.spec, run.engine
    if action.object_kind == "cluster":
        _record_cluster_owner(run, action)
    elif action.object_kind == "node":
        _with_retries(run, f"node {action.name}", lambda state: _update_node(run, state, action))
    elif action.object_kind == "network":
        _execute_network(run, action)
    elif action.object_kind in ("secret", "config"):
        _execute_file_object(run, action)
    elif action.object_kind == "service":
        name = object_name(spec.stack, action.key)
        if action.kind == "create":
            run.create_service(action.key, name)
        elif action.kind == "remove":
            service_id = _require_id(action)
            engine.remove_service(action.name, service_id)
            # Gone when the engine no longer lists it: a plan made right after (destroy, then
            # apply) must not see it.
            _wait_until(
                run,
                lambda: all(item["ID"] != service_id for item in engine.services()),
                f"service {action.name} to be gone",
            )
        elif action.kind == "adopt":
            _with_retries(run, f"service {name}", lambda state: _adopt_service(run, state, action))
            if action.changes:
                run.refresh()
                _with_retries(
                    run, f"service {name}", lambda state: _update_service(run, state, action)
                )
        elif action.kind == "replace":
            engine.remove_service(name, _require_id(action))
            _wait_until(run, lambda: _service_gone(run, name), f"service {name} to be removed")
            run.create_service(action.key, name)
        else:
            _with_retries(run, f"service {name}", lambda state: _update_service(run, state, action))


def _rollout(run: _Run, action: Action) -> str:
    """Blue-green or canary through the balancer (``converge.rollout``), within the apply's
    deadline; progress lines go to the ``rollout_progress`` callback."""
    from converge.rollout import RolloutSettings, run_rollout

    settings = RolloutSettings(
        timeout=max(1.0, run.deadline - run.options.clock.monotonic()),
        poll_interval=run.options.poll_interval,
        stable_for=run.options.stable_for if run.options.stable_for is not None else 1.0,
        clock=run.options.clock,
        progress=run.events.rollout_progress,
        service_spec=partial(_spec_on_base, run),
        registry_auth=run._credentials,
        cancelled=run.cancelled.is_set,
    )
    outcome = run_rollout(run.spec, action.key, run.engine, settings)
    run.refresh()
    return outcome


def _execute_file_object(run: _Run, action: Action) -> None:
    """Create a secret or config (a first or a new version) from its source, or remove one."""
    kind: FileKind = "secret" if action.object_kind == "secret" else "config"
    engine = run.engine
    if action.kind == "remove":
        remove = engine.remove_secret if kind == "secret" else engine.remove_config
        # Gone already (a concurrent apply, or by hand) is what was wanted.
        with contextlib.suppress(NotFoundError):
            remove(action.name, _require_id(action))
        return
    data = (run.contents or {}).get((kind, action.key))
    if data is None:
        raise _ActionFailedError(f"{kind} {action.key}: its content was not read")
    declared = (run.spec.secrets if kind == "secret" else run.spec.configs)[action.key]
    labels = create_labels(run.spec, kind, action.key, data)
    create = engine.create_secret if kind == "secret" else engine.create_config
    create(action.name, data, labels, declared.template_driver)


def _require_id(action: Action) -> str:
    if action.observed_id is None:
        raise _ActionFailedError(f"{action.address}: no observed id to act on")
    return action.observed_id


def _record_cluster_owner(run: _Run, action: Action) -> None:
    """Record the spec as the cluster's owner: a config object whose name is unique in the
    swarm, so two specs racing to own a new cluster cannot both win. A take-over removes the
    previous owner's record first (its id was seen when planning)."""
    from converge.lock import ProcessIdentity

    if action.observed_id is not None:
        with suppress(NotFoundError):
            run.engine.remove_config(CLUSTER_OWNER_CONFIG, action.observed_id)
    labels = {
        CLUSTER_OWNER_LABEL: action.name,
        CLUSTER_SINCE_LABEL: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        CLUSTER_BY_LABEL: ProcessIdentity.current().owner,
    }
    try:
        run.engine.create_config(CLUSTER_OWNER_CONFIG, b"converge cluster owner\n", labels)
    except AlreadyExistsError:
        raise _ActionFailedError(
            "another spec recorded itself as the cluster's owner meanwhile; plan again"
        ) from None


def _update_node(run: _Run, state: ObservedState, action: Action) -> None:
    """Apply the action's changes to the node's latest spec (the engine replaces the whole
    spec: every other field is sent as it is)."""
    node = state.node(action.key)
    if node is None:
        raise _ActionFailedError(f"node {action.key} is no longer part of the swarm")
    node_spec: dict[str, Any] = dict(node.raw_spec)
    labels = dict(node_spec.get("Labels") or {})
    for change in action.changes:
        head = change.path[0]
        if head == "role":
            node_spec["Role"] = change.after
        elif head == "availability":
            node_spec["Availability"] = change.after
        elif head == "labels" and len(change.path) == 1:
            record = {k: v for k, v in labels.items() if k == CLUSTER_LABELS_LABEL}
            labels = {**record, **(change.after or {})}
        elif head == "labels" and change.after is None:
            labels.pop(change.path[1], None)
        elif head == "labels":
            labels[change.path[1]] = change.after
        elif head == "managed_labels" and change.after:
            labels[CLUSTER_LABELS_LABEL] = ",".join(change.after)
        elif head == "managed_labels":
            labels.pop(CLUSTER_LABELS_LABEL, None)
    node_spec["Labels"] = labels
    run.engine.update_node(node.hostname, node.id, node.version, node_spec)


def _update_service(run: _Run, state: ObservedState, action: Action) -> None:
    current = state.owned_services().get(action.key)
    if current is None:
        raise _ActionFailedError(f"service {action.name} disappeared while applying")
    payload = run.service_spec(
        action.key,
        base=current.raw_spec,
        force_update=action.kind == "force",
        state=state,
    )
    run.update_service(action.key, current, payload)


def _adopt_service(run: _Run, state: ObservedState, action: Action) -> None:
    """Add the stack's ownership label to the service's own labels, nothing else.

    The container labels stay as they are: they belong to the task template, and changing it
    would replace every task. The rest of the spec is sent back as observed.
    """
    current = state.service_named(action.name)
    if current is None or current.id != action.observed_id:
        raise _ActionFailedError(f"service {action.name} disappeared while applying")
    if current.owned:
        if current.stack == run.spec.stack:
            return  # adopted already: a retry after our own write went through
        raise _ActionFailedError(
            f"service {action.name} was taken by stack {current.stack} while applying"
        )
    payload = dict(current.raw_spec)
    payload["Labels"] = {**(payload.get("Labels") or {}), **ownership_labels(run.spec.stack)}
    run.engine.update_service(action.name, current.id, current.version, payload)


def _execute_network(run: _Run, action: Action) -> None:
    spec, engine = run.spec, run.engine
    name = spec.network_name(action.key)
    if action.kind == "create":
        engine.create_network(name, network_create_body(spec, action.key))
    elif action.kind == "remove":
        # The engine refuses while removed services' tasks still hold endpoints on it.
        _remove_network_when_free(run, action.name, _require_id(action))
        _wait_for_network_gone(run, action.name, _require_id(action))
    elif action.kind == "replace":
        _replace_network(run, action, name)


def _replace_network(run: _Run, action: Action, name: str) -> None:
    """Networks are immutable: detach the stack's services, recreate, reattach."""
    network_id = _require_id(action)
    attached = [
        (key, service)
        for key, service in run.observed.owned_services().items()
        if _uses_network(service, network_id)
    ]
    for key, service in attached:
        _with_retries(
            run,
            f"service {service.name}",
            partial(_detach, run, key=key, network_id=network_id),
        )
    _remove_network_when_free(run, name, network_id)
    _wait_for_network_gone(run, name, network_id)
    run.engine.create_network(name, network_create_body(run.spec, action.key))
    run.refresh()
    for key, service in attached:
        if key in run.spec.services:
            _with_retries(
                run,
                f"service {service.name}",
                partial(_reattach, run, key=key),
            )


def _detach(run: _Run, state: ObservedState, key: str, network_id: str) -> None:
    current = state.owned_services().get(key)
    if current is None:
        return
    payload = dict(current.raw_spec)
    task = dict(payload.get("TaskTemplate") or {})
    task["Networks"] = [
        attachment
        for attachment in task.get("Networks") or []
        if attachment.get("Target") != network_id
    ]
    payload["TaskTemplate"] = task
    run.engine.update_service(current.name, current.id, current.version, payload)


def _reattach(run: _Run, state: ObservedState, key: str) -> None:
    current = state.owned_services().get(key)
    if current is None:
        raise _ActionFailedError(f"service {key} disappeared while its network was replaced")
    payload = run.service_spec(key, base=current.raw_spec, state=state)
    run.update_service(key, current, payload)


def _uses_network(service: ObservedService, network_id: str) -> bool:
    task = service.raw_spec.get("TaskTemplate") or {}
    return any(item.get("Target") == network_id for item in task.get("Networks") or [])


def _remove_network_when_free(run: _Run, name: str, network_id: str) -> None:
    def removed() -> bool:
        try:
            run.engine.remove_network(name, network_id)
        except NotFoundError:
            return True
        except InUseError:
            return False
        return True

    _wait_until(run, removed, f"network {name} to be free of tasks")


def _wait_for_network_gone(run: _Run, name: str, network_id: str) -> None:
    # Removal is asynchronous in the manager's network store: the name is free, and a plan made
    # next (destroy, then apply) sees it missing, only once the list drops it.
    _wait_until(
        run,
        lambda: all(item["Id"] != network_id for item in run.engine.networks()),
        f"network {name} to be gone",
    )


def _service_gone(run: _Run, name: str) -> bool:
    return run.refresh().service_named(name) is None


def _stop_if_cancelled(run: _Run) -> None:
    if run.cancelled.is_set():
        raise _ActionFailedError("interrupted")


def _wait_until(run: _Run, condition: Callable[[], bool], what: str) -> None:
    clock = run.options.clock
    interval = run.options.poll_interval

    def unless_cancelled() -> bool:
        _stop_if_cancelled(run)
        return condition()

    try:
        poll_until(
            unless_cancelled,
            timeout=max(0.0, run.deadline - clock.monotonic()),
            clock=clock,
            backoff=Backoff(initial=interval / 4, maximum=interval),
        )
    except PollTimeoutError:
        raise _ActionFailedError(f"timed out waiting for {what}") from None


# ---------------------------------------------------------------------------------------------
# Convergence


def _stable_window(run: _Run, service: ObservedService | None) -> float:
    if run.options.wait == "running":
        return 0.0
    if service is not None and service.is_job:
        return 0.0  # a completed task stays completed: there is nothing to watch
    if run.options.stable_for is not None:
        return run.options.stable_for
    if service is None:
        return 0.0
    monitor = (service.raw_spec.get("UpdateConfig") or {}).get("Monitor")
    return (monitor if monitor is not None else 5_000_000_000) / 1e9


def _wait_for_services(run: _Run, keys: list[str], *, verify_only: bool = False) -> str | None:
    """Wait until ``keys`` converged and held it; the error that ends the wait otherwise."""
    failures = _wait_services(run, keys, verify_only=verify_only)
    return "; ".join(dict.fromkeys(failures.values())) if failures else None


def _wait_services(run: _Run, keys: list[str], *, verify_only: bool = False) -> dict[str, str]:
    """Wait until ``keys`` converged and held it; what failed, by service key, otherwise
    (empty: all converged).

    Args:
        verify_only: nothing was written: update states of any age count (the state the
            service is left in), and a service found converged at once that never failed
            with its current spec has held already.
    """
    with ExitStack() as watching:
        return _wait_loop(run, keys, verify_only, watching)


def _wait_loop(
    run: _Run, keys: list[str], verify_only: bool, watching: ExitStack
) -> dict[str, str]:
    started = _engine_time(run.observed)
    update_since = "" if verify_only else started
    converged_since: dict[str, float] = {}
    unplaceable_since: dict[str, float] = {}
    first_round = True
    watch: EventWatch | Literal[False] | None = False  # False: not opened yet
    while True:
        state = run.refresh()
        owned = state.owned_services()
        progress = [
            service_health(state, key, owned.get(key), started, update_since=update_since)
            for key in keys
        ]
        run.events.waiting(progress)
        now = run.options.clock.monotonic()
        # While the engine is still updating or rolling back, let it finish: the apply then
        # reports where it settled, and the old tasks are back when it returns.
        failures = {
            item.key: _failure_text(run, item) + _pull_hint(run, item)
            for item in progress
            if item.failure and (item.update_state not in SETTLING_STATES or now > run.deadline)
        }
        for item in progress:
            if item.unplaceable is None:
                unplaceable_since.pop(item.key, None)
            # Right after node labels change the scheduler may still judge on the old ones.
            elif now - unplaceable_since.setdefault(item.key, now) >= _UNPLACEABLE_GRACE:
                failures.setdefault(item.key, f"service {item.name}: {item.unplaceable}")
        if failures:
            return failures
        for item in progress:
            if item.converged or (run.options.wait == "running" and _runs_current(item)):
                # The engine completes an update only after watching its new tasks for one
                # more update monitor window (swarmkit's updater): that window has been held
                # already, and waiting it out again doubled the time of every update.
                held = 0.0
                service = owned.get(item.key)
                steady = (
                    verify_only
                    and first_round
                    and service is not None
                    and not has_failed_tasks(state, service)
                )
                if item.update_state == "completed" or steady:
                    held = _stable_window(run, service)
                converged_since.setdefault(item.key, now - held)
            else:
                converged_since.pop(item.key, None)
        if all(
            item.key in converged_since
            and now - converged_since[item.key] >= _stable_window(run, owned.get(item.key))
            for item in progress
        ):
            for item in progress:
                run.events.service_converged(item)
            return {}
        if now > run.deadline:
            waiting = ", ".join(
                (
                    f"{item.name} ({item.completed}/{item.desired} completed)"
                    if item.job
                    else f"{item.name} ({item.running}/{item.desired} running"
                    + (f", update {item.update_state}" if item.update_state else "")
                    + ")"
                )
                + (f", waiting on {item.unfinished}" if item.unfinished else "")
                for item in progress
                if not item.converged
            )
            message = f"timed out waiting for services to converge: {waiting or 'stability window'}"
            return {item.key: message for item in progress if not item.converged} or {
                keys[0]: message
            }
        first_round = False
        left = [item for item in progress if item.key not in converged_since]
        if run.options.wait == "stable" and left and all(_engine_watches(item) for item in left):
            # The engine watches every update left and reports its end as an event.
            if watch is False:
                watch = watching.enter_context(run.engine.watch_events(run.spec.stack))
                if watch is not None:
                    continue  # observe once more: nothing between the last look and now is lost
            if watch is not None:
                watch.wait(run.options.event_fallback)
                continue
        run.options.clock.sleep(run.options.poll_interval)


def _engine_watches(item: ServiceHealth) -> bool:
    """An update in flight that the engine monitors itself: it ends in an update state change
    (``completed``, ``paused``, a rollback), which the manager reports as a service event."""
    return item.failure is None and item.update_state in SETTLING_STATES


def _runs_current(item: ServiceHealth) -> bool:
    """Every wanted task runs the current template: enough for ``--wait running`` even while
    the engine still watches an update through its monitor window."""
    return (
        item.failure is None
        and item.running == item.desired
        and item.updated == item.desired
        and item.update_state != "rollback_started"
    )


def _pull_hint(run: _Run, item: ServiceHealth) -> str:
    """Where tasks were rejected because their image could not be had: which registry, and
    whether credentials went with it (the engine's own error names only the image)."""
    service = run.spec.services.get(item.key)
    if service is None:
        return ""
    image = run.images.get(item.key) or service.image
    shown = without_digest(image)
    if not any(error.state == "rejected" and shown in error.message for error in item.errors):
        return ""
    return "; " + pull_failure_hint(image, run.sent_credentials.get(item.key))


JOB_LOG_LINES = 10
"""How many of a failed job task's last log lines an apply's error shows."""


def _failure_text(run: _Run, item: ServiceHealth) -> str:
    """``service NAME: why``; for a failed job, with the last lines of its task's logs."""
    if not item.job or item.failed_task is None:
        return f"service {item.name}: {item.failure}"
    text = f"job {item.name}: {item.failure}"
    service = run.observed.owned_services().get(item.key)
    template = (service.raw_spec.get("TaskTemplate") or {}) if service else {}
    if (template.get("LogDriver") or {}).get("Name") == "none":
        # Nothing to ask: the engine keeps no logs for this driver (it answers an empty log).
        return f"{text}; its logs cannot be read: its log driver is none"
    try:
        lines = run.engine.task_logs(item.failed_task, JOB_LOG_LINES).splitlines()
    except EngineError as error:
        return f"{text}; its logs cannot be read through the engine ({error})"
    if not lines:
        return f"{text}; it logged nothing"
    shown = "\n".join(f"    {line}" for line in lines[-JOB_LOG_LINES:])
    return f"{text}; its last log lines:\n{shown}"


def _engine_time(state: ObservedState) -> str:
    """The newest task timestamp seen: later failures are new (engine clock, not ours)."""
    return max((task.timestamp for task in state.tasks), default="")

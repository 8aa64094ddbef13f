"""The library API behind the commands: plan, apply, destroy, drift, status, saved plans.

The CLI is a thin layer over these functions; tests and other tools can call them directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from converge.actions import PLAN_FORMAT_VERSION, Plan, PlanFinding
from converge.collector import collector_paused
from converge.diff import diff
from converge.errors import PlanError
from converge.files import atomic_write
from converge.health import service_health
from converge.loader import LoadedSpec, load_spec
from converge.planner import PlanOptions, plan
from converge.provenance import git_revision
from converge.render import plan_document
from converge.spec import Spec
from converge.state import ObservedState

if TYPE_CHECKING:
    from converge.drift import DriftReport
    from converge.engine import Engine
    from converge.executor import ApplyEvents, ApplyOptions, ApplyResult
    from converge.lock import LockInfo

# The modules that reach the engine import docker (~125 ms): the functions that use them import
# them inside, so that importing this API (as the CLI's fast commands do) stays cheap.

__all__ = [
    "ApplyHooks",
    "ApplyRequest",
    "ApplyRun",
    "ApplyStatus",
    "PlanResult",
    "apply",
    "check_drift",
    "check_saved_plan",
    "check_saved_plan_version",
    "destroy",
    "execute_plan",
    "export_stack",
    "is_saved_plan",
    "load_apply_input",
    "make_plan",
    "read_saved_plan",
    "resolved_spec_hash",
    "save_plan",
    "saved_plan_options",
    "saved_spec_files",
    "stack_status",
]


@dataclass(frozen=True)
class PlanResult:
    loaded: LoadedSpec
    observed: ObservedState
    plan: Plan
    options: PlanOptions = field(default_factory=PlanOptions)
    """What the plan was asked for: a saved plan keeps it, for apply to plan the same way."""


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
    from converge.lock import holder_state, read_lock
    from converge.observe import observe

    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
    with collector_paused():
        observed = observe(engine, loaded.spec)
        difference = diff(loaded.spec, observed)
        result = plan(
            loaded.spec,
            difference,
            observed,
            options,
            spec_digest=resolved_spec_hash(loaded),
            spec_files=loaded.files,
        )
    holder = read_lock(engine, loaded.spec.stack)
    state = holder_state(holder) if holder is not None else "live"
    if holder is not None and state != "live":
        result = _with_findings(result, PlanFinding("warning", "lock", holder.gone_message(state)))
    return PlanResult(loaded, observed, result, options)


def _with_findings(result: Plan, *findings: PlanFinding) -> Plan:
    return replace(result, findings=(*result.findings, *findings))


def save_plan(result: PlanResult, path: str | os.PathLike[str]) -> None:
    """Write a plan for ``apply`` (or ``show``) to use later.

    Secrets are masked. Besides the plan document it records the converge version (another
    version refuses the plan), the options it was made with, and each spec file: its path,
    absolute and relative to the plan file (so the plan works from another directory, or in
    another checkout beside its spec), and the sha256 of its content. The file is replaced
    whole, readable by others (0644) as a plain write with the usual umask made it.
    """
    from converge.version import converge_version

    target = Path(path).absolute()
    document = plan_document(result.plan, result.loaded)
    document["converge_version"] = converge_version()
    document["options"] = {
        "prune": result.options.prune,
        "rebalance": result.options.rebalance,
        "adopt": result.options.adopt,
        "targets": list(result.options.targets),
    }
    document["spec_files"] = [
        {
            "path": str(Path(file).absolute()),
            "relative_to_plan": os.path.relpath(Path(file).absolute(), target.parent),
            "sha256": _file_digest(Path(file)),
        }
        for file in result.loaded.files
    ]
    atomic_write(target, json.dumps(document, indent=2, default=str) + "\n", mode=0o644)


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def execute_plan(
    result: PlanResult,
    engine: Engine,
    events: ApplyEvents | None = None,
    options: ApplyOptions | None = None,
) -> ApplyResult:
    """Apply a plan made by ``make_plan`` and wait for the swarm to converge.

    Raises:
        PlanError: the plan has errors (nothing is touched).
    """
    from converge.executor import apply_plan

    if result.plan.errors:
        problems = "; ".join(f"{item.address}: {item.message}" for item in result.plan.errors)
        raise PlanError(f"the plan has errors, nothing was changed: {problems}")
    return apply_plan(result.plan, result.loaded.spec, engine, result.observed, events, options)


ApplyStatus = Literal["no_changes", "plan_errors", "cancelled", "applied", "failed"]
"""``no_changes``: nothing to change and the services were verified converged and healthy;
``failed``: an action failed, or the swarm did not converge (with or without changes)."""


@dataclass(frozen=True)
class ApplyRequest:
    """How to apply: what to plan, how to execute, how long to wait for the stack's lock.

    Attributes:
        saved_plan: a plan saved by ``converge plan --out``: apply exactly it, or refuse it
            when the swarm or the spec moved since (``read_saved_plan``).
        apply_options: the executor's options (``converge.executor.ApplyOptions``); None for
            its defaults.
    """

    plan_options: PlanOptions = field(default_factory=PlanOptions)
    apply_options: ApplyOptions | None = None
    lock_timeout: float = 0.0
    saved_plan: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ApplyHooks:
    """What the caller is told, and asked, while apply runs (the CLI prints and prompts here).

    Attributes:
        plan_ready: the plan about to be applied (or found empty), for showing it.
        confirm: asked once before any write; False cancels and nothing is changed.
        lock_waiting: another apply holds the stack's lock; called once before waiting.
        events: the executor's progress callbacks (also while an empty plan is verified).
    """

    plan_ready: Callable[[PlanResult], None] = lambda result: None
    confirm: Callable[[PlanResult], bool] = lambda result: True
    lock_waiting: Callable[[LockInfo], None] = lambda holder: None
    events: ApplyEvents | None = None


@dataclass(frozen=True)
class ApplyRun:
    """What apply did: the plan it acted on and the executor's result (of the changes, or of
    verifying that an empty plan's swarm converged); None when it stopped before either."""

    plan: PlanResult
    status: ApplyStatus
    result: ApplyResult | None = None

    @property
    def ok(self) -> bool:
        """Whether the swarm now matches the spec and is healthy (verified, never assumed)."""
        return self.status in ("no_changes", "applied")


def load_apply_input(
    paths: Sequence[str | os.PathLike[str]],
    environ: Mapping[str, str] | None = None,
    *,
    stack: str | None = None,
    env_files: Sequence[str | os.PathLike[str]] | None = None,
) -> tuple[LoadedSpec, dict[str, Any] | None]:
    """The spec to apply, and the saved plan when ``paths`` is one plan file.

    Args:
        paths: compose files, or one saved plan (which names its files and stack).
        environ: variables for interpolation (default: the process environment).
        stack: the stack's name from the command line, if given.
        env_files: variable files (``--env-file``; default: ``.env`` beside the first file).

    A saved plan's spec files are found beside the plan as they were when it was saved (or at
    their absolute paths), and must still have the content they had.

    Raises:
        SpecError: the spec is invalid.
        PlanError: the saved plan is unreadable, of an unknown format, of another converge
            version, its spec files are gone or changed, or it is given with other files.
    """
    plans = [path for path in paths if is_saved_plan(path)]
    if plans and len(paths) > 1:
        raise PlanError(
            f"{os.fspath(plans[0])} is a saved plan: it must be the only argument "
            f"(converge apply {os.fspath(plans[0])}); it names its spec files itself"
        )
    if plans:
        saved = read_saved_plan(plans[0])
        check_saved_plan_version(saved, plans[0])
        stack = stack or saved.get("stack") or None
        files = saved_spec_files(saved, plans[0])
        return load_spec(files, environ=environ, stack=stack, env_files=env_files), saved
    return load_spec(paths, environ=environ, stack=stack, env_files=env_files), None


def check_saved_plan_version(document: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse a plan saved by another converge version: its plan may mean something else.

    Raises:
        PlanError: naming both versions.
    """
    from converge.version import converge_version

    saved, running = document.get("converge_version"), converge_version()
    if saved != running:
        made_by = f"converge {saved}" if saved else "an older converge"
        raise PlanError(
            f"{os.fspath(path)} was saved by {made_by}; this is converge {running}, and a "
            "saved plan is applied only by the version that made it: run 'converge plan' again"
        )


def saved_spec_files(document: Mapping[str, Any], path: str | os.PathLike[str]) -> list[Path]:
    """The spec files of a saved plan, found beside it (as saved) or at their absolute paths.

    Raises:
        PlanError: a file is nowhere to be found, or its content changed since.
    """
    plan_dir = Path(path).absolute().parent
    files: list[Path] = []
    for entry in document.get("spec_files") or []:
        beside = Path(os.path.normpath(plan_dir / entry["relative_to_plan"]))
        candidates = [beside, Path(entry["path"])]
        existing = [candidate for candidate in candidates if candidate.is_file()]
        matching = [found for found in existing if _file_digest(found) == entry["sha256"]]
        if matching:
            files.append(matching[0])
        elif existing:
            raise PlanError(
                f"the spec file {existing[0]} changed since the plan was saved; "
                "run 'converge plan' again"
            )
        else:
            looked = " or ".join(str(candidate) for candidate in dict.fromkeys(candidates))
            raise PlanError(f"the saved plan's spec file is not found: looked for {looked}")
    if not files:
        raise PlanError(f"{os.fspath(path)} names no spec file")
    return files


def saved_plan_options(document: Mapping[str, Any]) -> PlanOptions:
    """The options a saved plan was made with: apply plans again exactly so."""
    options = document.get("options") or {}
    return PlanOptions(
        prune=bool(options.get("prune", False)),
        rebalance=bool(options.get("rebalance", False)),
        targets=tuple(options.get("targets") or ()),
        adopt=bool(options.get("adopt", False)),
    )


def apply(
    loaded: LoadedSpec,
    engine: Engine,
    request: ApplyRequest = ApplyRequest(),
    hooks: ApplyHooks = ApplyHooks(),
) -> ApplyRun:
    """Plan under the stack's lock, confirm, execute, and wait until the swarm converged.

    With nothing to change apply writes nothing, not even the lock: it waits (up to
    ``request.lock_timeout``) while a live apply holds the lock, then verifies that the
    services converged and are healthy, waiting for updates in flight. A lock whose holder is
    gone is taken over by an apply that writes, and reported by one that does not.

    Raises:
        EngineError: the engine is unreachable, not a manager, or refused a read.
        LockError: another apply holds the stack's lock past ``request.lock_timeout``.
        PlanError: the saved plan is stale.
    """
    from converge.lock import stack_lock, wait_for_release

    options = request.apply_options or _default_apply_options()
    if request.saved_plan is None:
        unlocked = make_plan(loaded, engine, request.plan_options)
        if _nothing_to_do(unlocked):
            waited, _ = wait_for_release(
                engine,
                loaded.spec.stack,
                wait=request.lock_timeout,
                on_wait=hooks.lock_waiting,
                clock=options.clock,
            )
            if waited:  # the holder may have changed the swarm: plan again
                unlocked = make_plan(loaded, engine, request.plan_options)
            if _nothing_to_do(unlocked):
                hooks.plan_ready(unlocked)
                return _verified(unlocked, engine, request, hooks)
    taken_over: list[LockInfo] = []
    with stack_lock(
        engine,
        loaded.spec.stack,
        wait=request.lock_timeout,
        hold_for=options.timeout + 300,
        on_wait=hooks.lock_waiting,
        on_takeover=taken_over.append,
        clock=options.clock,
    ):
        planned = make_plan(loaded, engine, request.plan_options)
        if taken_over:
            planned = replace(
                planned,
                plan=_with_findings(
                    planned.plan,
                    *(PlanFinding("warning", "lock", _took_over(item)) for item in taken_over),
                ),
            )
        if request.saved_plan is not None:
            check_saved_plan(request.saved_plan, planned)
        hooks.plan_ready(planned)
        if planned.plan.errors:
            return ApplyRun(planned, "plan_errors")
        if planned.plan.has_changes:
            if not hooks.confirm(planned):
                return ApplyRun(planned, "cancelled")
            result = execute_plan(planned, engine, hooks.events, request.apply_options)
            if result.ok:
                result = _verify_untouched(planned, engine, request, hooks, result)
            return ApplyRun(planned, "applied" if result.ok else "failed", result)
    # Nothing to change after all (another apply did it while we waited): verify, unlocked.
    return _verified(planned, engine, request, hooks)


def _nothing_to_do(result: PlanResult) -> bool:
    return not result.plan.has_changes and not result.plan.errors


def _took_over(holder: LockInfo) -> str:
    return (
        f"took over the lock of stack {holder.stack} from {holder.owner} "
        f"(lock id {holder.lock_id}), which was no longer running"
    )


def _verified(
    planned: PlanResult, engine: Engine, request: ApplyRequest, hooks: ApplyHooks
) -> ApplyRun:
    """The run of an apply with nothing to change: converged and healthy, or failed."""
    from converge.executor import ApplyResult, verify_converged

    if request.plan_options.destroy:  # nothing of the stack is left: nothing to verify
        return ApplyRun(planned, "no_changes", ApplyResult(planned.plan.stack, ()))
    spec = planned.loaded.spec
    result = verify_converged(spec, engine, planned.observed, hooks.events, request.apply_options)
    return ApplyRun(planned, "no_changes" if result.ok else "failed", result)


def _verify_untouched(
    planned: PlanResult,
    engine: Engine,
    request: ApplyRequest,
    hooks: ApplyHooks,
    result: ApplyResult,
) -> ApplyResult:
    """After the plan's actions converged, the services it did not touch must be converged and
    healthy too (an update a killed apply left rolling, a paused one): exit 0 means the stack,
    not only the actions. A destroy, or an apply limited by --target, checks what it did only.
    """
    from converge.executor import verify_converged
    from converge.observe import observe

    if request.plan_options.destroy or request.plan_options.targets:
        return result
    spec = planned.loaded.spec
    checked = verify_converged(
        spec, engine, observe(engine, spec), hooks.events, request.apply_options
    )
    return result if checked.ok else replace(result, error=checked.error)


def destroy(
    loaded: LoadedSpec,
    engine: Engine,
    request: ApplyRequest = ApplyRequest(),
    hooks: ApplyHooks = ApplyHooks(),
) -> ApplyRun:
    """Remove every object the spec's stack owns (like ``docker stack rm``), under its lock.

    Nodes keep their labels and availability; volumes and their data are kept.
    """
    options = replace(request, plan_options=PlanOptions(destroy=True))
    return apply(loaded, engine, options, hooks)


def _default_apply_options() -> ApplyOptions:
    from converge.executor import ApplyOptions

    return ApplyOptions()


def read_saved_plan(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a plan saved by ``converge plan --out``.

    Raises:
        PlanError: unreadable, or not a converge plan of a known format.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PlanError(f"cannot read the saved plan {os.fspath(path)}: {error}") from None
    if not isinstance(document, dict) or "format_version" not in document:
        raise PlanError(f"{os.fspath(path)} is not a plan saved by 'converge plan --out'")
    if str(document["format_version"]).split(".")[0] != PLAN_FORMAT_VERSION.split(".")[0]:
        raise PlanError(
            f"{os.fspath(path)} has plan format {document['format_version']}; this converge "
            f"reads {PLAN_FORMAT_VERSION}"
        )
    return document


def is_saved_plan(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a saved plan (JSON) rather than a YAML spec."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(1) == "{"
    except OSError:
        return False


def check_saved_plan(document: Mapping[str, Any], fresh: PlanResult) -> None:
    """Refuse a saved plan when the spec or any object it saw changed since it was made.

    Raises:
        PlanError: naming what moved.
    """
    if document.get("stack") != fresh.plan.stack:
        raise PlanError(
            f"the saved plan is for stack {document.get('stack')!r}, not {fresh.plan.stack!r}"
        )
    if (document.get("spec") or {}).get("digest") != fresh.plan.spec_digest:
        raise PlanError(
            "the spec (or a variable it reads) changed since the plan was made; "
            "run 'converge plan' again"
        )
    saved: dict[str, int] = document.get("versions") or {}
    moved = [
        f"{address} (version {version} -> {fresh.plan.versions.get(address, 'gone')})"
        for address, version in sorted(saved.items())
        if fresh.plan.versions.get(address) != version
    ]
    appeared = sorted(set(fresh.plan.versions) - set(saved))
    if moved or appeared:
        details = ", ".join(moved + [f"{address} (new)" for address in appeared])
        raise PlanError(
            f"the swarm changed since the plan was made: {details}; run 'converge plan' again"
        )
    # Nothing moved, so the same plan follows; checked all the same, as apply acts on it.
    planned = [(item.get("address"), item.get("kind")) for item in document.get("actions") or []]
    fresh_actions = [(action.address, action.kind) for action in fresh.plan.actions]
    if planned != fresh_actions:
        raise PlanError(
            "the plan made now differs from the saved one (another converge, or other "
            "options?); run 'converge plan' again"
        )


def export_stack(stack: str, engine: Engine) -> str:
    """The running stack ``stack`` as a compose file (YAML text) that plans empty against it.

    Raises:
        EngineError: the engine is unreachable or not a swarm manager.
        ConvergeError: a service uses what converge cannot write yet (secrets, configs).
    """
    import yaml

    from converge.export import export_compose
    from converge.observe import observe

    spec = Spec.model_validate({"x-converge": {"stack": stack}})
    document = export_compose(observe(engine, spec, with_tasks=False))
    header = (
        f"# Exported by converge from the running stack {stack}: the engine's defaults are left\n"
        f"# out; `converge plan -c FILE {stack}` against the same swarm plans no change.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def stack_status(spec: Spec, engine: Engine) -> dict[str, Any]:
    """The stack's services as they run now: counts, placement per node, last task errors;
    and the stack's lock, if one is held (``state`` live, gone or expired)."""
    from converge.lock import holder_state, read_lock
    from converge.observe import observe

    observed = observe(engine, spec)
    holder = read_lock(engine, spec.stack)
    owned = observed.owned_services()
    services = []
    for key in sorted(set(spec.services) | set(owned)):
        health = service_health(observed, key, owned.get(key))
        services.append(
            {
                "key": key,
                "name": health.name,
                "in_spec": key in spec.services,
                "running": health.running,
                "desired": health.desired,
                "update_state": health.update_state,
                "converged": health.converged,
                "failure": health.failure,
                "placement": dict(health.placement),
                "errors": [str(error) for error in health.errors],
            }
        )
    missing = [f"service.{key}" for key in spec.services if key not in owned]
    missing += [f"node.{name}" for name in spec.nodes if observed.node(name) is None]
    lock = None
    if holder is not None:
        state = holder_state(holder)
        lock = {
            "id": holder.lock_id,
            "owner": holder.owner,
            "since": holder.since.isoformat(),
            "expires": holder.expires.isoformat(),
            "state": state,
            "message": holder.gone_message(state)
            if state != "live"
            else f"stack {spec.stack} is being applied by {holder.describe()}",
        }
    return {"stack": spec.stack, "services": services, "missing": missing, "lock": lock}


def check_drift(loaded: LoadedSpec, engine: Engine) -> DriftReport:
    """Observe and plan (read-only: no write call), then report sync and health findings.

    Raises:
        EngineError: the engine is unreachable or not a swarm manager.
    """
    from converge.drift import drift_report

    checked_at = datetime.now(UTC)
    started = time.monotonic()
    result = make_plan(loaded, engine)
    commit, dirty = git_revision(loaded.files)
    return drift_report(
        loaded,
        result.plan,
        result.observed,
        checked_at=checked_at,
        duration=time.monotonic() - started,
        git_commit=commit,
        git_dirty=dirty,
    )

"""The library API behind the commands: plan, apply, destroy, drift, status, saved plans.

The CLI is a thin layer over these functions; tests and other tools can call them directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from converge.actions import PLAN_FORMAT_VERSION, Plan, PlanFinding
from converge.collector import collector_paused
from converge.diff import diff
from converge.errors import EngineError, LockError, PlanError
from converge.fileobjects import slow_digest
from converge.files import atomic_write
from converge.health import service_health
from converge.images import RESOLVE_MODES, ResolveMode, images_to_resolve, service_images
from converge.loader import LoadedSpec, load_spec
from converge.membership import EngineProbe, manages_membership
from converge.naming import GRAPH_LABEL, graph_record_name, object_name, ownership_labels
from converge.ordering import Graph, graph_changes, graph_of
from converge.planner import PlanOptions, plan
from converge.provenance import git_revision
from converge.render import plan_document
from converge.sources import with_sources
from converge.spec import Spec
from converge.state import ObservedState

if TYPE_CHECKING:
    from converge.drift import DriftReport
    from converge.engine import Engine
    from converge.executor import ApplyEvents, ApplyOptions, ApplyResult
    from converge.lock import LockInfo
    from converge.rollout import RolloutStatus

# The modules that reach the engine import docker (~125 ms): the functions that use them import
# them inside, so that importing this API (as the CLI's fast commands do) stays cheap.

__all__ = [
    "ApplyHooks",
    "ApplyRequest",
    "ApplyRun",
    "ApplyStatus",
    "ExportedStack",
    "PlanResult",
    "apply",
    "apply_plan_options",
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
    "rollout_command",
    "rollout_state",
    "save_plan",
    "saved_plan_options",
    "saved_spec_files",
    "stack_settled",
    "stack_status",
    "unlock_stack",
]


@dataclass(frozen=True)
class PlanResult:
    loaded: LoadedSpec
    observed: ObservedState
    plan: Plan
    options: PlanOptions = field(default_factory=PlanOptions)
    """What the plan was asked for: a saved plan keeps it, for apply to plan the same way."""
    warnings: tuple[str, ...] = ()
    """For the operator, not part of the plan: tags no registry resolved to a digest."""


def resolved_spec_hash(loaded: LoadedSpec) -> str:
    """A digest of the spec after interpolation and of its secrets' and configs' contents (hex,
    64 digits): a saved plan is bound to exactly these.

    Never a plain hash: the spec holds values from secret variables, and a plain sha256 in a
    saved plan or a drift report would confirm a guessed value cheaply. It is scrypt, slow on
    purpose, salted with the stack's name (``converge.fileobjects.slow_digest``), so the same
    spec gives the same digest in plan and drift documents.
    """
    return slow_digest(_spec_material(loaded), f"converge-spec:{loaded.spec.stack}".encode())


def _spec_material(loaded: LoadedSpec) -> bytes:
    # The bytes of model_dump_json().encode(), without the str in between (0.2 GB at 100,000
    # services, and a copy of it).
    spec = loaded.spec
    material = hashlib.sha256(spec.__pydantic_serializer__.to_json(spec))
    for (kind, key), data in sorted((loaded.contents or {}).items()):
        material.update(f"\0{kind}\0{key}\0{len(data)}\0".encode())
        material.update(data)
    return material.digest()


def make_plan(
    spec: LoadedSpec | Sequence[str | os.PathLike[str]],
    engine: Engine,
    options: PlanOptions = PlanOptions(),
) -> PlanResult:
    """Load (unless given loaded), read the secrets' and configs' sources, observe, diff and
    plan.

    Raises:
        SpecError: the spec is invalid.
        SourceError: a secret's or config's source cannot be read (nothing is written).
        EngineError: the engine is unreachable or not a swarm manager.
    """
    from converge.lock import holder_state, read_lock
    from converge.members import probe_engines
    from converge.observe import observe

    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
    if not options.destroy:  # a destroy needs no secret's value
        loaded = with_sources(loaded)
    cluster = loaded.spec.cluster
    engines = None
    if cluster is not None and manages_membership(cluster):
        engines = probe_engines(cluster)
        if engine.info().local_state != "active":
            # No swarm yet: the membership steps make it; the rest is planned after them.
            observed = ObservedState(stack=loaded.spec.stack, manager="")
            result = _diff_and_plan(loaded, observed, options, {}, engines)
            return PlanResult(loaded, observed, _with_digest(result, loaded), options)
    with collector_paused(keep=True):  # the plan and what was observed live to the end
        observed = observe(engine, loaded.spec)
        registry_auth = options.with_registry_auth or loaded.spec.x_converge.with_registry_auth
        images: dict[str, str] = {}
        warnings: tuple[str, ...] = ()
        if not options.destroy:
            images, warnings = _resolve_images(
                engine, loaded.spec, observed, _resolve_mode(loaded.spec, options), registry_auth
            )
        result = _diff_and_plan(loaded, observed, options, images, engines)
    result = replace(result, images=images, registry_auth=registry_auth)
    recorded = read_graph_record(engine, loaded.spec.stack)
    if options.destroy:
        # The record goes with the stack; planned even when nothing else is left (a destroy
        # killed after its last removal left it), so that the next destroy removes it.
        if recorded is not None:
            record = graph_record_name(loaded.spec.stack)
            gone = f"removed with the stack (its record, config {record})"
            result = replace(result, graph_changes=(gone,), graph_recorded=True)
    else:
        changes = graph_changes(recorded[1] if recorded else None, graph_of(loaded.spec))
        if changes:
            result = replace(result, graph_changes=changes, graph_recorded=recorded is not None)
    holder = read_lock(engine, loaded.spec.stack)
    state = holder_state(holder) if holder is not None else "live"
    if holder is not None and state != "live":
        result = _with_findings(result, PlanFinding("warning", "lock", holder.gone_message(state)))
    return PlanResult(loaded, observed, _with_digest(result, loaded), options, warnings)


def _with_digest(result: Plan, loaded: LoadedSpec) -> Plan:
    """``result`` identifying its spec by ``resolved_spec_hash``, computed when first read (a
    saved plan, a JSON document, a drift report): a plan shown as text never reads it, and it
    serialises the whole spec. Set last, as ``replace`` reads every field."""

    def digest() -> str:
        return resolved_spec_hash(loaded)

    return replace(result, spec_digest=digest)


def _diff_and_plan(
    loaded: LoadedSpec,
    observed: ObservedState,
    options: PlanOptions,
    images: dict[str, str],
    engines: Mapping[str, EngineProbe] | None,
) -> Plan:
    difference = diff(
        loaded.spec, observed, loaded.contents, options.rotate, images, prune=options.prune
    )
    return plan(
        loaded.spec, difference, observed, options, spec_files=loaded.files, engines=engines
    )


def _resolve_mode(spec: Spec, options: PlanOptions) -> ResolveMode:
    mode = options.resolve_image or spec.x_converge.resolve_image or "always"
    if mode not in RESOLVE_MODES:
        raise PlanError(f"--resolve-image must be one of {', '.join(RESOLVE_MODES)}, not {mode!r}")
    return cast(ResolveMode, mode)


def _resolve_images(
    engine: Engine, spec: Spec, observed: ObservedState, mode: ResolveMode, registry_auth: bool
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Ask the registries (through the engine) for the digest of each tag to resolve.

    A tag no registry gives a digest for is used as written, with a warning, as
    ``docker stack deploy`` does: images built on the nodes themselves are in no registry.

    Returns:
        The image to send per service key, and one warning per tag left unresolved.
    """
    from converge.errors import EngineError, EngineUnavailableError

    def lookup(image: str) -> tuple[str, str | None, str]:
        try:
            auth = engine.registry_auth(image) if registry_auth else None
            return image, engine.image_digest(image, auth), ""
        except EngineUnavailableError:
            raise
        except EngineError as error:
            return image, None, str(error)

    tags = images_to_resolve(spec, observed, mode)
    answers: list[tuple[str, str | None, str]] = []
    if tags:
        # Each lookup is a registry round trip through the manager: ask them side by side.
        with ThreadPoolExecutor(max_workers=min(8, len(tags))) as pool:
            answers = list(pool.map(lookup, tags))
    digests = {image: digest for image, digest, _ in answers if digest is not None}
    warnings = tuple(
        f"image {image} could not be resolved to a digest ({reason}); each node uses the "
        "tag as it finds it, so nodes may run different content"
        for image, digest, reason in answers
        if digest is None
    )
    return service_images(spec, observed, digests), warnings


def read_graph_record(engine: Engine, stack: str) -> tuple[str, Graph] | None:
    """The id and the graph of the stack's graph record, if an apply left one."""
    name = graph_record_name(stack)
    for config in engine.configs({"name": name}):
        spec = config.get("Spec") or {}
        if spec.get("Name") != name:
            continue
        try:
            graph = json.loads((spec.get("Labels") or {}).get(GRAPH_LABEL, "{}"))
        except ValueError:
            graph = {}
        return str(config["ID"]), graph if isinstance(graph, dict) else {}
    return None


def _record_graph(engine: Engine, planned: PlanResult) -> None:
    """Replace the stack's graph record with the spec's graph (configs are immutable); only
    when the plan found the graph changed, so an apply with nothing to change writes nothing;
    a destroy removes it."""
    stack = planned.loaded.spec.stack
    if planned.options.destroy:
        gone = read_graph_record(engine, stack)
        if gone is not None:
            engine.remove_config(graph_record_name(stack), gone[0])
        return
    if not planned.plan.graph_changes or planned.options.targets:
        return
    recorded = read_graph_record(engine, stack)
    if recorded is not None:
        engine.remove_config(graph_record_name(stack), recorded[0])
    graph = json.dumps(graph_of(planned.loaded.spec), sort_keys=True, separators=(",", ":"))
    labels = {**ownership_labels(stack), GRAPH_LABEL: graph}
    engine.create_config(graph_record_name(stack), b"converge dependency graph\n", labels)


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
        "take_over": result.options.take_over,
        "targets": list(result.options.targets),
        "rotate": list(result.options.rotate),
        "rerun": list(result.options.rerun),
    }
    if result.options.resolve_image is not None:
        document["options"]["resolve_image"] = result.options.resolve_image
    if result.options.with_registry_auth:
        document["options"]["with_registry_auth"] = True
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
    membership = [action.address for action in result.plan.actions if action.phase == 0]
    if membership:
        # They run one at a time with Raft waits, before the rest is planned again (apply).
        raise PlanError(
            f"the plan has membership steps ({', '.join(membership)}): apply the spec itself "
            "(converge apply FILE), which runs them first; a saved plan cannot"
        )
    return apply_plan(
        result.plan,
        result.loaded.spec,
        engine,
        result.observed,
        events,
        options,
        contents=result.loaded.contents,
        rotate=result.options.rotate,
    )


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
        take_over=bool(options.get("take_over", False)),
        rotate=tuple(options.get("rotate") or ()),
        resolve_image=options.get("resolve_image") or None,
        with_registry_auth=bool(options.get("with_registry_auth", False)),
        rerun=tuple(options.get("rerun") or ()),
    )


def apply_plan_options(request: ApplyRequest) -> PlanOptions:
    """The options apply plans with: the request's, or those its saved plan was made with.

    Raises:
        PlanError: a saved plan comes with options of its own, or with a destroy.
    """
    if request.saved_plan is None:
        return request.plan_options
    if request.plan_options.destroy:
        raise PlanError("destroy takes the spec files, not a saved plan")
    if request.plan_options != PlanOptions():
        raise PlanError(
            "--prune, --rebalance, --adopt, --take-over, --rotate, --target, --rerun, "
            "--resolve-image and --with-registry-auth were fixed when the plan was "
            "saved; do not give them with a saved plan"
        )
    return saved_plan_options(request.saved_plan)


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
    gone is taken over by an apply that writes, and removed (its one write) by one that does
    not, so that no apply killed mid-way leaves a lock behind once the stack converged.

    Raises:
        EngineError: the engine is unreachable, not a manager, or refused a read.
        LockError: another apply holds the stack's lock past ``request.lock_timeout``.
        PlanError: the saved plan is stale, or comes with plan options or a destroy.
    """
    from converge.lock import remove_gone, stack_lock, wait_for_release

    request = replace(request, plan_options=apply_plan_options(request))
    options = request.apply_options or _default_apply_options()
    if request.saved_plan is None and manages_membership(loaded.spec.cluster):
        joined = _apply_membership(loaded, engine, request, hooks)
        if joined is not None:
            return joined
    if request.saved_plan is None:
        unlocked = make_plan(loaded, engine, request.plan_options)
        if _nothing_to_do(unlocked):
            waited, gone = wait_for_release(
                engine,
                loaded.spec.stack,
                wait=request.lock_timeout,
                on_wait=hooks.lock_waiting,
                clock=options.clock,
            )
            if waited:  # the holder may have changed the swarm: plan again
                unlocked = make_plan(loaded, engine, request.plan_options)
            if _nothing_to_do(unlocked):
                if gone is not None:
                    remove_gone(engine, gone)
                    unlocked = _lock_finding(unlocked, _removed(gone))
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
            if result.ok:
                _record_graph(engine, planned)
            return ApplyRun(planned, "applied" if result.ok else "failed", result)
        if planned.plan.graph_changes:
            # Only the order changed: verify, and record the graph while holding the lock.
            run = _verified(planned, engine, request, hooks)
            if run.ok:
                _record_graph(engine, planned)
            return run
    # Nothing to change after all (another apply did it while we waited): verify, unlocked.
    return _verified(planned, engine, request, hooks)


def _apply_membership(
    loaded: LoadedSpec, engine: Engine, request: ApplyRequest, hooks: ApplyHooks
) -> ApplyRun | None:
    """Run the plan's membership steps first (one at a time; there may be no swarm, so no lock
    yet), when it has any: the rest of the spec is planned again once the nodes are members.

    Returns:
        the run when apply stops here (plan errors, cancelled, a step failed); None to go on.
    """
    from converge.actions import Phase
    from converge.executor import ActionOutcome, ApplyResult
    from converge.members import execute_membership

    planned = make_plan(loaded, engine, request.plan_options)
    steps = [action for action in planned.plan.actions if action.phase is Phase.MEMBERSHIP]
    if not steps:
        return None
    hooks.plan_ready(planned)
    if planned.plan.errors:
        return ApplyRun(planned, "plan_errors")
    if not hooks.confirm(planned):
        return ApplyRun(planned, "cancelled")
    cluster = loaded.spec.cluster
    assert cluster is not None
    events = hooks.events
    try:
        execute_membership(
            steps,
            cluster,
            engine,
            on_step=events.action_started if events is not None else lambda action: None,
        )
    except EngineError as error:
        outcome = ApplyResult(
            planned.plan.stack,
            tuple(ActionOutcome(step.address, step.kind, "failed", str(error)) for step in steps),
            error=str(error),
        )
        return ApplyRun(planned, "failed", outcome)
    return None


def _nothing_to_do(result: PlanResult) -> bool:
    return not result.plan.has_changes and not result.plan.errors and not result.plan.graph_changes


def _lock_finding(result: PlanResult, message: str) -> PlanResult:
    """``result`` whose warning about the stack's lock says ``message`` instead."""
    kept = tuple(finding for finding in result.plan.findings if finding.address != "lock")
    finding = PlanFinding("warning", "lock", message)
    return replace(result, plan=replace(result.plan, findings=(*kept, finding)))


def _removed(holder: LockInfo) -> str:
    return (
        f"removed the lock of stack {holder.stack} left by {holder.owner} "
        f"(lock id {holder.lock_id}), which was no longer running"
    )


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


@dataclass(frozen=True)
class ExportedStack:
    """``converge export``'s file, and what the operator must add before planning it."""

    text: str
    fill_in: tuple[str, ...] = ()
    """The files its secrets are read from, one note each (also in the file's header)."""


def export_stack(stack: str, engine: Engine) -> ExportedStack:
    """The running stack ``stack`` as a compose file (YAML text) that plans empty against it,
    once the files its secrets are read from hold their values (the engine never returns
    them).

    Raises:
        EngineError: the engine is unreachable or not a swarm manager.
        ConvergeError: a service references a secret or config the swarm does not list.
    """
    import yaml

    from converge.export import FileMode, export_compose, fill_in_notes
    from converge.observe import observe

    class Dumper(yaml.SafeDumper):
        pass

    def block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        # Several lines (a config's content) as a block; yaml quotes them when it cannot.
        return dumper.represent_scalar(
            "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
        )

    Dumper.add_representer(str, block)
    Dumper.add_representer(
        FileMode,
        lambda dumper, mode: dumper.represent_scalar("tag:yaml.org,2002:int", f"0{mode:o}"),
    )
    spec = Spec.model_validate({"x-converge": {"stack": stack}})
    document = export_compose(observe(engine, spec, with_tasks=False))
    notes = fill_in_notes(document)
    header = (
        f"# Exported by converge from the running stack {stack}: the engine's defaults are left\n"
        f"# out; `converge plan -c FILE {stack}` against the same swarm plans no change.\n"
    )
    if notes:
        header += "# Before planning it:\n" + "".join(f"# - {note}\n" for note in notes)
    text = yaml.dump(document, Dumper=Dumper, sort_keys=False, default_flow_style=False)
    return ExportedStack(header + text, tuple(notes))


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
                "job": health.job,
                "completed": health.completed,
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
    rollouts = [
        {
            "service": key,
            "candidate": candidate.name,
            "running": (health := service_health(observed, candidate.name, candidate)).running,
            "desired": health.desired,
            "message": f"a rollout of service {object_name(spec.stack, key)} is in progress: "
            f"{candidate.name} runs the new version beside it (converge rollout status)",
        }
        for key, candidate in sorted(observed.rollout_candidates().items())
    ]
    return {
        "stack": spec.stack,
        "services": services,
        "missing": missing,
        "lock": lock,
        "rollouts": rollouts,
    }


def stack_settled(report: Mapping[str, Any]) -> bool:
    """Whether a ``stack_status`` report shows the stack settled: every service of the spec
    exists and runs converged, and no rollout is in progress (apply or ``converge rollout``
    finishes one)."""
    converged = all(service["converged"] for service in report["services"] if service["in_spec"])
    return converged and not report["missing"] and not report.get("rollouts")


def unlock_stack(
    engine: Engine, stack: str, lock_id: str | None = None, *, force: bool = False
) -> LockInfo | None:
    """Remove ``stack``'s apply lock left behind by an apply that died (as terraform
    force-unlock): the lock's id is required, and a live holder's lock is kept unless ``force``.

    Returns:
        the lock removed; None when the stack is not locked.

    Raises:
        LockError: the stack is locked and ``lock_id`` is not given (nothing is removed; the
            message names the holder, whether it still runs, and the id to give), or is not
            the lock's id, or the holder may still run and ``force`` is not given.
    """
    from converge.lock import holder_state, read_lock, unlock

    if lock_id is not None:
        return unlock(engine, stack, lock_id, force=force)
    holder = read_lock(engine, stack)
    if holder is None:
        return None
    gone = holder_state(holder) != "live"
    running = "which is no longer running" if gone else "which may still be running"
    raise LockError(
        f"stack {stack} is locked by {holder.describe()}, {running}; to remove the "
        f"lock, give its id: converge unlock {stack} {holder.lock_id}"
    )


def loadbalancer_config(loaded: LoadedSpec, engine: Engine | None = None) -> str:
    """The haproxy.cfg apply would write: from the spec and the swarm as ``engine`` shows it,
    or from the spec alone (``engine`` None: ingress servers are the spec's node names, tasks
    backends have no servers).

    Raises:
        ConvergeError: the spec declares no load balancer.
    """
    from converge.errors import ConvergeError
    from converge.lb.config import render_config

    spec = loaded.spec
    if spec.loadbalancer is None:
        files = ", ".join(map(str, loaded.files))
        raise ConvergeError(f"{files}: the spec declares no loadbalancer")
    observed = None
    if engine is not None:
        from converge.observe import observe

        observed = observe(engine, spec)
    return render_config(spec, observed)


def rollout_state(loaded: LoadedSpec, engine: Engine, service: str) -> RolloutStatus:
    """Where the rollout of ``service`` stands (read only).

    Raises:
        RolloutError: the service is not in the spec.
    """
    from converge.rollout import rollout_status

    return rollout_status(loaded.spec, service, engine)


def rollout_command(
    loaded: LoadedSpec,
    engine: Engine,
    service: str,
    what: Literal["promote", "abort"],
    *,
    timeout: float = 600.0,
    lock_timeout: float = 0.0,
    progress: Callable[[str], None] = lambda line: None,
) -> str:
    """Promote (finish now) or abort a rollout in progress, under the stack's lock.

    Raises:
        RolloutError: no rollout of ``service`` is in progress, or its new version is unhealthy.
        LockError: another apply holds the stack's lock past ``lock_timeout``.
    """
    from converge.executor import service_writes
    from converge.lock import stack_lock
    from converge.rollout import RolloutSettings, abort_rollout, promote_rollout

    with stack_lock(engine, loaded.spec.stack, wait=lock_timeout, hold_for=timeout + 300):
        if what == "abort":
            settings = RolloutSettings(timeout=timeout, progress=progress)
            return abort_rollout(loaded.spec, service, engine, settings)
        planned = make_plan(loaded, engine)
        service_spec, registry_auth = service_writes(
            planned.plan, planned.loaded.spec, engine, planned.observed, planned.loaded.contents
        )
        settings = RolloutSettings(
            timeout=timeout,
            progress=progress,
            service_spec=service_spec,
            registry_auth=registry_auth,
        )
        return promote_rollout(planned.loaded.spec, service, engine, settings)


def check_drift(
    loaded: LoadedSpec,
    engine: Engine,
    *,
    resolve_image: str = "never",
    with_registry_auth: bool = False,
) -> DriftReport:
    """Observe and plan (read-only: no write call), then report sync and health findings.

    Args:
        resolve_image: ``never`` compares tags only; ``always`` also asks each image's
            registry, so a tag re-pushed since the deploy is reported (opt-in: it costs a
            registry request per image).

    Raises:
        EngineError: the engine is unreachable or not a swarm manager.
    """
    from converge.drift import drift_report

    checked_at = datetime.now(UTC)
    started = time.monotonic()
    options = PlanOptions(resolve_image=resolve_image, with_registry_auth=with_registry_auth)
    result = make_plan(loaded, engine, options)
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

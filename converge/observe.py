"""Engine -> ObservedState: a fixed number of calls, then normalisation.

Six reads whatever the size of the swarm: ``/info`` (is this a manager?), ``/nodes``,
``/networks``, ``/services?status=true``, ``/secrets`` and ``/configs``, plus ``/tasks`` when
task placement is wanted; ``/info``, the slowest, in a thread beside the others.
No per-object inspect, no ``greedy`` network listing. Then the stack's load-balancer
containers, through the engine of the balancer's node (``converge.lb.container``): one list,
plus an inspect and a config read per balancer found.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from converge.engine import Engine
from converge.errors import EngineError
from converge.lb.container import observe_loadbalancer
from converge.naming import (
    CLUSTER_BY_LABEL,
    CLUSTER_LABELS_LABEL,
    CLUSTER_OWNER_CONFIG,
    CLUSTER_OWNER_LABEL,
    CLUSTER_SINCE_LABEL,
    owner_of,
)
from converge.normalize import (
    LazyServiceView,
    observed_network_view,
    observed_node_view,
)
from converge.spec import Spec
from converge.state import (
    ClusterOwner,
    ObservedFileObject,
    ObservedNetwork,
    ObservedNode,
    ObservedService,
    ObservedState,
    ObservedTask,
    template_digest,
)

__all__ = ["cluster_owner_from_json", "observe", "state_from_engine_json", "template_digest"]

_T = TypeVar("_T")


def observe(engine: Engine, spec: Spec, with_tasks: bool = True) -> ObservedState:
    """Read everything ``spec``'s stack involves: the swarm's nodes, networks, services (and
    tasks) as seen by ``engine``, and the stack's load-balancer containers.

    The containers are looked for even when the spec declares no balancer (one an earlier spec
    declared is still the stack's): an empty ``loadbalancers`` means there is none.

    Raises:
        EngineError: the engine is unreachable, not in a swarm, or not a manager; or the
            load balancer's engine is unreachable.
    """
    before = engine.call_count
    # /info is the slowest read by far (about 9 ms on a lab's engine, 1-2 ms for each list),
    # so it is read beside the lists, not before them. Its verdict still comes first: a worker
    # or an engine outside a swarm answers the lists with an error too.
    manager = _beside(engine.require_manager)
    try:
        nodes = engine.nodes()
        networks = engine.networks()
        services = engine.services()
        tasks = engine.tasks() if with_tasks else []
        secrets = engine.secrets()
        configs = engine.configs()
    except EngineError:
        manager()
        raise
    info = manager()
    state = state_from_engine_json(
        spec.stack,
        info.hostname,
        nodes=nodes,
        networks=networks,
        services=services,
        tasks=tasks,
        secrets=secrets,
        configs=configs,
    )
    if spec.cluster is not None:
        # Only a cluster spec writes nodes, so only it needs to know who owns them.
        owners = engine.configs({"name": CLUSTER_OWNER_CONFIG})
        state = replace(state, cluster_owner=cluster_owner_from_json(owners))
    state = observe_loadbalancer(engine, spec, state)
    return replace(state, api_calls=engine.call_count - before)


def _beside(call: Callable[[], _T]) -> Callable[[], _T]:
    """Start ``call`` in a thread of its own; the function returned waits for its result (or
    raises its error). A daemon thread: an interrupted command never waits for it to end."""
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # handed to the caller, re-raised there
            failure.append(error)

    thread = threading.Thread(target=run, name="converge-observe", daemon=True)
    thread.start()

    def result() -> _T:
        thread.join()
        if failure:
            # Taken out of the list: the error's traceback holds ``run``'s frame, which holds
            # the list, a cycle that would keep a failed call's socket open until the
            # collector runs.
            raise failure.pop()
        return outcome[0]

    return result


def state_from_engine_json(
    stack: str,
    manager: str,
    *,
    nodes: Sequence[Mapping[str, Any]],
    networks: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
    tasks: Sequence[Mapping[str, Any]],
    secrets: Sequence[Mapping[str, Any]] = (),
    configs: Sequence[Mapping[str, Any]] = (),
) -> ObservedState:
    """Build an ObservedState from the Engine API's list responses (recorded or live)."""
    network_names = {network["Id"]: network["Name"] for network in networks}
    return ObservedState(
        stack=stack,
        manager=manager,
        nodes=tuple(_node(node) for node in nodes),
        networks=tuple(_network(network) for network in networks),
        services=tuple(
            _service(service, stack, network_names)
            for service in sorted(services, key=lambda item: item["Spec"]["Name"])
        ),
        tasks=tuple(_task(task) for task in tasks),
        secrets=tuple(_file_object("secret", item) for item in secrets),
        configs=tuple(_file_object("config", item) for item in configs),
    )


def _file_object(kind: str, item: Mapping[str, Any]) -> ObservedFileObject:
    spec = item.get("Spec") or {}
    data = spec.get("Data")
    return ObservedFileObject(
        kind=kind,
        id=item["ID"],
        version=(item.get("Version") or {}).get("Index", 0),
        name=spec.get("Name", ""),
        labels=dict(spec.get("Labels") or {}),
        created=item.get("CreatedAt", ""),
        data=base64.b64decode(data) if kind == "config" and data is not None else None,
        templating=(spec.get("Templating") or {}).get("Name") or None,
    )


def _node(node: Mapping[str, Any]) -> ObservedNode:
    spec = node.get("Spec") or {}
    description = node.get("Description") or {}
    platform = description.get("Platform") or {}
    status = node.get("Status") or {}
    resources = description.get("Resources") or {}
    labels = dict(spec.get("Labels") or {})
    managed = labels.pop(CLUSTER_LABELS_LABEL, "")
    return ObservedNode(
        id=node["ID"],
        version=node["Version"]["Index"],
        hostname=description.get("Hostname", ""),
        role=spec.get("Role", "worker"),
        availability=spec.get("Availability", "active"),
        labels=labels,
        state=status.get("State", "unknown"),
        address=status.get("Addr", ""),
        engine_labels=dict((description.get("Engine") or {}).get("Labels") or {}),
        os=platform.get("OS", ""),
        arch=platform.get("Architecture", ""),
        view=observed_node_view(node),
        raw_spec=dict(spec),
        nano_cpus=int(resources.get("NanoCPUs") or 0),
        memory_bytes=int(resources.get("MemoryBytes") or 0),
        managed_labels=frozenset(key for key in managed.split(",") if key),
        manager_reachability=(node.get("ManagerStatus") or {}).get("Reachability", ""),
    )


def cluster_owner_from_json(configs: Sequence[Mapping[str, Any]]) -> ClusterOwner | None:
    """The cluster's owner from the configs named ``converge-cluster`` (the engine's name
    filter also matches longer names)."""
    for config in configs:
        spec = config.get("Spec") or {}
        labels = spec.get("Labels") or {}
        if spec.get("Name") == CLUSTER_OWNER_CONFIG and CLUSTER_OWNER_LABEL in labels:
            return ClusterOwner(
                name=labels[CLUSTER_OWNER_LABEL],
                config_id=config["ID"],
                since=labels.get(CLUSTER_SINCE_LABEL, ""),
                by=labels.get(CLUSTER_BY_LABEL, ""),
            )
    return None


def _network(network: Mapping[str, Any]) -> ObservedNetwork:
    stack = owner_of(network.get("Labels"))
    return ObservedNetwork(
        id=network["Id"],
        name=network["Name"],
        driver=network.get("Driver", ""),
        scope=network.get("Scope", ""),
        owned=stack is not None,
        stack=stack,
        view=observed_network_view(network),
    )


def _service(
    service: Mapping[str, Any], stack: str, network_names: Mapping[str, str]
) -> ObservedService:
    spec = service["Spec"]
    owner = owner_of(spec.get("Labels"))
    status = service.get("ServiceStatus") or {}
    update = service.get("UpdateStatus") or {}
    return ObservedService(
        id=service["ID"],
        version=service["Version"]["Index"],
        name=spec["Name"],
        owned=owner is not None,
        stack=owner,
        # Made only if the diff reads it (see normalize.comparable_service_spec).
        view=LazyServiceView(spec, owner or stack, network_names),
        raw_spec=spec,
        running_tasks=status.get("RunningTasks", 0),
        desired_tasks=status.get("DesiredTasks", 0),
        update_state=update.get("State"),
        update_message=update.get("Message"),
        update_started=update.get("StartedAt", ""),
        job_iteration=_job_iteration(service) if _is_job(spec) else None,
        completed_tasks=status.get("CompletedTasks", 0),
    )


def _is_job(spec: Mapping[str, Any]) -> bool:
    mode = spec.get("Mode") or {}
    return "ReplicatedJob" in mode or "GlobalJob" in mode


def _job_iteration(item: Mapping[str, Any]) -> int:
    # The engine leaves out an index of 0 (the first run).
    status = item.get("JobStatus") or {}
    iteration = item.get("JobIteration") or status.get("JobIteration") or {}
    return int(iteration.get("Index", 0))


def _task(task: Mapping[str, Any]) -> ObservedTask:
    status = task.get("Status") or {}
    spec = task.get("Spec") or {}
    return ObservedTask(
        id=task["ID"],
        service_id=task.get("ServiceID", ""),
        node_id=task.get("NodeID", ""),
        slot=task.get("Slot"),
        state=status.get("State", ""),
        desired_state=task.get("DesiredState", ""),
        message=status.get("Message", ""),
        error=status.get("Err", ""),
        image=(spec.get("ContainerSpec") or {}).get("Image", ""),
        timestamp=status.get("Timestamp", ""),
        template=spec,
        job_iteration=_job_iteration(task) if "JobIteration" in task else None,
        exit_code=(status.get("ContainerStatus") or {}).get("ExitCode"),
    )

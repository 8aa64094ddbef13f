"""A fake swarm for unit tests: the ``Engine`` seam over in-memory Engine API JSON.

It starts from a real recorded state (``tests/fixtures/recorded/*.json``, or a plan case's
observed JSON) and answers the reads the observer, the executor and the lock make with that
JSON, changed by their writes the way a swarm manager changes it where converge depends on it:

- every write takes the next ``Version.Index`` (one counter, like the raft index), and a service
  or node update carrying an older version fails with ``OutOfSequenceError``;
- creating a name that exists fails with ``AlreadyExistsError``, removing a missing id with
  ``NotFoundError``, removing a network a service still attaches with ``InUseError``; messages
  read ``failed to <verb> <kind> <name>: <explanation>`` as the real seam's do;
- a service spec is stored as sent, except what the engine itself fills in: network names become
  ids, ``TaskTemplate.Runtime`` (on the service, never on its tasks) and ``Isolation``; a network
  gets its default IPAM and vxlan option;
- a small scheduler runs after every write and every task listing: tasks run the service's
  current ``TaskTemplate`` as their ``Spec`` on ready, active nodes that satisfy the simple
  ``==``/``!=`` constraints on ``node.hostname``, ``node.role``, ``node.id`` and
  ``node.labels.*`` (others match every node); replicated slots go round-robin, global services
  get one task per node; tasks of an old template or on a node no longer eligible are shut down,
  with no replacement delay; any update clears ``UpdateStatus`` and a task template change sets
  a new one (``completed``);
  ``ServiceStatus`` counts running and desired tasks; a job (replicated-job, global-job) runs
  once per ``JobIteration`` (created at 0, + 1 on every update): its tasks are created and end
  at once, completed or, after ``fail_job``, failed with an exit code and log lines;
- calls are counted per endpoint exactly as ``Engine.calls`` groups them, and run one at a
  time (apply calls from several threads).

Faults on demand: a concurrent writer bumping a service's version before its next update(s),
the next call of a write method failing, and the new tasks of a service staying unplaced
(``pending``, "no suitable node"), only some of them placed, failing (restarted on every task
listing, update ``paused``) or never starting (``preparing``, update ``updating``);
someone else's update in flight that settles after a few task listings; removed networks that
stay listed for a while.

Not modelled: resources, spread preferences, max replicas per node and the other constraint
forms; rolling updates (a changed template replaces every task at once: no order, parallelism,
delay, monitor or rollback); Go's omitempty (a spec is stored as sent); task history limits;
node state changes (nodes keep their recorded state); volumes; secrets; containers (none exist,
so there is no load balancer); filters other than a config's name. Engine timestamps advance
one second per event and do not follow the test's clock.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

from converge.engine import EngineInfo
from converge.errors import (
    AlreadyExistsError,
    EngineError,
    InUseError,
    NotFoundError,
    OutOfSequenceError,
)
from converge.state import template_digest

Json = dict[str, Any]

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"
_F = TypeVar("_F", bound=Callable[..., Any])
_CONSTRAINT = re.compile(r"\s*(?P<key>[\w.\-]+)\s*(?P<op>==|!=)\s*(?P<value>.*?)\s*")


class FakeClock:
    """Monotonic time that moves only when someone sleeps, and a wall clock that follows it."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self.now = 0.0
        self.start = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.now)


def _serialised(method: _F) -> _F:
    """One call at a time, as the manager's store does: apply runs actions in threads."""

    @functools.wraps(method)
    def serialised(self: FakeSwarm, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(_F, serialised)


class FakeSwarm:
    """The ``Engine`` methods converge's core uses, over one swarm's Engine API JSON.

    Args:
        recording: ``manager``, ``nodes``, ``networks``, ``services`` and ``tasks`` as the
            Engine API lists them (the format of ``tests/fixtures/recorded/*.json``).
    """

    address = "fake"

    def __init__(self, recording: Mapping[str, Any]) -> None:
        state = copy.deepcopy(dict(recording))
        self.manager: str = state["manager"]
        self._nodes: list[Json] = state["nodes"]
        self._networks: list[Json] = state["networks"]
        self._services: list[Json] = state["services"]
        self._tasks: list[Json] = state["tasks"]
        self._configs: list[Json] = state.get("configs", [])
        self._secrets: list[Json] = state.get("secrets", [])
        self.calls: Counter[str] = Counter()
        self._lock = threading.RLock()
        objects = self._nodes + self._services + self._tasks
        self._index = max((item["Version"]["Index"] for item in objects), default=100)
        stamps = [task["Status"]["Timestamp"][:19] for task in self._tasks]
        self._time = max(
            (datetime.fromisoformat(stamp).replace(tzinfo=UTC) for stamp in stamps),
            default=datetime(2026, 1, 1, tzinfo=UTC),
        )
        self._bumps: dict[str, int | None] = {}
        self._faults: dict[str, tuple[type[EngineError], str]] = {}
        self._outcomes: dict[str, tuple[str, str]] = {}
        self._capacity: dict[str, int] = {}
        self._settling: dict[str, tuple[int, str]] = {}
        self._linger = 0
        self._lingering: list[tuple[Json, int]] = []
        self.registry: dict[str, str] = {}
        """Tag -> digest, as a registry answers the distribution endpoint; others are unknown."""
        self.credentials: dict[str, str] = {}
        """Image -> the X-Registry-Auth header the docker client config has for it."""
        self.sent_auth: list[tuple[str, str | None]] = []
        """(service name, X-Registry-Auth header or None) of every create and update."""
        self._job_failures: dict[str, tuple[int, str]] = {}
        self._logs: dict[str, str] = {}

    @classmethod
    def recorded(cls, name: str) -> FakeSwarm:
        """The swarm of ``tests/fixtures/recorded/<name>.json``."""
        return cls(json.loads((RECORDED / f"{name}.json").read_text(encoding="utf-8")))

    # -- faults ---------------------------------------------------------------------------------

    def bump_before_update(self, service: str, times: int | None = 1) -> None:
        """Another writer changes ``service`` just before each of its next ``times`` updates
        (None: before every one), so the version converge read is out of date."""
        self._bumps[service] = times

    def fail_next(
        self, method: str, error: type[EngineError] = EngineError, explanation: str = "injected"
    ) -> None:
        """The next call of ``method`` (e.g. ``create_network``) fails with ``error``."""
        self._faults[method] = (error, explanation)

    def never_place(self, service: str) -> None:
        """New tasks of ``service`` stay pending: the scheduler finds no suitable node."""
        nodes = len(self._nodes)
        self._outcomes[service] = (
            "pending",
            f"no suitable node (insufficient resources on {nodes} nodes)",
        )

    def place_only(self, service: str, count: int) -> None:
        """Only ``count`` tasks of ``service`` find a node; the others stay pending ("no
        suitable node"), as with a host-mode published port and more replicas than nodes."""
        self._capacity[service] = count

    def fail_tasks(self, service: str, error: str = "task: non-zero exit (1)") -> None:
        """New tasks of ``service`` fail as they start (and are restarted, and fail again)."""
        self._outcomes[service] = ("failed", error)

    def reject_tasks(self, service: str, error: str) -> None:
        """New tasks of ``service`` are rejected before they start (an image no node has)."""
        self._outcomes[service] = ("rejected", error)

    def fail_job(self, service: str, exit_code: int, logs: str = "") -> None:
        """The job's next tasks exit with ``exit_code`` after logging ``logs``."""
        self._job_failures[service] = (exit_code, logs)

    def stall_tasks(self, service: str) -> None:
        """New tasks of ``service`` never get past ``preparing`` (an image that never pulls)."""
        self._outcomes[service] = ("preparing", "")

    def update_in_flight(self, service: str, ends: str = "completed", listings: int = 3) -> None:
        """Someone else's update of ``service`` is running now (``updating``, its tasks
        unchanged) and ends as ``ends`` (``completed``, ``paused``, ``rollback_completed``)
        after ``listings`` more task listings."""
        found = next(s for s in self._services if s["Spec"]["Name"] == service)
        found["UpdateStatus"] = {"State": "updating", "StartedAt": self._stamp()}
        self._settling[service] = (listings, ends)

    def linger_removed_networks(self, listings: int = 2) -> None:
        """A removed network stays listed (but unusable) for ``listings`` more network
        listings, as the manager's network store lags behind a removal."""
        self._linger = listings

    # -- the seam: counting and reads -----------------------------------------------------------

    @property
    def call_count(self) -> int:
        return sum(self.calls.values())

    @property
    def write_count(self) -> int:
        return sum(count for call, count in self.calls.items() if not call.startswith("GET"))

    def close(self) -> None:
        pass

    @contextmanager
    def watch_events(self, stack: str) -> Iterator[None]:
        """No event stream: the executor's waits poll, on the fake clock."""
        yield None

    def __enter__(self) -> FakeSwarm:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @_serialised
    def info(self) -> EngineInfo:
        self.calls["GET /info"] += 1
        node = next(n for n in self._nodes if n["Description"]["Hostname"] == self.manager)
        swarm = {"NodeID": node["ID"], "LocalNodeState": "active", "ControlAvailable": True}
        return EngineInfo({"Name": self.manager, "Swarm": swarm, "ServerVersion": "fake"})

    def require_manager(self) -> EngineInfo:
        return self.info()

    @_serialised
    def nodes(self) -> list[Json]:
        self.calls["GET /nodes"] += 1
        return copy.deepcopy(self._nodes)

    @_serialised
    def networks(self) -> list[Json]:
        self.calls["GET /networks"] += 1
        listed = self._networks + [network for network, _ in self._lingering]
        self._lingering = [(network, left - 1) for network, left in self._lingering if left > 1]
        return copy.deepcopy(listed)

    @_serialised
    def services(self) -> list[Json]:
        self.calls["GET /services"] += 1
        for service in self._services:
            live = [task for task in self._tasks_of(service) if task["DesiredState"] == "running"]
            running = [task for task in live if task["Status"]["State"] == "running"]
            service["ServiceStatus"] = {
                "RunningTasks": len(running),
                "DesiredTasks": _replicas(service) if _replicated(service) else len(live),
                "CompletedTasks": 0,
            }
        return copy.deepcopy(self._services)

    @_serialised
    def tasks(self, filters: Mapping[str, Any] | None = None) -> list[Json]:
        assert not filters, "the fake lists all tasks only"
        self.calls["GET /tasks"] += 1
        self._schedule()  # time passes: failed tasks are restarted, updates settle
        self._settle()
        return copy.deepcopy(self._tasks)

    @_serialised
    def task_logs(self, task_id: str, tail: int) -> str:
        self.calls["GET /tasks/{id}/logs"] += 1
        fault = self._faults.pop("task_logs", None)
        if fault is not None:
            raise fault[0](f"failed to read the logs of task {task_id}: {fault[1]}")
        self._find(self._tasks, "ID", task_id, f"read the logs of task {task_id}")
        return "".join(self._logs.get(task_id, "").splitlines(keepends=True)[-tail:])

    @_serialised
    def configs(self, filters: Mapping[str, Any] | None = None) -> list[Json]:
        self.calls["GET /configs"] += 1
        prefix = str((filters or {}).get("name", ""))
        return copy.deepcopy([c for c in self._configs if c["Spec"]["Name"].startswith(prefix)])

    @_serialised
    def containers(self, filters: Mapping[str, Any] | None = None) -> list[Json]:
        self.calls["GET /containers/{id}"] += 1  # /containers/json, as Engine groups it
        return []

    @_serialised
    def inspect_container(self, name: str) -> Json | None:
        self.calls["GET /containers/{id}/json"] += 1
        return None

    # -- writes ---------------------------------------------------------------------------------

    def registry_auth(self, image: str) -> str | None:
        return self.credentials.get(image)

    @_serialised
    def image_digest(self, image: str, registry_auth: str | None = None) -> str:
        self.calls["GET /distribution/{image}/json"] += 1
        digest = self.registry.get(image)
        if digest is None:
            raise EngineError(
                f'failed to resolve image {image}: Get "https://registry-1.docker.io/v2/": '
                "dial tcp: lookup registry-1.docker.io: network is unreachable"
            )
        return digest

    @_serialised
    def create_service(self, name: str, spec: Json, registry_auth: str | None = None) -> str:
        self.sent_auth.append((name, registry_auth))
        self._write("create_service", "POST /services/{id}", f"create service {name}")
        if any(service["Spec"]["Name"] == name for service in self._services):
            raise AlreadyExistsError(
                f"failed to create service {name}: rpc error: code = AlreadyExists "
                f"desc = name conflicts with an existing object: service {name} already exists"
            )
        stored = self._stored_spec(f"create service {name}", spec)
        service = {
            "ID": self._new_id("service"),
            "Version": {"Index": self._next_index()},
            "CreatedAt": self._stamp(),
            "UpdatedAt": self._stamp(),
            "Spec": stored,
            "Endpoint": {"Spec": stored.get("EndpointSpec") or {}},
        }
        if _job(service):
            service["JobStatus"] = {"JobIteration": {}, "LastExecution": self._stamp()}
        self._services.append(service)
        self._schedule()
        return str(service["ID"])

    @_serialised
    def update_service(
        self,
        name: str,
        service_id: str,
        version: int,
        spec: Json,
        registry_auth: str | None = None,
    ) -> list[str]:
        self.sent_auth.append((name, registry_auth))
        self._write("update_service", "POST /services/{id}/update", f"update service {name}")
        service = self._find(self._services, "ID", service_id, f"update service {name}")
        bumps = self._bumps.get(name, 0)
        if bumps is None or bumps > 0:
            if bumps is not None:
                self._bumps[name] = bumps - 1
            service["Version"]["Index"] = self._next_index()  # someone else's write
        if version != service["Version"]["Index"]:
            raise OutOfSequenceError(
                f"failed to update service {name}: rpc error: code = Unknown "
                "desc = update out of sequence"
            )
        before = template_digest(service["Spec"].get("TaskTemplate") or {})
        service["Spec"] = self._stored_spec(f"update service {name}", spec)
        service["Version"]["Index"] = self._next_index()
        service["UpdatedAt"] = self._stamp()
        service["Endpoint"] = {"Spec": service["Spec"].get("EndpointSpec") or {}}
        # Any update ends the last one's status, as swarmkit's controlapi resets it (a paused
        # update stays paused only until the next write); a new template starts a new one.
        service.pop("UpdateStatus", None)
        self._settling.pop(name, None)
        if _job(service):
            # Any update of a job starts a new run (swarmkit: JobIteration + 1), no UpdateStatus.
            iteration = service["JobStatus"]["JobIteration"]
            iteration["Index"] = iteration.get("Index", 0) + 1
        elif template_digest(service["Spec"]["TaskTemplate"]) != before:
            state = self._outcomes.get(name, ("running", ""))[0]
            update = {"failed": "paused", "preparing": "updating", "pending": "updating"}
            service["UpdateStatus"] = {
                "State": update.get(state, "completed"),
                "StartedAt": self._stamp(),
                "Message": f"update {update.get(state, 'completed')}",
            }
        self._schedule()
        return []

    @_serialised
    def remove_service(self, name: str, service_id: str) -> None:
        self._write("remove_service", "DELETE /services/{id}", f"remove service {name}")
        service = self._find(self._services, "ID", service_id, f"remove service {name}")
        self._services.remove(service)
        self._tasks = [task for task in self._tasks if task["ServiceID"] != service_id]
        self._next_index()

    @_serialised
    def update_node(self, hostname: str, node_id: str, version: int, spec: Json) -> None:
        self._write("update_node", "POST /nodes/{id}/update", f"update node {hostname}")
        node = self._find(self._nodes, "ID", node_id, f"update node {hostname}")
        if version != node["Version"]["Index"]:
            raise OutOfSequenceError(
                f"failed to update node {hostname}: rpc error: code = Unknown "
                "desc = update out of sequence"
            )
        node["Spec"] = copy.deepcopy(spec)
        node["Version"]["Index"] = self._next_index()
        self._schedule()

    @_serialised
    def create_network(self, name: str, spec: Json) -> str:
        self._write("create_network", "POST /networks/{id}", f"create network {name}")
        if any(network["Name"] == name for network in self._networks):
            raise AlreadyExistsError(
                f"failed to create network {name}: network with name {name} already exists"
            )
        self._next_index()
        number = sum(1 for network in self._networks if network.get("Scope") == "swarm") + 10
        network = {
            "Id": self._new_id("network"),
            "Name": name,
            "Created": self._stamp(),
            "Scope": "swarm",
            "Driver": spec.get("Driver") or "overlay",
            "Attachable": bool(spec.get("Attachable")),
            "Internal": bool(spec.get("Internal")),
            "Ingress": False,
            "Labels": dict(spec.get("Labels") or {}),
            "Options": {
                **dict(spec.get("Options") or {}),
                "com.docker.network.driver.overlay.vxlanid_list": str(4096 + number),
            },
            "IPAM": spec.get("IPAM")
            or {
                "Driver": "default",
                "Config": [{"Subnet": f"10.0.{number}.0/24", "Gateway": f"10.0.{number}.1"}],
            },
        }
        self._networks.append(network)
        return str(network["Id"])

    @_serialised
    def remove_network(self, name: str, network_id: str) -> None:
        self._write("remove_network", "DELETE /networks/{id}", f"remove network {name}")
        network = self._find(self._networks, "Id", network_id, f"remove network {name}")
        users = [s["Spec"]["Name"] for s in self._services if network_id in _attached(s)]
        if users:
            raise InUseError(
                f"failed to remove network {name}: error while removing network: network "
                f"{name} id {network_id} has active endpoints ({', '.join(users)})"
            )
        self._networks.remove(network)
        if self._linger:
            self._lingering.append((network, self._linger))
        self._next_index()

    @_serialised
    def secrets(self, filters: Mapping[str, Any] | None = None) -> list[Json]:
        self.calls["GET /secrets"] += 1
        # As the engine: a secret's data is never returned.
        return [
            {**item, "Spec": {k: v for k, v in item["Spec"].items() if k != "Data"}}
            for item in copy.deepcopy(self._secrets)
        ]

    @_serialised
    def create_secret(
        self, name: str, data: bytes, labels: Mapping[str, str], templating: str | None = None
    ) -> str:
        return self._create_file_object(self._secrets, "secret", name, data, labels, templating)

    @_serialised
    def remove_secret(self, name: str, secret_id: str) -> None:
        self._remove_file_object(self._secrets, "secret", name, secret_id)

    @_serialised
    def create_config(
        self, name: str, data: bytes, labels: Mapping[str, str], templating: str | None = None
    ) -> str:
        return self._create_file_object(self._configs, "config", name, data, labels, templating)

    @_serialised
    def remove_config(self, name: str, config_id: str) -> None:
        self._remove_file_object(self._configs, "config", name, config_id)

    def _create_file_object(
        self,
        objects: list[Json],
        kind: str,
        name: str,
        data: bytes,
        labels: Mapping[str, str],
        templating: str | None,
    ) -> str:
        self._write(f"create_{kind}", f"POST /{kind}s/{{id}}", f"create {kind} {name}")
        if any(item["Spec"]["Name"] == name for item in objects):
            raise AlreadyExistsError(
                f"failed to create {kind} {name}: rpc error: code = AlreadyExists "
                f"desc = {kind} {name} already exists"
            )
        spec: Json = {
            "Name": name,
            "Labels": dict(labels),
            "Data": base64.b64encode(data).decode("ascii"),
        }
        if templating is not None:
            spec["Templating"] = {"Name": templating}
        index = self._next_index()
        created = {
            "ID": self._new_id(kind),
            "Version": {"Index": index},
            "CreatedAt": self._stamp(),
            "Spec": spec,
        }
        objects.append(created)
        return str(created["ID"])

    def _remove_file_object(self, objects: list[Json], kind: str, name: str, item_id: str) -> None:
        self._write(f"remove_{kind}", f"DELETE /{kind}s/{{id}}", f"remove {kind} {name}")
        item = self._find(objects, "ID", item_id, f"remove {kind} {name}")
        field, id_field = ("Secrets", "SecretID") if kind == "secret" else ("Configs", "ConfigID")
        for service in self._services:
            container = service["Spec"]["TaskTemplate"].get("ContainerSpec") or {}
            if any(ref.get(id_field) == item_id for ref in container.get(field) or []):
                raise InUseError(
                    f"failed to remove {kind} {name}: rpc error: code = InvalidArgument desc = "
                    f"{kind} '{name}' is in use by the following service: {service['Spec']['Name']}"
                )
        objects.remove(item)
        self._next_index()

    # -- the engine's side ----------------------------------------------------------------------

    def _write(self, method: str, endpoint: str, action: str) -> None:
        self.calls[endpoint] += 1  # the request reached the engine, whatever it answers
        fault = self._faults.pop(method, None)
        if fault is not None:
            error, explanation = fault
            raise error(f"failed to {action}: {explanation}")

    def _find(self, items: list[Json], field: str, value: str, action: str) -> Json:
        found = next((item for item in items if item[field] == value), None)
        if found is None:
            raise NotFoundError(f"failed to {action}: {value} not found")
        return found

    def _next_index(self) -> int:
        self._index += 1
        return self._index

    def _new_id(self, kind: str) -> str:
        return f"fake{kind}{self._next_index():06d}"

    def _stamp(self) -> str:
        self._time += timedelta(seconds=1)
        return self._time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")

    def _stored_spec(self, action: str, spec: Json) -> Json:
        """``spec`` as the engine keeps it: network names resolved, its own defaults filled."""
        stored = copy.deepcopy(spec)
        template = stored.setdefault("TaskTemplate", {})
        template.setdefault("Runtime", "container")
        template.setdefault("ContainerSpec", {}).setdefault("Isolation", "default")
        for attachment in template.get("Networks") or []:
            target = attachment["Target"]
            network = next(
                (n for n in self._networks if target in (n["Id"], n["Name"])),
                None,
            )
            if network is None:
                raise NotFoundError(f"failed to {action}: network {target} not found")
            attachment["Target"] = network["Id"]
        container = template["ContainerSpec"]
        for field, id_field, name_field, objects in (
            ("Secrets", "SecretID", "SecretName", self._secrets),
            ("Configs", "ConfigID", "ConfigName", self._configs),
        ):
            for reference in container.get(field) or []:
                # As swarmkit: the id must exist and carry the name given.
                if not any(
                    item["ID"] == reference.get(id_field)
                    and item["Spec"]["Name"] == reference.get(name_field)
                    for item in objects
                ):
                    raise NotFoundError(
                        f"failed to {action}: {field[:-1].lower()} "
                        f"{reference.get(name_field)} ({reference.get(id_field)!r}) not found"
                    )
        return stored

    def _tasks_of(self, service: Json) -> list[Json]:
        return [task for task in self._tasks if task["ServiceID"] == service["ID"]]

    def _eligible(self, service: Json) -> list[Json]:
        placement = service["Spec"]["TaskTemplate"].get("Placement") or {}
        constraints = placement.get("Constraints") or []
        return sorted(
            (
                node
                for node in self._nodes
                if node["Status"].get("State") == "ready"
                and node["Spec"].get("Availability", "active") == "active"
                and all(_satisfies(node, text) for text in constraints)
            ),
            key=lambda node: str(node["Description"]["Hostname"]),
        )

    def _settle(self) -> None:
        for name, (listings, ends) in list(self._settling.items()):
            if listings > 1:
                self._settling[name] = (listings - 1, ends)
                continue
            del self._settling[name]
            for service in self._services:
                if service["Spec"]["Name"] == name and "UpdateStatus" in service:
                    message = {"paused": "update paused due to failure of task x"}.get(ends, "")
                    service["UpdateStatus"] = {
                        **service["UpdateStatus"],
                        "State": ends,
                        "Message": message or ends.replace("_", " "),
                    }

    def _schedule(self) -> None:
        for service in self._services:
            self._schedule_service(service)

    def _schedule_service(self, service: Json) -> None:
        if _job(service):
            self._schedule_job(service)
            return
        template = service["Spec"]["TaskTemplate"]
        digest = template_digest(template)
        nodes = self._eligible(service)
        state, error = self._outcomes.get(service["Spec"]["Name"], ("running", ""))
        if not nodes and _replicated(service):
            state, error = "pending", "no suitable node (scheduling constraints not satisfied)"
        wanted: dict[Any, str] = (
            {
                slot: nodes[(slot - 1) % len(nodes)]["ID"] if nodes else ""
                for slot in range(1, _replicas(service) + 1)
            }
            if _replicated(service)
            else {node["ID"]: node["ID"] for node in nodes}
        )
        eligible = {node["ID"] for node in nodes}
        capacity = self._capacity.get(service["Spec"]["Name"])
        placeable = set(sorted(wanted)[:capacity]) if capacity is not None else set(wanted)
        unplaced = (
            "pending",
            f"no suitable node (host-mode port already in use on {len(nodes)} nodes)",
        )

        def outcome(key: Any) -> tuple[str, str]:
            return (state, error) if key in placeable else unplaced

        kept: set[Any] = set()
        for task in self._tasks_of(service):
            if task["DesiredState"] != "running":
                continue
            key = task.get("Slot") if _replicated(service) else task["NodeID"]
            expected = outcome(key)[0]
            # A task of the current template stays while its node is eligible and its state is
            # running or what a new task would be now (pending tasks wait on no node).
            on_eligible = task["NodeID"] in eligible or (
                not task["NodeID"] and expected == "pending"
            )
            if (
                key in wanted
                and key not in kept
                and template_digest(task["Spec"]) == digest
                and on_eligible
                and task["Status"]["State"] in ("running", expected)
            ):
                kept.add(key)
                continue
            task["DesiredState"] = "shutdown"
            task["Status"] = {
                "State": "shutdown",
                "Message": "shutdown",
                "Timestamp": self._stamp(),
            }
        for key, node_id in wanted.items():
            if key not in kept:
                self._tasks.append(self._new_task(service, key, node_id, *outcome(key)))

    def _schedule_job(self, service: Json) -> None:
        """A job's run: its tasks are created and end at once, completed, or failed with the
        exit code ``fail_job`` gave; a run is never scheduled twice."""
        iteration = service["JobStatus"]["JobIteration"].get("Index", 0)
        if any(
            task["JobIteration"].get("Index", 0) == iteration for task in self._tasks_of(service)
        ):
            return
        mode = service["Spec"]["Mode"]
        nodes = self._eligible(service)
        if "ReplicatedJob" in mode:
            total = int(mode["ReplicatedJob"].get("TotalCompletions") or 1)
            wanted = {slot: nodes[slot % len(nodes)]["ID"] for slot in range(total)}
        else:
            wanted = {node["ID"]: node["ID"] for node in nodes}
        code, logs = self._job_failures.get(service["Spec"]["Name"], (0, ""))
        for key, node_id in wanted.items():
            task = self._new_task(service, key, node_id, "complete", "")
            task["DesiredState"] = "complete"
            task["JobIteration"] = {"Index": iteration} if iteration else {}
            task["Status"]["ContainerStatus"] = {"ExitCode": code}
            if code:
                task["Status"].update(State="failed", Err=f"task: non-zero exit ({code})")
                self._logs[task["ID"]] = logs
            self._tasks.append(task)

    def _new_task(self, service: Json, key: Any, node_id: str, state: str, error: str) -> Json:
        spec = copy.deepcopy(service["Spec"]["TaskTemplate"])
        spec.pop("Runtime", None)  # the engine fills it on the service, never on its tasks
        task: Json = {
            "ID": self._new_id("task"),
            "Version": {"Index": self._index},
            "ServiceID": service["ID"],
            "NodeID": "" if state == "pending" and _replicated(service) else node_id,
            "Spec": spec,
            "DesiredState": "shutdown" if state in ("failed", "rejected") else "running",
            "Status": {
                "State": state,
                "Message": {"pending": "pending task scheduling"}.get(state, "started"),
                "Timestamp": self._stamp(),
                **({"Err": error} if error else {}),
            },
        }
        if _replicated(service):
            task["Slot"] = key
        return task


def _replicated(service: Json) -> bool:
    return "Global" not in (service["Spec"].get("Mode") or {})


def _job(service: Json) -> bool:
    mode = service["Spec"].get("Mode") or {}
    return "ReplicatedJob" in mode or "GlobalJob" in mode


def _replicas(service: Json) -> int:
    return int(((service["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1))


def _attached(service: Json) -> set[str]:
    template = service["Spec"].get("TaskTemplate") or {}
    return {attachment["Target"] for attachment in template.get("Networks") or []}


def _satisfies(node: Json, constraint: str) -> bool:
    match = _CONSTRAINT.fullmatch(constraint)
    if match is None:
        return True
    key, value = match["key"], match["value"]
    known = {
        "node.id": node["ID"],
        "node.hostname": node["Description"]["Hostname"],
        "node.role": node["Spec"].get("Role"),
    }
    if key.startswith("node.labels."):
        actual = (node["Spec"].get("Labels") or {}).get(key.removeprefix("node.labels."))
    elif key in known:
        actual = known[key]
    else:
        return True
    return (actual == value) == (match["op"] == "==")

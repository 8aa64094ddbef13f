"""Canonical forms for both sides of a diff, in the compose file's vocabulary.

A *view* is a plain JSON-like dict describing one object with compose's field names, so a
change reads ``deploy.replicas: 5 -> 3`` and a field path is the one ``x-converge.ignore`` and
masking use. A service's view is made by ONE function from an Engine API ServiceSpec: the
observed side from what the engine reports, the desired side from the ServiceSpec that
``docker stack deploy`` would send for the file (``converge.engine_spec``). So a field the file
leaves unset compares as the engine's default on both sides, and the two views are equal
exactly when the service is what stack deploy of the file would make. Each quirk of the engine
is one rule here, with its own unit test:

- an absent field reads as the engine's default (update/rollback config, restart policy, stop
  grace period, endpoint mode, protocol tcp, publish mode ingress, isolation, replicas 1);
- images: ``docker.io/library/`` dropped, ``:latest`` added, ``@sha256:`` digests dropped unless
  the spec pins one;
- network ids become names, and the alias stack deploy adds (the service's key) is hidden;
- the stack prefix of volume and network names is removed; ownership labels are hidden;
- order-insensitive lists (env, ports, mounts, constraints, networks, capabilities) become
  sorted maps or lists; constraints take one spelling (``node.labels.type == mvc``);
- durations, sizes and CPUs are compared in engine units (ns, bytes, nano-CPUs).

Nodes and networks keep the older rule that a desired value of ``None`` is not managed (a
node's role or labels, a network's address pool when the file gives none).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from converge.engine_spec import service_engine_spec
from converge.fileobjects import FileRefs
from converge.naming import CLUSTER_LABELS_LABEL, is_internal_label, object_name, spec_key
from converge.spec import CONSTRAINT_PATTERN, NetworkSpec, NodeSpec, Spec

__all__ = [
    "DEFAULT_RESTART_POLICY",
    "DEFAULT_UPDATE_CONFIG",
    "LazyServiceView",
    "align",
    "canonical_constraint",
    "canonical_image",
    "comparable_service_spec",
    "default_service_view",
    "desired_network_view",
    "desired_node_view",
    "desired_service_view",
    "observed_network_view",
    "observed_node_view",
    "observed_service_view",
    "port_key",
    "service_view",
]

View = dict[str, Any]

SECOND = 1_000_000_000

# Swarmkit's defaults (api/defaults): what an absent field means.
DEFAULT_UPDATE_CONFIG: View = {
    "parallelism": 1,
    "delay": 0,
    "failure_action": "pause",
    "monitor": 5 * SECOND,
    "max_failure_ratio": 0.0,
    "order": "stop-first",
}
DEFAULT_ROLLBACK_CONFIG: View = dict(DEFAULT_UPDATE_CONFIG)
DEFAULT_RESTART_POLICY: View = {
    "condition": "any",
    "delay": 5 * SECOND,
    "max_attempts": 0,
    "window": 0,
}
DEFAULT_STOP_GRACE_PERIOD = 10 * SECOND


def canonical_image(image: str, keep_digest: bool = True) -> str:
    """``mysql`` -> ``mysql:latest``; ``docker.io/library/x`` -> ``x``; digest optional."""
    reference, _, digest = image.partition("@")
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/"):
        if reference.startswith(prefix):
            reference = reference[len(prefix) :]
            break
    last_part = reference.rsplit("/", 1)[-1]
    if ":" not in last_part and not digest:
        reference += ":latest"
    if digest and keep_digest:
        return f"{reference}@{digest}"
    return reference


def canonical_constraint(text: str) -> str:
    """One spelling per constraint: ``node.labels.type==mvc`` -> ``node.labels.type == mvc``."""
    match = CONSTRAINT_PATTERN.fullmatch(text)
    if match is None:
        return text.strip()
    return f"{match['key']} {match['operator']} {match['value']}"


def port_key(published: int | None, target: int, protocol: str) -> str:
    """How a port is named in views and plans: ``3000:80/tcp`` or ``80/tcp``."""
    return f"{published}:{target}/{protocol}" if published else f"{target}/{protocol}"


def _user_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {
        name: value for name, value in sorted((labels or {}).items()) if not is_internal_label(name)
    }


def _without_none(values: Mapping[str, Any]) -> View:
    return {key: value for key, value in values.items() if value is not None}


# ---------------------------------------------------------------------------------------------
# Services


def desired_service_view(
    spec: Spec, key: str, files: FileRefs | None = None, image: str | None = None
) -> View:
    """The view of what ``docker stack deploy`` of the file would make of ``services[key]``
    (referencing the versions of secrets and configs in ``files``; ``image``: the image to
    send, when a tag was pinned to its digest)."""
    return service_view(service_engine_spec(spec, key, files=files, image=image), spec.stack, {})


def observed_service_view(
    engine_spec: Mapping[str, Any], stack: str, network_names: Mapping[str, str]
) -> View:
    """The view of a service the engine reports (see ``service_view``)."""
    return service_view(engine_spec, stack, network_names)


class LazyServiceView(Mapping[str, Any]):
    """``observed_service_view`` made on first use, then kept.

    The observer gives every service one; the diff seldom reads it (an unchanged service is
    recognised from its engine spec, see ``comparable_service_spec``), and making 10,000 views
    nobody reads was a third of a plan's time.
    """

    __slots__ = ("_engine_spec", "_network_names", "_stack", "_view")

    def __init__(
        self, engine_spec: Mapping[str, Any], stack: str, network_names: Mapping[str, str]
    ) -> None:
        self._engine_spec = engine_spec
        self._stack = stack
        self._network_names = network_names
        self._view: View | None = None

    def _made(self) -> View:
        if self._view is None:
            self._view = service_view(self._engine_spec, self._stack, self._network_names)
        return self._view

    def __getitem__(self, key: str) -> Any:
        return self._made()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._made())

    def __len__(self) -> int:
        return len(self._made())

    def __eq__(self, other: object) -> bool:
        return self._made() == (other._made() if isinstance(other, LazyServiceView) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._made())


def comparable_service_spec(
    engine_spec: Mapping[str, Any], network_names: Mapping[str, str]
) -> dict[str, Any] | None:
    """``engine_spec`` without what ``service_view`` never shows, network ids as names.

    Two ServiceSpecs whose comparable forms are identical (``diff._identical``) have identical
    views: ``service_view(a, stack, names)`` and ``service_view(b, stack, {})`` when ``a``'s
    form was made with ``names`` and ``b``'s with ``{}``. So the diff can tell an unchanged
    service from its engine spec and the payload it would send, without making either view.
    The rules, each mirroring ``service_view``:

    - ``TaskTemplate.ForceUpdate`` and ``TaskTemplate.Runtime`` are never read;
    - ``ContainerSpec.Isolation: "default"`` (or ``""``) reads as absent (``or "default"``);
    - ``EndpointSpec.Mode: "vip"`` (or ``""``) reads as absent (``or "vip"``);
    - ``Mode.Replicated.Replicas: 1`` reads as absent (``.get("Replicas", 1)``);
    - in ``UpdateConfig`` and ``RollbackConfig``, ``FailureAction: "pause"`` and
      ``Order: "stop-first"`` (or ``""``) read as absent (``_policy``);
    - a network attachment's ``Target`` is looked up in ``network_names`` (as ``_networks``).

    Copies only what it changes (``engine_spec`` is left intact). None when the spec is not
    of the plain shape these rules assume (then compare views).
    """
    result = dict(engine_spec)
    task = result.get("TaskTemplate")
    if task is not None:
        if type(task) is not dict:
            return None
        task = dict(task)
        task.pop("ForceUpdate", None)
        task.pop("Runtime", None)
        container = task.get("ContainerSpec")
        if type(container) is dict:
            _drop_default(task, "ContainerSpec", "Isolation", "default")
        if "Networks" in task:
            task["Networks"] = _named_attachments(task["Networks"], network_names)
            if task["Networks"] is _NOT_PLAIN:
                return None
        result["TaskTemplate"] = task
    if "Networks" in result:
        result["Networks"] = _named_attachments(result["Networks"], network_names)
        if result["Networks"] is _NOT_PLAIN:
            return None
    _drop_default(result, "EndpointSpec", "Mode", "vip")
    mode = result.get("Mode")
    if type(mode) is dict:
        replicated = mode.get("Replicated")
        if type(replicated) is dict and _is_int(replicated.get("Replicas"), 1):
            result["Mode"] = {
                **mode,
                "Replicated": {k: v for k, v in replicated.items() if k != "Replicas"},
            }
    for policy in ("UpdateConfig", "RollbackConfig"):
        _drop_default(result, policy, "FailureAction", "pause")
        _drop_default(result, policy, "Order", "stop-first")
    return result


def _drop_default(spec: dict[str, Any], part: str, field: str, default: str) -> None:
    """Leave out ``spec[part][field]`` when it is ``default`` or ``""``, which the view reads
    as ``default`` (``or default``), copying ``spec[part]``."""
    section = spec.get(part)
    if type(section) is not dict:
        return
    value = section.get(field)
    if type(value) is str and value in (default, ""):
        section = dict(section)
        del section[field]
        spec[part] = section


def _is_int(value: Any, number: int) -> bool:
    return type(value) is int and value == number


_NOT_PLAIN = object()


def _named_attachments(attachments: Any, network_names: Mapping[str, str]) -> Any:
    """Attachments with their targets as names; ``_NOT_PLAIN`` when they are not a list of
    plain mappings."""
    if not attachments:
        return attachments
    if type(attachments) is not list:
        return _NOT_PLAIN
    named = []
    for attachment in attachments:
        if type(attachment) is not dict:
            return _NOT_PLAIN
        target = attachment.get("Target")
        if type(target) is str and target in network_names:
            attachment = {**attachment, "Target": network_names[target]}
        named.append(attachment)
    return named


def default_service_view(stack: str = "stack") -> View:
    """The view of a service that sets nothing: what every unset field compares as."""
    return service_view({"Name": object_name(stack, "service")}, stack, {})


def service_view(
    engine_spec: Mapping[str, Any], stack: str, network_names: Mapping[str, str]
) -> View:
    """An Engine API ServiceSpec in compose's vocabulary, absent fields read as defaults.

    Args:
        engine_spec: a ServiceSpec, as the Engine API returns or takes it.
        stack: the stack it belongs to (to strip name prefixes).
        network_names: network id -> name, from the same observation (a name not found there
            is taken as a name).
    """
    task = engine_spec.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    dns = container.get("DNSConfig") or {}
    key = spec_key(stack, engine_spec.get("Name", ""))
    return {
        "image": canonical_image(container.get("Image", "")),
        "command": list(container.get("Args") or []),
        "entrypoint": list(container.get("Command") or []),
        "environment": _environment(container.get("Env")),
        "labels": _user_labels(container.get("Labels")),
        "hostname": container.get("Hostname") or "",
        "user": container.get("User") or "",
        "working_dir": container.get("Dir") or "",
        "init": container.get("Init"),
        "read_only": bool(container.get("ReadOnly")),
        "tty": bool(container.get("TTY")),
        "stdin_open": bool(container.get("OpenStdin")),
        "stop_grace_period": container.get("StopGracePeriod", DEFAULT_STOP_GRACE_PERIOD),
        "stop_signal": container.get("StopSignal") or "",
        "healthcheck": _healthcheck(container.get("Healthcheck")),
        "dns": list(dns.get("Nameservers") or []),
        "dns_search": list(dns.get("Search") or []),
        "dns_opt": list(dns.get("Options") or []),
        "extra_hosts": _extra_hosts(container.get("Hosts")),
        "cap_add": sorted(container.get("CapabilityAdd") or []),
        "cap_drop": sorted(container.get("CapabilityDrop") or []),
        "sysctls": dict(sorted((container.get("Sysctls") or {}).items())),
        "ulimits": {
            item.get("Name", ""): {"soft": item.get("Soft", 0), "hard": item.get("Hard", 0)}
            for item in sorted(container.get("Ulimits") or [], key=lambda item: item.get("Name"))
        },
        "logging": _logging(task.get("LogDriver")),
        "isolation": container.get("Isolation") or "default",
        "credential_spec": _credential_spec(container.get("Privileges")),
        "ports": _ports(engine_spec.get("EndpointSpec")),
        "volumes": {
            mount.get("Target", ""): _mount(mount, stack) for mount in container.get("Mounts") or []
        },
        "networks": _networks(task, engine_spec, key, network_names, stack),
        "secrets": _file_references(container.get("Secrets"), "SecretName", stack),
        "configs": _file_references(container.get("Configs"), "ConfigName", stack),
        "deploy": _deploy(engine_spec, task),
    }


def _environment(entries: Iterable[str] | None) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for entry in entries or []:
        name, has_value, value = entry.partition("=")
        result[name] = value if has_value else None
    return dict(sorted(result.items()))


def _healthcheck(check: Mapping[str, Any] | None) -> View | None:
    if check is None:
        return None
    return {
        "test": list(check.get("Test") or []),
        "interval": check.get("Interval", 0),
        "timeout": check.get("Timeout", 0),
        "retries": check.get("Retries", 0),
        "start_period": check.get("StartPeriod", 0),
        "start_interval": check.get("StartInterval", 0),
    }


def _extra_hosts(hosts: Iterable[str] | None) -> list[str]:
    """swarmkit's ``IP host [host...]`` back to compose's ``host:ip``, in order."""
    result: list[str] = []
    for entry in hosts or []:
        ip, *names = entry.split()
        result.extend(f"{name}:{ip}" for name in names)
    return result


def _logging(driver: Mapping[str, Any] | None) -> View | None:
    if driver is None:
        return None
    return {
        "driver": driver.get("Name") or "",
        "options": dict(sorted((driver.get("Options") or {}).items())),
    }


def _credential_spec(privileges: Mapping[str, Any] | None) -> View | None:
    credential = (privileges or {}).get("CredentialSpec")
    if not credential:
        return None
    return _without_none(
        {
            "config": credential.get("Config") or None,
            "file": credential.get("File") or None,
            "registry": credential.get("Registry") or None,
        }
    )


def _ports(endpoint: Mapping[str, Any] | None) -> dict[str, str]:
    ports = (endpoint or {}).get("Ports") or []
    return dict(
        sorted(
            (
                port_key(
                    port.get("PublishedPort"),
                    port.get("TargetPort", 0),
                    port.get("Protocol") or "tcp",
                ),
                port.get("PublishMode") or "ingress",
            )
            for port in ports
        )
    )


def _mount(mount: Mapping[str, Any], stack: str) -> View:
    kind = mount.get("Type") or "volume"
    source = mount.get("Source") or None
    if kind == "volume" and source:
        source = spec_key(stack, source)
    view: View = {"type": kind, "source": source, "read_only": bool(mount.get("ReadOnly"))}
    if mount.get("Consistency") not in (None, "", "default"):
        view["consistency"] = mount["Consistency"]
    if kind == "bind":
        propagation = (mount.get("BindOptions") or {}).get("Propagation")
        if propagation:
            view["propagation"] = propagation
    if kind == "volume":
        options = mount.get("VolumeOptions") or {}
        view["nocopy"] = bool(options.get("NoCopy"))
        labels = _user_labels(options.get("Labels"))
        if labels:
            view["labels"] = labels
        driver = options.get("DriverConfig")
        if driver:
            view["driver"] = driver.get("Name") or ""
            view["driver_opts"] = dict(sorted((driver.get("Options") or {}).items()))
    if kind == "tmpfs":
        options = mount.get("TmpfsOptions") or {}
        view.update(
            _without_none({"size": options.get("SizeBytes") or None, "mode": options.get("Mode")})
        )
    return view


def _networks(
    task: Mapping[str, Any],
    engine_spec: Mapping[str, Any],
    key: str,
    network_names: Mapping[str, str],
    stack: str,
) -> View:
    attachments = task.get("Networks") or engine_spec.get("Networks") or []
    networks: View = {}
    for attachment in attachments:
        target = attachment.get("Target", "")
        name = spec_key(stack, network_names.get(target, target))
        aliases = sorted(alias for alias in attachment.get("Aliases") or [] if alias != key)
        view: View = {"aliases": aliases}
        if attachment.get("DriverOpts"):
            view["driver_opts"] = dict(sorted(attachment["DriverOpts"].items()))
        networks[name] = view
    return dict(sorted(networks.items()))


def _file_references(
    references: Iterable[Mapping[str, Any]] | None, name_field: str, stack: str
) -> View:
    result: View = {}
    for reference in references or []:
        target = reference.get("File") or {}
        result[target.get("Name") or reference.get(name_field, "")] = {
            "source": spec_key(stack, reference.get(name_field, "")),
            "uid": target.get("UID", "0"),
            "gid": target.get("GID", "0"),
            "mode": target.get("Mode", 0o444),
        }
    return dict(sorted(result.items()))


_POLICY_ENGINE_FIELDS = {
    "parallelism": "Parallelism",
    "delay": "Delay",
    "failure_action": "FailureAction",
    "monitor": "Monitor",
    "max_failure_ratio": "MaxFailureRatio",
    "order": "Order",
}


def _deploy(engine_spec: Mapping[str, Any], task: Mapping[str, Any]) -> View:
    mode = engine_spec.get("Mode") or {}
    placement = task.get("Placement") or {}
    endpoint = engine_spec.get("EndpointSpec") or {}
    if "Global" in mode:
        kind, replicas = "global", None
    elif "GlobalJob" in mode:
        kind, replicas = "global-job", None
    elif "ReplicatedJob" in mode:
        kind = "replicated-job"
        replicas = (mode.get("ReplicatedJob") or {}).get("TotalCompletions", 1)
    else:
        kind = "replicated"
        replicas = (mode.get("Replicated") or {}).get("Replicas", 1)
    return {
        "mode": kind,
        "replicas": replicas,
        "labels": _user_labels(engine_spec.get("Labels")),
        "endpoint_mode": endpoint.get("Mode") or "vip",
        "update_config": _policy(engine_spec.get("UpdateConfig"), DEFAULT_UPDATE_CONFIG),
        "rollback_config": _policy(engine_spec.get("RollbackConfig"), DEFAULT_ROLLBACK_CONFIG),
        "restart_policy": _restart(task.get("RestartPolicy")),
        "resources": _resources(task.get("Resources")),
        "placement": {
            "constraints": sorted(
                canonical_constraint(text) for text in placement.get("Constraints") or []
            ),
            "preferences": [
                (preference.get("Spread") or {}).get("SpreadDescriptor", "")
                for preference in placement.get("Preferences") or []
            ],
            "max_replicas_per_node": placement.get("MaxReplicas", 0),
        },
    }


def _policy(config: Mapping[str, Any] | None, defaults: View) -> View:
    if config is None:
        return dict(defaults)
    # Present but with zero values omitted (Go's omitempty): absent means zero, not default.
    view: View = {
        field: config.get(engine_field, 0) for field, engine_field in _POLICY_ENGINE_FIELDS.items()
    }
    view["max_failure_ratio"] = float(view["max_failure_ratio"])
    view["failure_action"] = config.get("FailureAction") or "pause"
    view["order"] = config.get("Order") or "stop-first"
    return view


def _restart(policy: Mapping[str, Any] | None) -> View:
    if policy is None:
        return dict(DEFAULT_RESTART_POLICY)
    return {
        "condition": policy.get("Condition") or "any",
        "delay": policy.get("Delay", DEFAULT_RESTART_POLICY["delay"]),
        "max_attempts": policy.get("MaxAttempts", 0),
        "window": policy.get("Window", 0),
    }


def _resources(resources: Mapping[str, Any] | None) -> View:
    resources = resources or {}
    limits = resources.get("Limits") or {}
    reservations = resources.get("Reservations") or {}
    return {
        "limits": {
            "cpus": limits.get("NanoCPUs") or None,
            "memory": limits.get("MemoryBytes") or None,
            "pids": limits.get("Pids") or None,
        },
        "reservations": {
            "cpus": reservations.get("NanoCPUs") or None,
            "memory": reservations.get("MemoryBytes") or None,
            "generic_resources": sorted(
                f"{spec.get('Kind')}={spec.get('Value')}"
                for item in reservations.get("GenericResources") or []
                if (spec := item.get("DiscreteResourceSpec"))
            ),
        },
    }


# ---------------------------------------------------------------------------------------------
# Nodes and networks


def desired_node_view(
    node: NodeSpec,
    labels: Mapping[str, str] | None = None,
    managed_before: frozenset[str] = frozenset(),
    prune: bool = False,
) -> View:
    """What the cluster spec wants of a node whose labels are ``labels`` today and whose spec
    managed ``managed_before`` (its record label).

    Labels the spec names are set; others are left alone, except those it managed before and
    no longer names, which ``prune`` removes (and which stay recorded as managed until then).
    An unset availability is ``active``: a spec that once drained a node and no longer says so
    must not leave it drained. An unset role is not managed.
    """
    current = dict(labels or {})
    declared = dict(node.labels or {})
    stopped = (managed_before - declared.keys()) & current.keys()
    wanted = {key: value for key, value in current.items() if not (prune and key in stopped)}
    wanted.update(declared)
    managed = set(declared) | (set() if prune else stopped)
    return {
        "role": node.role,
        "availability": node.availability or "active",
        "labels": dict(sorted(wanted.items())),
        "managed_labels": sorted(managed),
    }


def observed_node_view(node: Mapping[str, Any]) -> View:
    spec = node.get("Spec") or {}
    labels = dict(spec.get("Labels") or {})
    record = labels.pop(CLUSTER_LABELS_LABEL, "")
    return {
        "role": spec.get("Role", "worker"),
        "availability": spec.get("Availability", "active"),
        "labels": dict(sorted(labels.items())),
        "managed_labels": sorted(key for key in record.split(",") if key),
    }


def desired_network_view(network: NetworkSpec) -> View:
    """A network's view; ``ipam`` is not managed when the file gives none (the engine picks
    the address pool then)."""
    ipam = network.ipam
    return {
        "driver": network.driver or "overlay",
        "driver_opts": dict(sorted(network.driver_opts.items())),
        "attachable": network.attachable,
        "internal": network.internal,
        "labels": dict(sorted(network.labels.items())),
        "ipam": None
        if ipam is None
        else {
            "driver": ipam.driver or "default",
            "config": [
                {"subnet": pool.subnet, **({"gateway": pool.gateway} if pool.gateway else {})}
                for pool in ipam.config
            ],
        },
    }


_ENGINE_NETWORK_OPTIONS = ("com.docker.network.driver.overlay.vxlanid_list",)


def observed_network_view(network: Mapping[str, Any]) -> View:
    """The view of a network the engine reports (``align`` hides the address pools and
    gateways the engine picked where the file gives none)."""
    options = dict(network.get("Options") or {})
    for option in _ENGINE_NETWORK_OPTIONS:
        options.pop(option, None)
    ipam = network.get("IPAM") or {}
    return {
        "driver": network.get("Driver", ""),
        "driver_opts": dict(sorted(options.items())),
        "attachable": bool(network.get("Attachable")),
        "internal": bool(network.get("Internal")),
        "labels": _user_labels(network.get("Labels")),
        "ipam": {
            "driver": ipam.get("Driver") or "default",
            "config": [
                _without_none({"subnet": pool.get("Subnet"), "gateway": pool.get("Gateway")})
                for pool in ipam.get("Config") or []
            ],
        },
    }


# ---------------------------------------------------------------------------------------------
# Aligning the two sides


def align(
    desired: Mapping[str, Any],
    observed: Mapping[str, Any],
    *,
    ignore: Iterable[str] = (),
    none_unmanaged: bool = True,
) -> View:
    """The observed view reduced to what the desired view manages.

    Images keep their digest only when the spec pins one. Paths in ``ignore`` (dotted, as in
    ``x-converge.ignore``) take the desired value: another tool owns them. With
    ``none_unmanaged`` (nodes, networks, the load balancer), a desired value of ``None`` is
    not managed and becomes ``None`` on the observed side too.
    """
    # A shallow copy: fields are replaced, never changed in place, so the observed view is
    # left intact without a deep copy per service.
    aligned = dict(observed)
    for field, wanted in desired.items():
        if wanted is None and none_unmanaged:
            aligned[field] = None
        elif field == "image" and isinstance(wanted, str) and "@" not in wanted:
            aligned[field] = canonical_image(str(aligned.get(field) or ""), keep_digest=False)
        elif field == "ipam" and isinstance(wanted, dict) and isinstance(aligned.get(field), dict):
            aligned[field] = _align_ipam(wanted, aligned[field])
    for path in ignore:
        _set_path(aligned, tuple(path.split(".")), _get_path(desired, tuple(path.split("."))))
    return aligned


def _align_ipam(wanted: View, current: View) -> View:
    """Gateways the file does not give are the engine's choice, not a difference."""
    if not wanted.get("config"):
        return {**current, "config": []}
    gateways = {pool.get("subnet") for pool in wanted.get("config", []) if "gateway" in pool}
    return {
        **current,
        "config": [
            pool if pool.get("subnet") in gateways else _without_none({**pool, "gateway": None})
            for pool in current.get("config", [])
        ],
    }


def _get_path(view: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = view
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _set_path(view: View, path: tuple[str, ...], value: Any) -> None:
    """Set ``view`` at ``path``, copying each dict on the way (views are shared)."""
    if len(path) == 1:
        view[path[0]] = value
        return
    child = dict(view.get(path[0]) or {})
    _set_path(child, path[1:], value)
    view[path[0]] = child

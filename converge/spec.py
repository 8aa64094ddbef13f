"""The desired-state models: what a spec file declares, as frozen Pydantic values.

Short forms that users write (``"3000:80"``, ``productdata:/var/lib/mysql:ro``, ``K=V`` lists,
``10s``, ``512M``) are turned into one canonical long form while validating, so the rest of
converge only ever sees that form. Fields left unset (``None``) are not managed by converge.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from ipaddress import ip_address, ip_network
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from converge.units import format_duration, parse_cpus, parse_duration, parse_memory

__all__ = [
    "CONSTRAINT_PATTERN",
    "Constraint",
    "HealthcheckSpec",
    "LoadBalancerBackend",
    "LoadBalancerFrontend",
    "LoadBalancerSpec",
    "MountSpec",
    "NetworkAttachment",
    "NetworkSpec",
    "NodeSpec",
    "PlacementSpec",
    "PortSpec",
    "ResourceSpec",
    "ResourcesSpec",
    "RestartPolicySpec",
    "RollbackConfigSpec",
    "ServiceSpec",
    "Spec",
    "UpdateConfigSpec",
    "VolumeSpec",
    "parse_constraint",
]


class Model(BaseModel):
    """Base of every spec model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _schema(json_schema: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema(json_schema)


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+\s*$|^\d+(\.\d+)?$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "A duration: 10s, 1m30s, 500ms, or a number of seconds.",
}
_MEMORY_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"(?i)^\s*\d+(\.\d+)?\s*([kmgt]i?b?|b)?\s*$"},
        {"type": "integer", "minimum": 0},
    ],
    "description": "A size in bytes, or with a binary unit: 64M, 1G, 512MiB.",
}
_CPUS_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": 4096},
        {"type": "string", "pattern": r"^\s*\d*\.?\d+\s*$"},
    ],
    "description": "A number of CPUs, for example 0.5.",
}

# Python-mode dumps keep engine units (ns, nano-CPUs) for comparing with the engine; JSON dumps
# write what a user would, so that a spec dumped to JSON validates back to the same spec.
Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    _schema(_DURATION_SCHEMA),
]
"""A duration in nanoseconds (written as ``10s``, ``1m30s``, ``500ms``)."""

MemorySize = Annotated[int, BeforeValidator(parse_memory), _schema(_MEMORY_SCHEMA)]
"""A size in bytes (written as ``512M``, ``1G``)."""


def _nano_cpus_to_cpus(nano_cpus: int) -> float:
    return nano_cpus / 1_000_000_000


NanoCpus = Annotated[
    int,
    BeforeValidator(parse_cpus),
    PlainSerializer(_nano_cpus_to_cpus, return_type=float, when_used="json"),
    _schema(_CPUS_SCHEMA),
]
"""CPUs in nano-CPUs, the engine's unit (written as ``0.5``)."""


def _scalar_to_text(value: object) -> object:
    """YAML reads ``true``, ``3`` and ``1.5`` as non-strings; labels and env want text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


_TEXT_VALUE_SCHEMA = {"type": ["string", "number", "boolean"]}
TextValue = Annotated[str, BeforeValidator(_scalar_to_text), _schema(_TEXT_VALUE_SCHEMA)]
Labels = dict[str, TextValue]


def _key_value_list_to_map(what: str) -> Callable[[object], object]:
    def convert(value: object) -> object:
        if not isinstance(value, list):
            return value
        result: dict[str, str] = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"each {what} entry in list form must be KEY=VALUE, got {item!r}")
            key, _, text = item.partition("=")
            if not key:
                raise ValueError(f"{what} entry {item!r} has an empty name")
            if key in result:
                raise ValueError(f"{what} {key!r} is given twice")
            result[key] = text
        return result

    return convert


_KEY_VALUE_SCHEMA = {
    "anyOf": [
        {"type": "object", "additionalProperties": _TEXT_VALUE_SCHEMA},
        {"type": "array", "items": {"type": "string", "pattern": "^[^=]+=.*$"}},
    ]
}
EnvMap = Annotated[
    dict[str, TextValue],
    BeforeValidator(_key_value_list_to_map("env")),
    _schema(_KEY_VALUE_SCHEMA),
]
LabelMap = Annotated[
    dict[str, TextValue],
    BeforeValidator(_key_value_list_to_map("label")),
    _schema(_KEY_VALUE_SCHEMA),
]


def _split_command(value: object) -> object:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as error:
            raise ValueError(f"cannot split command {value!r}: {error}") from None
    return value


CommandLine = Annotated[
    tuple[str, ...],
    BeforeValidator(_split_command),
    _schema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


def _subnet(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return str(ip_network(value.strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not a subnet such as 10.20.0.0/16") from None


def _ip_address(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return str(ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


Subnet = Annotated[str, BeforeValidator(_subnet)]
"""A subnet in canonical notation (``10.20.0.0/16``); unions would blur error locations."""
IPAddress = Annotated[str, BeforeValidator(_ip_address)]

NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
ObjectName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _changed_fields(model: BaseModel) -> set[str]:
    """The fields of ``model`` set to something other than their default."""
    fields = type(model).model_fields
    return {
        name
        for name in model.model_fields_set
        if getattr(model, name) != fields[name].get_default(call_default_factory=True)
    }


# ---------------------------------------------------------------------------------------------
# Nodes


class NodeSpec(Model):
    """A swarm node, keyed by its hostname in ``Spec.nodes``."""

    role: Literal["manager", "worker"] | None = Field(
        default=None, description="manager or worker; unset means not managed."
    )
    labels: Labels | None = Field(
        default=None,
        description="Node labels. When given, the node carries exactly these labels.",
    )
    availability: Literal["active", "pause", "drain"] | None = Field(
        default=None, description="active, pause or drain; unset means not managed."
    )


# ---------------------------------------------------------------------------------------------
# Networks and volumes


class NetworkSpec(Model):
    """A network; overlay unless said otherwise. ``external`` ones are only referenced."""

    external: bool = Field(default=False, description="Exists already; converge never changes it.")
    name: str | None = Field(
        default=None, description="Real name of an external network (default: the key)."
    )
    driver: str = "overlay"
    attachable: bool = False
    internal: bool = False
    encrypted: bool = False
    driver_opts: dict[str, TextValue] = Field(default_factory=dict)
    labels: LabelMap = Field(default_factory=dict)
    subnet: Subnet | None = None
    gateway: IPAddress | None = None

    @model_validator(mode="after")
    def _check(self) -> NetworkSpec:
        if self.external:
            # Settings left at their defaults are fine: a full dump of the spec has them all.
            managed = _changed_fields(self) - {"external", "name"}
            if managed:
                raise ValueError(
                    "an external network takes only 'name'; remove " + ", ".join(sorted(managed))
                )
        elif self.name is not None:
            raise ValueError("'name' is only for external networks")
        return self

    @field_validator("gateway")
    @classmethod
    def _gateway_in_subnet(cls, gateway: str | None, info: ValidationInfo) -> str | None:
        # A field validator (not the model's) so that the error points at 'gateway'.
        if gateway is None or "subnet" not in info.data:
            return gateway
        subnet = info.data["subnet"]
        if subnet is None:
            raise ValueError("a gateway needs a subnet")
        if ip_address(gateway) not in ip_network(subnet):
            raise ValueError(f"gateway {gateway} is not inside subnet {subnet}")
        return gateway


class VolumeSpec(Model):
    """A named volume, created on each node where a task mounts it."""

    external: bool = Field(default=False, description="Exists already; converge never changes it.")
    driver: str = "local"
    driver_opts: dict[str, TextValue] = Field(default_factory=dict)
    labels: LabelMap = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> VolumeSpec:
        if self.external and _changed_fields(self) - {"external"}:
            raise ValueError("an external volume takes no other settings")
        return self


# ---------------------------------------------------------------------------------------------
# Services: ports


class PortSpec(Model):
    """A published port, long form."""

    target: Port = Field(description="The port inside the container.")
    published: Port | None = Field(
        default=None, description="The port on the swarm's nodes (unset: the engine picks one)."
    )
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    mode: Literal["ingress", "host"] = Field(
        default="ingress", description="ingress (routing mesh) or host (the task's node only)."
    )


_SHORT_PORT = re.compile(
    r"^(?:(?P<published>\d+(?:-\d+)?):)?(?P<target>\d+(?:-\d+)?)(?:/(?P<protocol>tcp|udp|sctp))?$"
)


def _port_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    start, end = int(first), int(last or first)
    if end < start:
        raise ValueError(f"port range {text!r} runs backwards")
    return list(range(start, end + 1))


def _expand_short_port(item: object) -> list[object]:
    if isinstance(item, int) and not isinstance(item, bool):
        return [{"target": item}]
    if not isinstance(item, str):
        return [item]
    text = item.strip()
    if text.count(":") > 1:
        raise ValueError(
            f"port {item!r}: a host IP cannot be given in swarm mode; write PUBLISHED:TARGET"
        )
    match = _SHORT_PORT.fullmatch(text)
    if match is None:
        raise ValueError(f"port {item!r} is not of the form [PUBLISHED:]TARGET[/PROTOCOL]")
    targets = _port_range(match["target"])
    published = _port_range(match["published"]) if match["published"] else None
    if published is not None and len(published) != len(targets):
        raise ValueError(f"port {item!r}: the two ranges differ in length")
    protocol = match["protocol"] or "tcp"
    return [
        {"target": target, "protocol": protocol}
        | ({"published": published[index]} if published else {})
        for index, target in enumerate(targets)
    ]


def _expand_ports(value: object) -> object:
    if not isinstance(value, list):
        return value
    return [port for item in value for port in _expand_short_port(item)]


_PORTS_SCHEMA = {
    "type": "array",
    "items": {
        "anyOf": [
            {"type": "string", "pattern": r"^(\d+(-\d+)?:)?\d+(-\d+)?(/(tcp|udp|sctp))?$"},
            {"type": "integer", "minimum": 1, "maximum": 65535},
            {"x-converge-ref": "PortSpec"},
        ]
    },
}

# ---------------------------------------------------------------------------------------------
# Services: mounts


class BindOptions(Model):
    propagation: Literal["rprivate", "private", "rshared", "shared", "rslave", "slave"] | None = (
        None
    )


class VolumeOptions(Model):
    nocopy: bool = False


class TmpfsOptions(Model):
    size: MemorySize | None = None
    mode: int | None = Field(default=None, ge=0, le=0o7777)


class MountSpec(Model):
    """A mount, long form (as in compose)."""

    type: Literal["volume", "bind", "tmpfs"] = "volume"
    source: str | None = Field(
        default=None,
        description="A declared volume's name, or a host path for a bind mount.",
    )
    target: str = Field(pattern=r"^/", description="The absolute path inside the container.")
    read_only: bool = False
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None

    @model_validator(mode="after")
    def _check(self) -> MountSpec:
        if self.type == "bind" and not (self.source and self.source.startswith("/")):
            raise ValueError("a bind mount needs an absolute host path as source")
        if self.type == "tmpfs" and self.source is not None:
            raise ValueError("a tmpfs mount takes no source")
        for option in ("bind", "volume", "tmpfs"):
            if getattr(self, option) is not None and option != self.type:
                raise ValueError(f"'{option}' options only apply to a {option} mount")
        return self


def _expand_short_mount(item: object) -> object:
    if not isinstance(item, str):
        return item
    parts = item.split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    if len(parts) > 3:
        raise ValueError(f"mount {item!r} is not of the form SOURCE:TARGET[:ro|rw]")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise ValueError(f"mount {item!r}: the mode must be ro or rw, got {mode!r}")
    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    return {"type": kind, "source": source, "target": target, "read_only": mode == "ro"}


def _expand_mounts(value: object) -> object:
    if not isinstance(value, list):
        return value
    return [_expand_short_mount(item) for item in value]


_MOUNTS_SCHEMA = {
    "type": "array",
    "items": {"anyOf": [{"type": "string"}, {"x-converge-ref": "MountSpec"}]},
}

# ---------------------------------------------------------------------------------------------
# Services: placement

CONSTRAINT_PATTERN = re.compile(
    r"^\s*(?P<key>node\.(?:id|hostname|role|platform\.os|platform\.arch|labels\.[^\s=!]+)"
    r"|engine\.labels\.[^\s=!]+)\s*(?P<operator>==|!=)\s*(?P<value>\S.*?)\s*$"
)


def parse_constraint(text: str) -> tuple[str, str, str]:
    """Split ``node.labels.type==mvc`` into ``("node.labels.type", "==", "mvc")``.

    Raises:
        ValueError: the text is not a constraint the engine accepts.
    """
    match = CONSTRAINT_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(
            f"constraint {text!r} must be KEY == VALUE or KEY != VALUE, where KEY is node.id, "
            "node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.NAME "
            "or engine.labels.NAME"
        )
    return match["key"], match["operator"], match["value"]


def _canonical_constraint(value: object) -> object:
    if not isinstance(value, str):
        return value
    key, operator, text = parse_constraint(value)
    if key == "node.role" and text not in ("manager", "worker"):
        raise ValueError(f"constraint {value!r}: node.role is manager or worker")
    return f"{key} {operator} {text}"


Constraint = Annotated[
    str,
    BeforeValidator(_canonical_constraint),
    _schema({"type": "string", "pattern": CONSTRAINT_PATTERN.pattern}),
]
"""A placement constraint in canonical spelling: ``node.labels.type == mvc``."""


class SpreadPreference(Model):
    spread: str = Field(pattern=r"^(node|engine)\.labels\.\S+$|^node\.(id|hostname|role)$")


class PlacementSpec(Model):
    constraints: tuple[Constraint, ...] = ()
    preferences: tuple[SpreadPreference, ...] = ()
    max_replicas_per_node: int | None = Field(default=None, ge=1)


# ---------------------------------------------------------------------------------------------
# Services: policies


class UpdateConfigSpec(Model):
    """How a rolling update proceeds (compose's ``deploy.update_config``)."""

    parallelism: int | None = Field(default=None, ge=0, le=10_000)
    delay: Duration | None = None
    failure_action: Literal["continue", "pause", "rollback"] | None = None
    monitor: Duration | None = None
    max_failure_ratio: float | None = Field(default=None, ge=0, le=1)
    order: Literal["stop-first", "start-first"] | None = None


class RollbackConfigSpec(Model):
    """How a rollback proceeds (compose's ``deploy.rollback_config``)."""

    parallelism: int | None = Field(default=None, ge=0, le=10_000)
    delay: Duration | None = None
    failure_action: Literal["continue", "pause"] | None = None
    monitor: Duration | None = None
    max_failure_ratio: float | None = Field(default=None, ge=0, le=1)
    order: Literal["stop-first", "start-first"] | None = None


class RestartPolicySpec(Model):
    condition: Literal["none", "on-failure", "any"] | None = None
    delay: Duration | None = None
    max_attempts: int | None = Field(default=None, ge=0, le=1_000_000)
    window: Duration | None = None


class ResourceSpec(Model):
    cpus: NanoCpus | None = None
    memory: MemorySize | None = None


class ResourcesSpec(Model):
    limits: ResourceSpec | None = None
    reservations: ResourceSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> ResourcesSpec:
        limits, reservations = self.limits, self.reservations
        if limits is None or reservations is None:
            return self
        for field in ("cpus", "memory"):
            limit, reservation = getattr(limits, field), getattr(reservations, field)
            if limit is not None and reservation is not None and reservation > limit:
                raise ValueError(f"the {field} reservation is larger than the {field} limit")
        return self


def _healthcheck_test(value: object) -> object:
    if isinstance(value, str):
        return ["CMD-SHELL", value]
    return value


class HealthcheckSpec(Model):
    test: Annotated[
        tuple[str, ...],
        BeforeValidator(_healthcheck_test),
        _schema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
    ] = ()
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: int | None = Field(default=None, ge=0, le=1000)
    start_period: Duration | None = None
    disable: bool = False

    @field_validator("test")
    @classmethod
    def _test_kind(cls, test: tuple[str, ...]) -> tuple[str, ...]:
        if test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ValueError(
                f"a healthcheck test list starts with CMD, CMD-SHELL or NONE, got {test[0]!r}"
            )
        return test

    @model_validator(mode="after")
    def _check(self) -> HealthcheckSpec:
        if self.disable and self.test:
            raise ValueError("a disabled healthcheck takes no test")
        return self


class NetworkAttachment(Model):
    aliases: tuple[str, ...] = ()


def _networks_to_map(value: object) -> object:
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise ValueError("networks in list form are names")
        for name in value:
            if value.count(name) > 1:
                raise ValueError(f"network {name!r} is listed twice")
        return {name: {} for name in value}
    if isinstance(value, dict):
        return {name: ({} if options is None else options) for name, options in value.items()}
    return value


ServiceNetworks = Annotated[
    dict[str, NetworkAttachment],
    BeforeValidator(_networks_to_map),
    _schema(
        {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [{"type": "null"}, {"x-converge-ref": "NetworkAttachment"}]
                    },
                },
            ]
        }
    ),
]

# ---------------------------------------------------------------------------------------------
# Services


class ServiceSpec(Model):
    """A swarm service, named ``<stack>_<key>`` in the swarm."""

    image: str = Field(min_length=1, description="The image, as you would pass it to docker run.")
    entrypoint: CommandLine | None = Field(default=None, description="Overrides ENTRYPOINT.")
    command: CommandLine | None = Field(default=None, description="Overrides CMD (the args).")
    mode: Literal["replicated", "global"] = "replicated"
    replicas: int | None = Field(
        default=None, ge=0, le=10_000, description="Tasks of a replicated service (default 1)."
    )
    placement: PlacementSpec = Field(default_factory=PlacementSpec)
    ports: Annotated[
        tuple[PortSpec, ...], BeforeValidator(_expand_ports), _schema(_PORTS_SCHEMA)
    ] = ()
    mounts: Annotated[
        tuple[MountSpec, ...], BeforeValidator(_expand_mounts), _schema(_MOUNTS_SCHEMA)
    ] = ()
    env: EnvMap = Field(default_factory=dict)
    networks: ServiceNetworks = Field(default_factory=dict)
    labels: LabelMap = Field(
        default_factory=dict, description="Service labels (never put on the containers)."
    )
    container_labels: LabelMap = Field(default_factory=dict)
    endpoint_mode: Literal["vip", "dnsrr"] | None = None
    update_config: UpdateConfigSpec | None = None
    rollback_config: RollbackConfigSpec | None = None
    restart_policy: RestartPolicySpec | None = None
    resources: ResourcesSpec | None = None
    healthcheck: HealthcheckSpec | None = None
    stop_grace_period: Duration | None = None
    stop_signal: str | None = None
    user: str | None = None
    workdir: str | None = None
    hostname: str | None = None
    init: bool | None = None
    read_only: bool | None = None

    @field_validator("ports")
    @classmethod
    def _unique_ports(cls, ports: tuple[PortSpec, ...]) -> tuple[PortSpec, ...]:
        seen: set[tuple[int, str]] = set()
        for port in ports:
            if port.published is None:
                continue
            key = (port.published, port.protocol)
            if key in seen:
                raise ValueError(f"port {port.published}/{port.protocol} is published twice")
            seen.add(key)
        return ports

    @field_validator("mounts")
    @classmethod
    def _unique_targets(cls, mounts: tuple[MountSpec, ...]) -> tuple[MountSpec, ...]:
        targets = [mount.target for mount in mounts]
        for target in targets:
            if targets.count(target) > 1:
                raise ValueError(f"two mounts share the target {target}")
        return mounts

    # Field validators (not the model's) so that errors point at the offending field; 'mode'
    # is declared before both fields, so it is in info.data when it is valid.
    @field_validator("replicas")
    @classmethod
    def _replicas_need_replicated(cls, replicas: int | None, info: ValidationInfo) -> int | None:
        if replicas is not None and info.data.get("mode") == "global":
            raise ValueError("a global service runs one task per node: remove 'replicas'")
        return replicas

    @field_validator("placement")
    @classmethod
    def _max_per_node_needs_replicated(
        cls, placement: PlacementSpec, info: ValidationInfo
    ) -> PlacementSpec:
        if placement.max_replicas_per_node is not None and info.data.get("mode") == "global":
            raise ValueError("max_replicas_per_node is for replicated services only")
        return placement


# ---------------------------------------------------------------------------------------------
# The external load balancer


# One line of HAProxy configuration: a section keyword inside it would break the layout.
HaproxyLine = Annotated[str, Field(min_length=1, pattern=r"^[^\n\r#]+$")]
# Section names HAProxy accepts: letters, digits and '-', '_', '.', ':'.
HaproxySectionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=63)]


class LoadBalancerBackend(Model):
    """Where HAProxy sends one frontend's traffic: the tasks of one service."""

    service: str = Field(description="The service (its key in 'services').")
    port: Port = Field(
        description="ingress and tasks: the service's published port; dns: its target port."
    )
    method: Literal["ingress", "tasks", "dns"] = Field(
        default="dns",
        description=(
            "ingress: every node's published port; tasks: the nodes running the service's tasks "
            "(host-mode port); dns: Docker's DNS for tasks.<service> over an attachable network."
        ),
    )
    network: str | None = Field(
        default=None,
        description="dns method: the attachable network to join (default: the service's first).",
    )
    balance: Literal["roundrobin", "leastconn", "source", "first", "random"] = "roundrobin"
    check: bool = Field(default=True, description="Health-check each server.")
    max_servers: int = Field(
        default=10, ge=1, le=1000, description="dns method: server slots to reserve."
    )
    options: tuple[HaproxyLine, ...] = Field(
        default=(),
        description=(
            "Extra HAProxy lines for this backend section, written as is (for example "
            "'option httpchk GET /health'); apply validates them with haproxy -c."
        ),
    )


class LoadBalancerFrontend(Model):
    port: Port
    backend: str = Field(description="A key of 'backends'.")
    options: tuple[HaproxyLine, ...] = Field(
        default=(),
        description="Extra HAProxy lines for this frontend section, written as is.",
    )


class LoadBalancerTimeouts(Model):
    connect: Duration = parse_duration("500ms")
    client: Duration = parse_duration("30s")
    server: Duration = parse_duration("30s")


class LoadBalancerStats(Model):
    port: Port
    uri: str = Field(default="/stats", pattern=r"^/")


class LoadBalancerSpec(Model):
    """An HAProxy container kept outside the swarm, on one node."""

    name: ObjectName = "loadbalancer"
    image: str = Field(min_length=1)
    node: str = Field(description="Hostname of the node that runs the container.")
    engine: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Docker engine address of that node (unix://, tcp://, ssh://user@host); default: "
            "the engine converge talks to, which must then be that node."
        ),
    )
    mode: Literal["http", "tcp"] = "http"
    frontends: dict[HaproxySectionName, LoadBalancerFrontend] = Field(min_length=1)
    backends: dict[HaproxySectionName, LoadBalancerBackend] = Field(min_length=1)
    timeouts: LoadBalancerTimeouts = Field(default_factory=LoadBalancerTimeouts)
    stats: LoadBalancerStats | None = None
    # That each frontend names a declared backend and that no port is listened on twice is
    # checked in converge.checks, which can point at the offending frontend's field.


# ---------------------------------------------------------------------------------------------
# The whole spec

STACK_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class Spec(Model):
    """A whole cluster: nodes, networks, volumes, services and the external load balancer."""

    version: Literal[1] = Field(description="The spec format version; always 1.")
    stack: str = Field(
        pattern=STACK_PATTERN,
        description="Prefix of every object's name (<stack>_<name>), as docker stack deploy.",
    )
    nodes: dict[str, NodeSpec] = Field(default_factory=dict)
    networks: dict[ObjectName, NetworkSpec] = Field(default_factory=dict)
    volumes: dict[ObjectName, VolumeSpec] = Field(default_factory=dict)
    services: dict[ObjectName, ServiceSpec] = Field(default_factory=dict)
    loadbalancer: LoadBalancerSpec | None = None

    @field_validator("nodes", "networks", "volumes", mode="before")
    @classmethod
    def _empty_entries(cls, value: object) -> object:
        """``worker1:`` with nothing under it declares an object with every setting default."""
        if isinstance(value, dict):
            return {name: ({} if node is None else node) for name, node in value.items()}
        return value

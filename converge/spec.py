"""The desired-state models: a compose file, as ``docker stack deploy -c`` reads it.

The models mirror the compose specification with compose's own field names. Every short form a
compose file may use (``"3000:80"``, ``data:/var/lib/mysql:ro``, ``K=V`` lists, ``10s``,
``512M``, a command as one string) is turned into one canonical long form while validating, so
the rest of converge only ever sees that form. A field the file leaves unset means what
``docker stack deploy`` would send for it: the engine's default (see ``converge.engine_spec``).

converge's own additions live in compose extension fields, so the same file still deploys with
``docker stack deploy``: a top-level ``x-converge`` (stack name, the cluster's nodes, load
balancer) and a service-level ``x-converge`` (``ignore``: fields another tool owns). Keys compose
knows but swarm ignores (``build``, ``container_name``, ``links`` ...) are accepted and
reported as warnings by the loader (``IGNORED_SERVICE_KEYS``); other ``x-`` keys are allowed
everywhere, as in compose.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from ipaddress import ip_address, ip_network
from typing import Annotated, Any, Literal, TypeVar

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

from converge.naming import object_name
from converge.units import format_duration, parse_cpus, parse_duration, parse_memory

__all__ = [
    "CONSTRAINT_PATTERN",
    "IGNORABLE_FIELDS",
    "IGNORED_SERVICE_KEYS",
    "ClusterSpec",
    "Constraint",
    "ConvergeSpec",
    "DependencySpec",
    "DeploySpec",
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
    "RolloutGates",
    "RolloutSpec",
    "ServiceSpec",
    "Spec",
    "SwarmSettings",
    "UpdateConfigSpec",
    "VolumeSpec",
    "parse_constraint",
]

DEFAULT_NETWORK = "default"
"""The network of services that name none: ``<stack>_default``, as docker stack deploy."""


class Model(BaseModel):
    """Base of every spec model: immutable, unknown keys are errors, ``x-`` keys are allowed."""

    # defer_build: each model's validator is built when first used, not at import (a spec's
    # validation builds one for the whole tree; a command that validates nothing builds none).
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, data: object) -> object:
        """Compose allows ``x-`` keys in every mapping it defines, for anchors and tools."""
        if not isinstance(data, dict):
            return data
        # The usual case first, as a plain loop: this runs for every mapping of a spec.
        for key in data:
            if isinstance(key, str) and key[:2] == "x-":
                break
        else:
            return data
        ours = {field.alias for field in cls.model_fields.values() if field.alias}
        return {
            key: value
            for key, value in data.items()
            if not (isinstance(key, str) and key.startswith("x-") and key not in ours)
        }


_M = TypeVar("_M", bound=BaseModel)


def _shared_default(model: type[_M]) -> Callable[[], _M]:
    """A ``default_factory`` giving every field that is left unset the same instance of
    ``model``: the models are frozen, so a shared one cannot be told from a fresh one, and a
    large spec builds several models fewer per service (validating and collecting them was a
    measurable part of loading 10,000 services)."""
    shared: list[_M] = []

    def default() -> _M:
        if not shared:
            shared.append(model())
        return shared[0]

    return default


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
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgGtT][iI]?[bB]?|[bB])?\s*$"},
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

# Python-mode dumps keep engine units (ns, nano-CPUs) for building Engine API bodies; JSON dumps
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
    if type(value) is str:  # the usual case, first: this runs for every label and env value
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


_TEXT_VALUE_SCHEMA = {"type": ["string", "number", "boolean"]}
TextValue = Annotated[str, BeforeValidator(_scalar_to_text), _schema(_TEXT_VALUE_SCHEMA)]
Labels = dict[str, TextValue]


def _list_to_map(what: str, allow_bare: bool) -> Callable[[object], object]:
    """Compose's ``[K=V, ...]`` form of a mapping; a bare ``K`` means null (env) or ""."""

    def convert(value: object) -> object:
        if not isinstance(value, list):
            return value
        result: dict[str, str | None] = {}
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"each {what} entry in list form must be KEY=VALUE, got {item!r}")
            key, has_value, text = item.partition("=")
            if not key:
                raise ValueError(f"{what} entry {item!r} has an empty name")
            if key in result:
                raise ValueError(f"{what} {key!r} is given twice")
            result[key] = text if has_value else (None if allow_bare else "")
        return result

    return convert


_KEY_VALUE_SCHEMA = {
    "anyOf": [
        {"type": "object", "additionalProperties": _TEXT_VALUE_SCHEMA},
        {"type": "array", "items": {"type": "string"}},
    ]
}
_ENV_SCHEMA = {
    "anyOf": [
        {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        },
        {"type": "array", "items": {"type": "string"}},
    ]
}
EnvMap = Annotated[
    dict[str, TextValue | None],
    BeforeValidator(_list_to_map("environment", allow_bare=True)),
    _schema(_ENV_SCHEMA),
]
"""``environment``: a value of ``None`` (``- NAME`` or ``NAME:``) sends the bare name."""
LabelMap = Annotated[
    dict[str, TextValue],
    BeforeValidator(_list_to_map("label", allow_bare=False)),
    _schema(_KEY_VALUE_SCHEMA),
]


class EnvFileSpec(Model):
    """An ``env_file`` entry, long form."""

    path: str = Field(min_length=1, description="The file, relative to the first file's directory.")
    required: bool = Field(default=True, description="A missing file is an error.")


def _env_files(value: object) -> object:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [{"path": item} if isinstance(item, str) else item for item in value]
    return value


EnvFiles = Annotated[
    tuple[EnvFileSpec, ...],
    BeforeValidator(_env_files),
    _schema(
        {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"x-converge-ref": "EnvFileSpec"}]},
                },
            ]
        }
    ),
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
"""``command``/``entrypoint``: a string is split as a POSIX shell would (compose uses shlex)."""


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


StringList = Annotated[
    tuple[str, ...],
    BeforeValidator(_one_or_many),
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

IgnoredValue = Annotated[Any, _schema({"description": "Accepted and ignored, as by swarm."})]
"""A compose key that swarm ignores: accepted as is; the loader warns where it is used."""


# ---------------------------------------------------------------------------------------------
# The cluster (x-converge.cluster): nodes, owned by one spec (see docs/cluster.md)


class NodeSpec(Model):
    """A swarm node, keyed by its hostname in ``x-converge.cluster.nodes``."""

    role: Literal["manager", "worker"] | None = Field(
        default=None, description="manager or worker; unset means not managed."
    )
    labels: Labels | None = Field(
        default=None,
        description=(
            "Node labels the cluster spec manages. Labels it does not mention are left alone; "
            "one it stops mentioning is removed with --prune."
        ),
    )
    availability: Literal["active", "pause", "drain"] | None = Field(
        default=None, description="active, pause or drain; unset means active."
    )
    engine: Annotated[str, Field(pattern=r"^(unix|ssh|tcp)://\S+$")] | None = Field(
        default=None,
        description=(
            "The node's own engine (unix://, ssh://user@host, tcp://host:2376 with the "
            "DOCKER_TLS_VERIFY/DOCKER_CERT_PATH variables): given, converge makes the node a "
            "member (init on the first manager, join) and removes it with --prune."
        ),
    )
    advertise_addr: str | None = Field(
        default=None, description="The address other nodes reach this one at (swarm init/join)."
    )
    listen_addr: str | None = Field(
        default=None, description="Where the node listens for swarm traffic (default 0.0.0.0:2377)."
    )
    data_path_addr: str | None = Field(
        default=None, description="The address for overlay (VXLAN) traffic (default: advertise)."
    )


class SwarmSettings(Model):
    """Swarm-wide settings, used when converge initialises the swarm."""

    default_addr_pool: tuple[Subnet, ...] = Field(
        default=(), description="Address pools overlay networks take their subnets from."
    )
    subnet_size: int | None = Field(
        default=None, ge=16, le=29, description="The prefix length of each network's subnet."
    )


CLUSTER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class ClusterSpec(Model):
    """The swarm itself: its nodes. One spec owns it (its ``name`` is recorded in the swarm);
    stack specs read the nodes and never write them."""

    name: Annotated[str, Field(pattern=CLUSTER_NAME_PATTERN)] | None = Field(
        default=None,
        description=(
            "Who owns the cluster: recorded in the swarm, another name is refused unless "
            "--take-over. Default: the stack's name."
        ),
    )
    nodes: dict[str, NodeSpec] = Field(default_factory=dict)
    swarm: SwarmSettings = Field(
        default_factory=SwarmSettings,
        description="Swarm-wide settings, used when converge initialises the swarm.",
    )

    @field_validator("nodes", mode="before")
    @classmethod
    def _empty_entries(cls, value: object) -> object:
        """``worker1:`` with nothing under it declares a node with its availability active."""
        if isinstance(value, dict):
            return {name: ({} if node is None else node) for name, node in value.items()}
        return value


# ---------------------------------------------------------------------------------------------
# Networks and volumes


class IpamPool(Model):
    subnet: Subnet
    gateway: IPAddress | None = Field(
        default=None,
        description="Not sent by docker stack deploy, which refuses it; converge does.",
    )

    @field_validator("gateway")
    @classmethod
    def _gateway_in_subnet(cls, gateway: str | None, info: ValidationInfo) -> str | None:
        if gateway is None or "subnet" not in info.data:
            return gateway
        subnet = info.data["subnet"]
        if ip_address(gateway) not in ip_network(subnet):
            raise ValueError(f"gateway {gateway} is not inside subnet {subnet}")
        return gateway


class IpamSpec(Model):
    driver: str | None = None
    config: tuple[IpamPool, ...] = ()


def _external(value: object) -> object:
    """``external: {name: x}`` is compose's old spelling of ``external: true`` + ``name: x``."""
    if isinstance(value, dict):
        return True
    return value


_EXTERNAL_SCHEMA = _schema(
    {"anyOf": [{"type": "boolean"}, {"type": "object", "properties": {"name": {"type": "string"}}}]}
)
External = Annotated[bool, BeforeValidator(_external), _EXTERNAL_SCHEMA]


def _external_name(data: object) -> object:
    if not isinstance(data, dict) or not isinstance(data.get("external"), dict):
        return data
    old = data["external"].get("name")
    if old is not None:
        if data.get("name") not in (None, old):
            raise ValueError("external.name and name conflict; only use name")
        data = {**data, "name": old}
    return data


def _changed_fields(model: BaseModel) -> set[str]:
    """The fields of ``model`` set to something other than their default."""
    fields = type(model).model_fields
    return {
        name
        for name in model.model_fields_set
        if getattr(model, name) != fields[name].get_default(call_default_factory=True)
    }


class NetworkSpec(Model):
    """A network (overlay unless ``driver`` says otherwise), named ``<stack>_<key>`` unless
    ``name`` is set; an ``external`` one exists already and is only referenced."""

    external: External = Field(default=False, description="Exists already; never changed.")
    name: str | None = Field(default=None, description="The network's real name.")
    driver: str | None = Field(default=None, description="overlay when unset.")
    driver_opts: dict[str, TextValue] = Field(
        default_factory=dict, description='Driver options; "encrypted" encrypts an overlay.'
    )
    attachable: bool = False
    internal: bool = False
    labels: LabelMap = Field(default_factory=dict)
    ipam: IpamSpec | None = None
    enable_ipv6: IgnoredValue = None

    @model_validator(mode="before")
    @classmethod
    def _old_external_name(cls, data: object) -> object:
        return _external_name(data)

    @model_validator(mode="after")
    def _check(self) -> NetworkSpec:
        if self.external:
            managed = _changed_fields(self) - {"external", "name"}
            if managed:
                raise ValueError(
                    "an external network takes only 'name'; remove " + ", ".join(sorted(managed))
                )
        return self

    @property
    def encrypted(self) -> bool:
        return "encrypted" in self.driver_opts


class VolumeSpec(Model):
    """A named volume, created on each node where a task mounts it."""

    external: External = Field(default=False, description="Exists already; never changed.")
    name: str | None = Field(default=None, description="The volume's real name.")
    driver: str | None = None
    driver_opts: dict[str, TextValue] | None = None
    labels: LabelMap = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _old_external_name(cls, data: object) -> object:
        return _external_name(data)

    @model_validator(mode="after")
    def _check(self) -> VolumeSpec:
        if self.external and _changed_fields(self) - {"external", "name"}:
            raise ValueError("an external volume takes only 'name'")
        return self


def _source_path(path: str | None, info: ValidationInfo) -> str | None:
    """A source file: relative to the first file's directory (as compose), ``~`` is $HOME."""
    if path is None:
        return path
    context = info.context or {}
    if path.startswith("~") and context.get("home"):
        path = context["home"] + path[1:]
    base = context.get("working_dir")
    if not path.startswith("/") and base is not None:
        path = _join_path(base, path)
    return path


class AgeSourceSpec(Model):
    """An age-encrypted file and the identity file that decrypts it."""

    file: str = Field(min_length=1, description="The encrypted file (relative to the spec).")
    identity: str = Field(
        min_length=1, description="An age identity file (AGE-SECRET-KEY-1... lines)."
    )

    _paths = field_validator("file", "identity")(_source_path)


class FileObjectConvergeSpec(Model):
    """A secret's or config's ``x-converge``: sources beyond compose, and retention."""

    age: AgeSourceSpec | None = Field(
        default=None, description="Decrypt an age-encrypted file with an identity file."
    )
    command: str | tuple[str, ...] | None = Field(
        default=None,
        description=(
            "Run this and take its standard output (a string runs through sh -c; a list "
            "runs as is): sops -d, vault kv get -field, pass show..."
        ),
    )
    keep: int = Field(
        default=1,
        ge=0,
        le=100,
        description="Previous versions kept after a rotation, for rollback (default 1).",
    )


class FileObjectSpec(Model):
    """A top-level secret or config, created as ``<stack>_<key>`` (or its ``name``)."""

    file: str | None = None
    environment: str | None = Field(
        default=None, description="The name of a variable whose value is the content."
    )
    content: str | None = Field(default=None, description="The content itself (configs only).")
    external: External = False
    name: str | None = None
    labels: LabelMap = Field(default_factory=dict)
    driver: str | None = None
    driver_opts: dict[str, TextValue] = Field(default_factory=dict)
    template_driver: str | None = Field(
        default=None, description='"golang": the engine renders the content per task.'
    )
    x_converge: FileObjectConvergeSpec = Field(
        default_factory=FileObjectConvergeSpec, alias="x-converge"
    )

    _paths = field_validator("file")(_source_path)

    @model_validator(mode="before")
    @classmethod
    def _old_external_name(cls, data: object) -> object:
        return _external_name(data)

    @model_validator(mode="after")
    def _check(self) -> FileObjectSpec:
        sources = [
            name
            for name, given in (
                ("file", self.file is not None),
                ("environment", self.environment is not None),
                ("content", self.content is not None),
                ("external", self.external),
                ("driver", self.driver is not None),
                ("x-converge.age", self.x_converge.age is not None),
                ("x-converge.command", self.x_converge.command is not None),
            )
            if given
        ]
        if len(sources) > 1:
            raise ValueError("give one source, not " + " and ".join(sources))
        if not sources:
            raise ValueError(
                "give a source: file, environment, content (configs), external, "
                "x-converge.age or x-converge.command"
            )
        if self.external and _changed_fields(self) - {"external", "name"}:
            raise ValueError("an external secret or config takes only 'name'")
        return self


class FileReference(Model):
    """A service's use of a secret or config (long form; the short form is the source)."""

    source: str = Field(min_length=1)
    target: str | None = None
    uid: str | None = None
    gid: str | None = None
    mode: int | None = Field(default=None, ge=0, le=0o7777)


def _file_references(value: object) -> object:
    if isinstance(value, list):
        return [{"source": item} if isinstance(item, str) else item for item in value]
    return value


FileReferences = Annotated[
    tuple[FileReference, ...],
    BeforeValidator(_file_references),
    _schema(
        {
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"x-converge-ref": "FileReference"}]},
        }
    ),
]


# ---------------------------------------------------------------------------------------------
# Services: ports


class PortSpec(Model):
    """A published port, long form. Fields left unset are the engine's defaults (tcp,
    ingress); the short form sets protocol and mode, as docker stack deploy does."""

    target: Port = Field(description="The port inside the container.")
    published: Port | None = Field(
        default=None, description="The port on the swarm's nodes (unset: not published)."
    )
    protocol: Literal["tcp", "udp", "sctp"] | None = None
    mode: Literal["ingress", "host"] | None = Field(
        default=None, description="ingress (routing mesh) or host (the task's node only)."
    )
    host_ip: IgnoredValue = None
    name: IgnoredValue = None
    app_protocol: IgnoredValue = None

    @field_validator("published", mode="before")
    @classmethod
    def _published_text(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    @property
    def effective_protocol(self) -> str:
        return self.protocol or "tcp"

    @property
    def effective_mode(self) -> str:
        return self.mode or "ingress"


_SHORT_PORT = re.compile(
    r"^(?:(?P<ip>\[[0-9a-fA-F:.]*\]|[0-9.]*):(?=[^:]*:))?"
    r"(?:(?P<published>\d*(?:-\d+)?):)?(?P<target>\d+(?:-\d+)?)(?:/(?P<protocol>tcp|udp|sctp))?$"
)


_SHORT_PORT_SCHEMA = r"^(([0-9.]*|\[[0-9a-fA-F:.]*\]):)?(\d*(-\d+)?:)?\d+(-\d+)?(/(tcp|udp|sctp))?$"


def _port_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    start, end = int(first), int(last or first)
    if end < start:
        raise ValueError(f"port range {text!r} runs backwards")
    return list(range(start, end + 1))


def _expand_short_port(item: object) -> list[object]:
    """As docker/cli's ``toServicePortConfigs``: protocol and mode always set; a published
    range with one target publishes each port of the range to it; a host IP is ignored."""
    if isinstance(item, int) and not isinstance(item, bool):
        item = str(item)
    if not isinstance(item, str):
        return [item]
    match = _SHORT_PORT.fullmatch(item.strip())
    if match is None:
        raise ValueError(f"port {item!r} is not of the form [[IP:]PUBLISHED:]TARGET[/PROTOCOL]")
    targets = _port_range(match["target"])
    published = _port_range(match["published"]) if match["published"] else None
    protocol = match["protocol"] or "tcp"
    if published is not None and len(targets) == 1 and len(published) > 1:
        return [
            {"target": targets[0], "published": port, "protocol": protocol, "mode": "ingress"}
            for port in published
        ]
    if published is not None and len(published) != len(targets):
        raise ValueError(f"port {item!r}: the two ranges differ in length")
    return [
        {"target": target, "protocol": protocol, "mode": "ingress"}
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
            {
                "type": "string",
                "pattern": _SHORT_PORT_SCHEMA,
            },
            {"type": "integer", "minimum": 1, "maximum": 65535},
            {"x-converge-ref": "PortSpec"},
        ]
    },
}

# ---------------------------------------------------------------------------------------------
# Services: volumes (mounts)


class BindOptions(Model):
    propagation: Literal["rprivate", "private", "rshared", "shared", "rslave", "slave"] | None = (
        None
    )
    create_host_path: IgnoredValue = None
    selinux: IgnoredValue = None


class VolumeOptions(Model):
    nocopy: bool = False
    subpath: IgnoredValue = None


class TmpfsOptions(Model):
    size: MemorySize | None = None
    mode: IgnoredValue = Field(default=None, description="Ignored, as by docker stack deploy.")


_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


class MountSpec(Model):
    """A service volume, long form (compose's ``volumes`` entry)."""

    type: Literal["volume", "bind", "tmpfs"] = "volume"
    source: str | None = Field(
        default=None,
        description="A declared volume's name, or a host path for a bind mount.",
    )
    target: str = Field(pattern=r"^/", description="The absolute path inside the container.")
    read_only: bool = False
    consistency: str | None = None
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None

    @field_validator("source")
    @classmethod
    def _resolve_bind_source(cls, source: str | None, info: ValidationInfo) -> str | None:
        """Relative bind sources are relative to the first file's directory; ``~`` is $HOME."""
        if source is None or info.data.get("type") != "bind":
            return source
        context = info.context or {}
        if source.startswith("~"):
            home = context.get("home")
            if home:
                source = home + source[1:]
        if not source.startswith("/"):
            base = context.get("working_dir")
            if base is None:
                raise ValueError(f"a bind mount needs an absolute host path, got {source!r}")
            source = _join_path(base, source)
        return source

    @model_validator(mode="after")
    def _check(self) -> MountSpec:
        if self.type == "bind" and not self.source:
            raise ValueError("a bind mount needs a source")
        if self.type == "tmpfs" and self.source is not None:
            raise ValueError("a tmpfs mount takes no source")
        for option in ("bind", "volume", "tmpfs"):
            if getattr(self, option) is not None and option != self.type:
                raise ValueError(f"'{option}' options only apply to a {option} mount")
        return self


def _join_path(base: str, relative: str) -> str:
    parts: list[str] = [part for part in base.split("/") if part]
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def _is_file_path(source: str) -> bool:
    return source[0] in "./~"


def _expand_short_mount(item: object) -> object:
    """As docker/cli's ``ParseVolume``: ``[SOURCE:]TARGET[:OPTIONS]``, options ro, rw, nocopy
    and a bind propagation, comma-separated (others ignored)."""
    if not isinstance(item, str):
        return item
    if not item:
        raise ValueError("a volume entry is empty")
    parts = item.split(":")
    if len(parts) > 3:
        raise ValueError(f"volume {item!r} is not of the form [SOURCE:]TARGET[:MODE]")
    if any(not part for part in parts):
        raise ValueError(f"volume {item!r} has an empty section between colons")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    source, target = parts[0], parts[1]
    result: dict[str, Any] = {
        "type": "bind" if _is_file_path(source) else "volume",
        "source": source,
        "target": target,
    }
    for option in parts[2].split(",") if len(parts) == 3 else []:
        if option == "ro":
            result["read_only"] = True
        elif option == "rw":
            result["read_only"] = False
        elif option == "nocopy" and result["type"] == "volume":
            result["volume"] = {"nocopy": True}
        elif option in _PROPAGATIONS and result["type"] == "bind":
            result["bind"] = {"propagation": option}
    return result


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


def _check_constraint(value: object) -> object:
    """Constraints are sent as written (as docker stack deploy does); only checked here."""
    if not isinstance(value, str):
        return value
    key, _, text = parse_constraint(value)
    if key == "node.role" and text not in ("manager", "worker"):
        raise ValueError(f"constraint {value!r}: node.role is manager or worker")
    return value


Constraint = Annotated[
    str,
    BeforeValidator(_check_constraint),
    _schema({"type": "string", "pattern": CONSTRAINT_PATTERN.pattern}),
]
"""A placement constraint, as written: ``node.labels.type == mvc``."""


class SpreadPreference(Model):
    spread: str = Field(pattern=r"^(node|engine)\.labels\.\S+$|^node\.(id|hostname|role)$")


class PlacementSpec(Model):
    constraints: tuple[Constraint, ...] = ()
    preferences: tuple[SpreadPreference, ...] = ()
    max_replicas_per_node: int | None = Field(default=None, ge=0)


# ---------------------------------------------------------------------------------------------
# Services: policies


class UpdateConfigSpec(Model):
    """How a rolling update proceeds. Unset fields are the engine's zero values, except
    parallelism (1), as docker stack deploy sends them."""

    parallelism: int | None = Field(default=None, ge=0, le=10_000)
    delay: Duration | None = None
    failure_action: Literal["continue", "pause", "rollback"] | None = None
    monitor: Duration | None = None
    max_failure_ratio: float | None = Field(default=None, ge=0, le=1)
    order: Literal["stop-first", "start-first"] | None = None


class RollbackConfigSpec(Model):
    """How a rollback proceeds (as ``update_config``; a rollback cannot itself roll back)."""

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


class DiscreteResource(Model):
    kind: str = Field(min_length=1)
    value: int = Field(ge=0)


class GenericResource(Model):
    discrete_resource_spec: DiscreteResource


class ResourceSpec(Model):
    cpus: NanoCpus | None = None
    memory: MemorySize | None = None
    pids: int | None = Field(default=None, ge=0, description="Limits only.")
    generic_resources: tuple[GenericResource, ...] = Field(
        default=(), description="Reservations only."
    )
    devices: IgnoredValue = None


class ResourcesSpec(Model):
    limits: ResourceSpec | None = None
    reservations: ResourceSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> ResourcesSpec:
        limits, reservations = self.limits, self.reservations
        if limits is not None and limits.generic_resources:
            raise ValueError("generic_resources are reservations, not limits")
        if reservations is not None and reservations.pids is not None:
            raise ValueError("pids is a limit, not a reservation")
        if limits is None or reservations is None:
            return self
        for field in ("cpus", "memory"):
            limit, reservation = getattr(limits, field), getattr(reservations, field)
            if limit is not None and reservation is not None and reservation > limit:
                raise ValueError(f"the {field} reservation is larger than the {field} limit")
        return self


ServiceMode = Literal["replicated", "global", "replicated-job", "global-job"]


class DeploySpec(Model):
    """compose's ``deploy``: how swarm runs the service."""

    mode: ServiceMode = Field(
        default="replicated",
        description="replicated, global, replicated-job or global-job.",
    )
    replicas: int | None = Field(
        default=None, ge=0, le=10_000, description="Tasks of a replicated service (default 1)."
    )
    labels: LabelMap = Field(
        default_factory=dict, description="Service labels (the service, not its containers)."
    )
    update_config: UpdateConfigSpec | None = None
    rollback_config: RollbackConfigSpec | None = None
    resources: ResourcesSpec = Field(default_factory=_shared_default(ResourcesSpec))
    restart_policy: RestartPolicySpec | None = None
    placement: PlacementSpec = Field(default_factory=_shared_default(PlacementSpec))
    endpoint_mode: Literal["vip", "dnsrr"] | None = None

    # Field validators (not the model's) so that errors point at the offending field; 'mode'
    # is declared before both fields, so it is in info.data when it is valid.
    @field_validator("replicas")
    @classmethod
    def _replicas_need_replicated(cls, replicas: int | None, info: ValidationInfo) -> int | None:
        mode = info.data.get("mode")
        if replicas is not None and mode in ("global", "global-job"):
            raise ValueError(f"a {mode} service runs one task per node: remove 'replicas'")
        return replicas

    @field_validator("placement")
    @classmethod
    def _max_per_node_needs_replicated(
        cls, placement: PlacementSpec, info: ValidationInfo
    ) -> PlacementSpec:
        if placement.max_replicas_per_node and info.data.get("mode") in ("global", "global-job"):
            raise ValueError("max_replicas_per_node is for replicated services only")
        return placement

    @property
    def is_job(self) -> bool:
        return self.mode.endswith("-job")

    @property
    def is_global(self) -> bool:
        return self.mode.startswith("global")


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
    start_interval: Duration | None = Field(
        default=None, description="Needs Engine API 1.44: refused (converge speaks 1.41)."
    )
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
    driver_opts: dict[str, TextValue] = Field(default_factory=dict)
    ipv4_address: IgnoredValue = None
    ipv6_address: IgnoredValue = None
    link_local_ips: IgnoredValue = None
    priority: IgnoredValue = None


_NO_OPTIONS = NetworkAttachment()
"""A network joined without options: one frozen instance for all (see ``_shared_default``)."""


def _networks_to_map(value: object) -> object:
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise ValueError("networks in list form are names")
        for name in value:
            if value.count(name) > 1:
                raise ValueError(f"network {name!r} is listed twice")
        return dict.fromkeys(value, _NO_OPTIONS)
    if isinstance(value, dict):
        return {
            name: (_NO_OPTIONS if options is None else options) for name, options in value.items()
        }
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


class UlimitSpec(Model):
    soft: int = Field(ge=-1)
    hard: int = Field(ge=-1)


def _ulimits(value: object) -> object:
    if isinstance(value, dict):
        return {
            name: {"soft": limit, "hard": limit}
            if isinstance(limit, int) and not isinstance(limit, bool)
            else limit
            for name, limit in value.items()
        }
    return value


Ulimits = Annotated[
    dict[str, UlimitSpec],
    BeforeValidator(_ulimits),
    _schema(
        {
            "type": "object",
            "additionalProperties": {
                "anyOf": [{"type": "integer"}, {"x-converge-ref": "UlimitSpec"}]
            },
        }
    ),
]


def _extra_hosts(value: object) -> object:
    """``host:ip``, ``host=ip`` or a mapping: one ``host:ip`` per entry, in the file's order
    (an IPv6 address in brackets loses them), as docker/cli's ``transformHostsList``."""
    items: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for host, ips in value.items():
            for ip in ips if isinstance(ips, list) else [ips]:
                items.append((str(host), str(ip)))
        items.sort()
    elif isinstance(value, list):
        for entry in value:
            text = str(entry)
            host, separator, ip = text.partition("=")
            if not separator:
                host, separator, ip = text.partition(":")
            if not separator:
                raise ValueError(f"extra host {text!r} is not HOST:IP")
            items.append((host, ip))
    else:
        return value
    result = []
    for host, ip in items:
        if len(ip) > 2 and ip.startswith("[") and ip.endswith("]"):
            ip = ip[1:-1]
        result.append(f"{host}:{ip}")
    return result


ExtraHosts = Annotated[
    tuple[str, ...],
    BeforeValidator(_extra_hosts),
    _schema(
        {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}},
                        ]
                    },
                },
            ]
        }
    ),
]


class LoggingSpec(Model):
    driver: str | None = None
    options: dict[str, TextValue] = Field(default_factory=dict)


class CredentialSpecSpec(Model):
    config: str | None = None
    file: str | None = None
    registry: str | None = None

    @model_validator(mode="after")
    def _one(self) -> CredentialSpecSpec:
        given = [name for name in ("config", "file", "registry") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(f"a credential spec takes one of config, file, registry; got {given}")
        return self


_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")


# Fields another tool may own (x-converge.ignore): paths into a service, in compose's names.
IGNORABLE_FIELDS = (
    "image",
    "command",
    "entrypoint",
    "environment",
    "labels",
    "hostname",
    "user",
    "working_dir",
    "init",
    "read_only",
    "tty",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "healthcheck",
    "dns",
    "dns_search",
    "dns_opt",
    "extra_hosts",
    "cap_add",
    "cap_drop",
    "sysctls",
    "ulimits",
    "logging",
    "isolation",
    "credential_spec",
    "ports",
    "volumes",
    "networks",
    "deploy.replicas",
    "deploy.labels",
    "deploy.update_config",
    "deploy.rollback_config",
    "deploy.restart_policy",
    "deploy.resources",
    "deploy.resources.limits",
    "deploy.resources.reservations",
    "deploy.placement",
    "deploy.placement.constraints",
    "deploy.placement.preferences",
    "deploy.placement.max_replicas_per_node",
    "deploy.endpoint_mode",
)


def _check_ignore_path(value: object) -> object:
    if isinstance(value, str) and value not in IGNORABLE_FIELDS:
        close = difflib.get_close_matches(value, IGNORABLE_FIELDS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{value!r} is not a field converge can leave to another tool{hint}")
    return value


IgnorePath = Annotated[
    str,
    BeforeValidator(_check_ignore_path),
    _schema({"type": "string", "enum": list(IGNORABLE_FIELDS)}),
]


class RolloutGates(Model):
    """What a rollout step must show before it moves on, judged from HAProxy's own counters."""

    max_error_rate: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description=(
            "Highest share of failed requests (HTTP 5xx answers and connection or response "
            "failures, as HAProxy counts them for the new version's servers), in percent."
        ),
    )
    min_requests: int = Field(
        default=20,
        ge=1,
        description="Requests the new version must have served before a step is judged.",
    )
    health: bool = Field(
        default=True,
        description=(
            "The new version's servers must pass the backend's health checks: every task "
            "before traffic moves, at least one throughout each step."
        ),
    )


class RolloutSpec(Model):
    """How a new version of the service replaces the running one (``x-converge.rollout``)."""

    strategy: Literal["rolling", "blue-green", "canary"] = Field(
        default="rolling",
        description=(
            "rolling: swarm's own update, in place (the default); blue-green: the new version "
            "runs beside the old one, takes all traffic at once, then the old one retires; "
            "canary: the same, with the traffic share moving through 'steps'."
        ),
    )
    steps: tuple[Annotated[int, Field(ge=1, le=100)], ...] = Field(
        default=(10, 50, 100),
        min_length=1,
        description="canary: the new version's traffic share per step, in percent, ending at 100.",
    )
    pause: Duration = Field(
        default=parse_duration("30s"),
        description="How long each step is held (and judged) before the next one.",
    )
    gates: RolloutGates = Field(
        default_factory=_shared_default(RolloutGates),
        description="What each step must show (HAProxy's counters) before the next one.",
    )

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if list(steps) != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError("steps must increase and end at 100 (for example [10, 50, 100])")
        return steps

    @property
    def shares(self) -> tuple[int, ...]:
        """The traffic shares the new version goes through: ``(100,)`` for blue-green."""
        return (100,) if self.strategy == "blue-green" else self.steps


class ServiceConvergeSpec(Model):
    """A service's ``x-converge``: per-service policy."""

    rollout: RolloutSpec = Field(
        default_factory=_shared_default(RolloutSpec),
        description=(
            "How a changed service is released: rolling (in place), or blue-green / canary "
            "beside the running version, through the managed load balancer."
        ),
    )

    ignore: tuple[IgnorePath, ...] = Field(
        default=(),
        description=(
            "Fields another tool owns (an autoscaler's deploy.replicas, an updater's image): "
            "never shown as drift, and kept as they are in the swarm on update."
        ),
    )


# Compose keys that swarm ignores: accepted, reported as warnings (docker stack deploy ignores
# or refuses them). Values are not checked.
IGNORED_SERVICE_KEYS = (
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cgroup",
    "cgroup_parent",
    "cgroupns_mode",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "develop",
    "device_cgroup_rules",
    "devices",
    "domainname",
    "expose",
    "external_links",
    "gpus",
    "group_add",
    "ipc",
    "label_file",
    "links",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "network_mode",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "pull_policy",
    "runtime",
    "scale",
    "security_opt",
    "shm_size",
    "storage_opt",
    "tmpfs",
    "userns_mode",
    "uts",
    "volumes_from",
)

# ---------------------------------------------------------------------------------------------
# Services

DependencyCondition = Literal[
    "service_started", "service_healthy", "service_completed_successfully"
]


class DependencySpec(Model):
    """One entry of ``depends_on``: what the dependency must reach before this service is
    created or updated (see ``converge.ordering``)."""

    condition: DependencyCondition = Field(
        default="service_started",
        description=(
            "service_started: its tasks run; service_healthy: its tasks run and pass their "
            "healthcheck; service_completed_successfully: a job whose tasks all completed."
        ),
    )
    required: bool = Field(
        default=True,
        description=(
            "false: if the dependency fails, this service is still applied (apply still exits 1)."
        ),
    )
    restart: IgnoredValue = None


def _depends_on(value: object) -> object:
    """The list form ``[db, cache]`` means ``condition: service_started`` for each."""
    if isinstance(value, list | tuple):
        return {name: {} for name in value}
    if isinstance(value, dict):
        return {name: ({} if entry is None else entry) for name, entry in value.items()}
    return value


DependsOn = Annotated[
    dict[str, DependencySpec],
    BeforeValidator(_depends_on),
    _schema(
        {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                {
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [
                            {"type": "null"},
                            {
                                "type": "object",
                                "properties": {
                                    "condition": {
                                        "enum": [
                                            "service_started",
                                            "service_healthy",
                                            "service_completed_successfully",
                                        ]
                                    },
                                    "required": {"type": "boolean"},
                                    "restart": {"description": "Accepted and ignored."},
                                },
                                "patternProperties": {"^x-": {}},
                                "additionalProperties": False,
                            },
                        ]
                    },
                },
            ],
            "description": (
                "Services to converge first (converge orders creates and updates in waves; "
                "docker stack deploy ignores it)."
            ),
        }
    ),
]


class ServiceSpec(Model):
    """A swarm service, named ``<stack>_<key>`` in the swarm: the full desired state."""

    image: str = Field(min_length=1, description="The image, as you would pass it to docker run.")
    command: CommandLine | None = Field(default=None, description="Overrides CMD (the args).")
    entrypoint: CommandLine | None = Field(default=None, description="Overrides ENTRYPOINT.")
    environment: EnvMap = Field(default_factory=dict)
    env_file: EnvFiles | None = Field(
        default=None,
        description="Files of KEY=VALUE lines, read into environment (which wins over them).",
    )
    labels: LabelMap = Field(
        default_factory=dict, description="Container labels (deploy.labels label the service)."
    )
    ports: Annotated[
        tuple[PortSpec, ...], BeforeValidator(_expand_ports), _schema(_PORTS_SCHEMA)
    ] = ()
    volumes: Annotated[
        tuple[MountSpec, ...], BeforeValidator(_expand_mounts), _schema(_MOUNTS_SCHEMA)
    ] = ()
    networks: ServiceNetworks = Field(
        default_factory=dict, description="Networks the service joins (default: <stack>_default)."
    )
    deploy: DeploySpec = Field(default_factory=_shared_default(DeploySpec))
    depends_on: DependsOn = Field(
        default_factory=dict,
        description=(
            "Services to converge first: a list, or a map of name to condition and required. "
            "converge applies services in waves; docker stack deploy ignores it."
        ),
    )
    healthcheck: HealthcheckSpec | None = None
    restart: str | None = Field(
        default=None,
        pattern=_RESTART.pattern,
        description="Used, as by docker stack deploy, only when deploy.restart_policy is unset.",
    )
    stop_grace_period: Duration | None = None
    stop_signal: str | None = None
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    init: bool | None = None
    read_only: bool = False
    tty: bool = False
    stdin_open: bool = False
    dns: StringList | None = None
    dns_search: StringList | None = None
    dns_opt: tuple[str, ...] | None = Field(
        default=None, description="Refused by docker stack deploy; converge sends it."
    )
    extra_hosts: ExtraHosts = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    sysctls: LabelMap = Field(default_factory=dict)
    ulimits: Ulimits = Field(default_factory=dict)
    logging: LoggingSpec | None = None
    isolation: str | None = None
    credential_spec: CredentialSpecSpec | None = None
    secrets: FileReferences = ()
    configs: FileReferences = ()
    x_converge: ServiceConvergeSpec = Field(
        default_factory=_shared_default(ServiceConvergeSpec), alias="x-converge"
    )

    # Accepted and ignored (see IGNORED_SERVICE_KEYS); declared so the schema knows them.
    annotations: IgnoredValue = None
    attach: IgnoredValue = None
    blkio_config: IgnoredValue = None
    build: IgnoredValue = None
    cgroup: IgnoredValue = None
    cgroup_parent: IgnoredValue = None
    cgroupns_mode: IgnoredValue = None
    container_name: IgnoredValue = None
    cpu_count: IgnoredValue = None
    cpu_percent: IgnoredValue = None
    cpu_period: IgnoredValue = None
    cpu_quota: IgnoredValue = None
    cpu_rt_period: IgnoredValue = None
    cpu_rt_runtime: IgnoredValue = None
    cpu_shares: IgnoredValue = None
    cpus: IgnoredValue = None
    cpuset: IgnoredValue = None
    develop: IgnoredValue = None
    device_cgroup_rules: IgnoredValue = None
    devices: IgnoredValue = None
    domainname: IgnoredValue = None
    expose: IgnoredValue = None
    external_links: IgnoredValue = None
    gpus: IgnoredValue = None
    group_add: IgnoredValue = None
    ipc: IgnoredValue = None
    label_file: IgnoredValue = None
    links: IgnoredValue = None
    mac_address: IgnoredValue = None
    mem_limit: IgnoredValue = None
    mem_reservation: IgnoredValue = None
    mem_swappiness: IgnoredValue = None
    memswap_limit: IgnoredValue = None
    network_mode: IgnoredValue = None
    oom_kill_disable: IgnoredValue = None
    oom_score_adj: IgnoredValue = None
    pid: IgnoredValue = None
    pids_limit: IgnoredValue = None
    platform: IgnoredValue = None
    post_start: IgnoredValue = None
    pre_stop: IgnoredValue = None
    privileged: IgnoredValue = None
    profiles: IgnoredValue = None
    pull_policy: IgnoredValue = None
    runtime: IgnoredValue = None
    scale: IgnoredValue = None
    security_opt: IgnoredValue = None
    shm_size: IgnoredValue = None
    storage_opt: IgnoredValue = None
    tmpfs: IgnoredValue = None
    userns_mode: IgnoredValue = None
    uts: IgnoredValue = None
    volumes_from: IgnoredValue = None

    @field_validator("ports")
    @classmethod
    def _unique_ports(cls, ports: tuple[PortSpec, ...]) -> tuple[PortSpec, ...]:
        seen: set[tuple[int, str]] = set()
        for port in ports:
            if port.published is None:
                continue
            key = (port.published, port.effective_protocol)
            if key in seen:
                raise ValueError(
                    f"port {port.published}/{port.effective_protocol} is published twice"
                )
            seen.add(key)
        return ports

    @field_validator("volumes")
    @classmethod
    def _unique_targets(cls, mounts: tuple[MountSpec, ...]) -> tuple[MountSpec, ...]:
        targets = [mount.target for mount in mounts]
        for target in targets:
            if targets.count(target) > 1:
                raise ValueError(f"two volumes share the target {target}")
        return mounts

    @property
    def ignored(self) -> frozenset[str]:
        """The fields under ``x-converge.ignore``."""
        return frozenset(self.x_converge.ignore)


# ---------------------------------------------------------------------------------------------
# The external load balancer (x-converge.loadbalancer)


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
# The whole file

STACK_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
StackName = Annotated[str, Field(pattern=STACK_PATTERN)]


class ConvergeSpec(Model):
    """The top-level ``x-converge``: what converge adds to a compose file."""

    stack: StackName | None = Field(
        default=None,
        description=(
            "The stack: prefix of every object's name (<stack>_<name>). Default: the STACK "
            "argument, or the file's top-level name."
        ),
    )
    cluster: ClusterSpec | None = Field(
        default=None,
        description="The swarm's nodes, owned by one spec (docs/cluster.md); a stack reads them.",
    )
    nodes: Annotated[
        Any,
        _schema(
            {
                "description": "Moved: nodes belong to x-converge.cluster.nodes.",
                "deprecated": True,
                "not": {},
            }
        ),
    ] = None
    loadbalancer: LoadBalancerSpec | None = None
    with_registry_auth: bool = Field(
        default=False,
        description=(
            "Send the docker client's registry credentials (config.json auths, credsStore, "
            "credHelpers) with every service create and update, so that nodes can pull "
            "private images; as --with-registry-auth, which also turns it on."
        ),
    )
    resolve_image: Literal["always", "changed", "never"] | None = Field(
        default=None,
        description=(
            "Pin each service's tag to the digest its registry gives: always (the default), "
            "changed (only new services and changed images), never; as docker stack deploy's "
            "--resolve-image, which overrides it."
        ),
    )

    @field_validator("nodes", mode="before")
    @classmethod
    def _nodes_moved(cls, value: object) -> object:
        if value is not None:
            raise ValueError(
                "nodes moved to x-converge.cluster.nodes: one cluster spec owns the nodes and "
                "stacks only read them (docs/cluster.md); indent 'nodes:' under 'cluster:'"
            )
        return value


class Spec(Model):
    """A compose file (several merged): services, networks, volumes, plus ``x-converge``."""

    version: Annotated[str | None, BeforeValidator(_scalar_to_text)] = Field(
        default=None, description="Accepted and ignored, as compose does."
    )
    name: StackName | None = Field(default=None, description="The project (stack) name.")
    services: dict[ObjectName, ServiceSpec] = Field(default_factory=dict)
    networks: dict[ObjectName, NetworkSpec] = Field(default_factory=dict)
    volumes: dict[ObjectName, VolumeSpec] = Field(default_factory=dict)
    secrets: dict[ObjectName, FileObjectSpec] = Field(default_factory=dict)
    configs: dict[ObjectName, FileObjectSpec] = Field(default_factory=dict)
    x_converge: ConvergeSpec = Field(default_factory=ConvergeSpec, alias="x-converge")

    @field_validator("networks", "volumes", "secrets", "configs", mode="before")
    @classmethod
    def _empty_entries(cls, value: object) -> object:
        """``productdata:`` with nothing under it declares an object with every setting
        default."""
        if isinstance(value, dict):
            return {name: ({} if entry is None else entry) for name, entry in value.items()}
        return value

    @property
    def stack(self) -> str:
        """The stack's name ("" when neither the command line nor the file gives one)."""
        return self.x_converge.stack or self.name or ""

    @property
    def cluster(self) -> ClusterSpec | None:
        """The cluster this file declares (None: a stack spec, which never writes nodes)."""
        return self.x_converge.cluster

    @property
    def cluster_name(self) -> str:
        """The owner's name this file records in the swarm: the cluster's, else the stack's."""
        cluster = self.x_converge.cluster
        return (cluster.name if cluster is not None else None) or self.stack

    @property
    def nodes(self) -> dict[str, NodeSpec]:
        """The nodes the cluster section declares (none in a stack spec)."""
        cluster = self.x_converge.cluster
        return cluster.nodes if cluster is not None else {}

    @property
    def loadbalancer(self) -> LoadBalancerSpec | None:
        return self.x_converge.loadbalancer

    def service_networks(self, key: str) -> dict[str, NetworkAttachment]:
        """The networks service ``key`` joins: those it names, or the stack's default."""
        networks = self.services[key].networks
        return dict(networks) if networks else {DEFAULT_NETWORK: NetworkAttachment()}

    def stack_networks(self) -> dict[str, NetworkSpec]:
        """The networks the stack uses, as docker stack deploy creates them: every network a
        service joins (``default`` included when one names none) or the load balancer uses;
        a declared network nobody uses is not created."""
        used: set[str] = set()
        for service in self.services.values():  # as service_networks, without a copy each
            if service.networks:
                used.update(service.networks)
            else:
                used.add(DEFAULT_NETWORK)
        balancer = self.loadbalancer
        if balancer is not None:
            for backend in balancer.backends.values():
                if backend.method == "dns" and backend.network is not None:
                    used.add(backend.network)
        result: dict[str, NetworkSpec] = {}
        for name in sorted(used):
            declared = self.networks.get(name)
            if declared is None and name == DEFAULT_NETWORK:
                declared = NetworkSpec()
            if declared is not None:
                result[name] = declared
        return result

    def network_name(self, key: str) -> str:
        """The swarm name of network ``key``: its ``name``, or ``<stack>_<key>``."""
        declared = self.networks.get(key)
        if declared is not None and declared.name:
            return declared.name
        if declared is not None and declared.external:
            return key
        return object_name(self.stack, key)

    def volume_name(self, key: str) -> str:
        """The engine name of volume ``key``: its ``name``, or ``<stack>_<key>``."""
        declared = self.volumes.get(key)
        if declared is not None and declared.name:
            return declared.name
        if declared is not None and declared.external:
            return key
        return object_name(self.stack, key)

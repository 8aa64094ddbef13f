"""The only module that talks to Docker: a thin, typed seam over the SDK's low-level client.

Everything returned is the Engine API's own JSON (plain dicts); turning it into converge's
vocabulary is ``observe``'s job. Every request is counted, so tests and benchmarks can show
how many calls a command makes. Engine errors become ``EngineError`` naming the object.
"""

from __future__ import annotations

import base64
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlparse

import requests

from converge.contexts import DEFAULT_CONTEXT, current_context_name, load_context
from converge.errors import (
    AlreadyExistsError,
    EngineError,
    EngineUnavailableError,
    InUseError,
    NotFoundError,
    OutOfSequenceError,
)
from converge.naming import name_prefix

# docker-py imports paramiko (and with it cryptography, bcrypt, nacl and invoke) whenever it is
# installed, although only ssh:// hosts use it: about a quarter of a whole `converge plan`.
# It is hidden while docker imports (the SDK then leaves its ssh adapter out) and brought in
# by _enable_ssh() when a host is ssh://.
_PARAMIKO_HIDDEN = "paramiko" not in sys.modules
if _PARAMIKO_HIDDEN:
    sys.modules["paramiko"] = None  # type: ignore[assignment]  # import paramiko: ImportError
try:
    import docker
    import docker.api.client
    import docker.auth
    import docker.errors
    import docker.tls
    import docker.transport
    import docker.utils
finally:
    if _PARAMIKO_HIDDEN:
        del sys.modules["paramiko"]

__all__ = ["Endpoint", "Engine", "EngineInfo", "EventWatch", "connect", "resolve_endpoint"]

Json = dict[str, Any]

# Each call, with --debug (or CONVERGE_LOG=debug): the CLI puts a handler on "converge".
_log = logging.getLogger(__name__)

# The Engine API version converge speaks; 1.41 (Docker 20.10) added service status counts.
API_VERSION = "1.41"


class EngineInfo:
    """The parts of ``/info`` converge relies on."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        swarm = info.get("Swarm") or {}
        self.node_id: str = swarm.get("NodeID", "")
        self.hostname: str = info.get("Name", "")
        self.local_state: str = swarm.get("LocalNodeState", "inactive")
        self.is_manager: bool = bool(swarm.get("ControlAvailable"))
        self.cluster_id: str = (swarm.get("Cluster") or {}).get("ID", "")
        self.server_version: str = info.get("ServerVersion", "")


def _explain(error: docker.errors.APIError) -> str:
    explanation = error.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or error).strip()


def _error_type(error: docker.errors.APIError, explanation: str) -> type[EngineError]:
    """The typed error for an engine refusal: the only place that reads the engine's words.

    Swarm errors travel as gRPC texts inside HTTP errors whose status does not always say what
    happened (a name conflict on a config is a 409 on some versions, a 500 on others), so the
    status decides first and the engine's wording second.
    """
    lowered = explanation.lower()
    if "out of sequence" in lowered:
        return OutOfSequenceError
    if "already exists" in lowered or "alreadyexists" in lowered:
        return AlreadyExistsError
    if "in use" in lowered or "active endpoints" in lowered:
        return InUseError
    if error.status_code == 404 or "not found" in lowered:
        return NotFoundError
    if error.status_code == 409:
        return AlreadyExistsError
    return EngineError


def _auth(registry_auth: str | None) -> dict[str, str]:
    return {"X-Registry-Auth": registry_auth} if registry_auth else {}


def _unreachable_reason(error: Exception) -> str:
    """The innermost cause of a connection failure, e.g. 'Connection refused'."""
    reason: BaseException = error
    while reason.__cause__ is not None or (reason.args and isinstance(reason.args[0], Exception)):
        reason = reason.__cause__ or reason.args[0]
    text = str(reason).strip()
    # urllib3 prefixes its own object repr: keep the part a person reads.
    text = text.rsplit(": ", 1)[-1] if ">: " in text else text
    return text or error.__class__.__name__


class EventWatch:
    """Events of one stack's services and of every node, read by a daemon thread;
    ``wait(timeout)`` returns as soon as one arrived since the last ``wait`` (True), or after
    ``timeout`` seconds (False)."""

    def __init__(self, stream: Any, service_prefix: str) -> None:
        self._stream = stream
        self._prefix = service_prefix
        self._arrived = threading.Event()
        self.received = 0
        """Relevant events seen so far."""
        self._thread = threading.Thread(target=self._read, name="converge-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                name = ((event.get("Actor") or {}).get("Attributes") or {}).get("name", "")
                if event.get("Type") == "node" or name.startswith(self._prefix):
                    self.received += 1
                    self._arrived.set()
        except Exception:  # closed or broken: the waits fall back to polling
            _log.debug("the event stream ended", exc_info=True)

    def wait(self, timeout: float) -> bool:
        arrived = self._arrived.wait(timeout)
        self._arrived.clear()
        return arrived

    def close(self) -> None:
        with suppress(Exception):  # the connection may be gone already
            self._stream.close()
        self._thread.join(timeout=2)


class Engine:
    """A connection to one Docker engine (a swarm manager for most commands).

    Args:
        client: a low-level SDK client; use ``connect()`` to build one the way the CLI does.
        address: how to name the engine in messages.
    """

    def __init__(self, client: docker.APIClient, address: str) -> None:
        # The SDK's stubs lag its code (private helpers, dict specs): typed loosely here only.
        self._client: Any = client
        self.address = address
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()  # the observer reads /info in a thread of its own
        self._auth_configs: Any = None
        client.hooks["response"].append(self._count)

    def _count(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        method = response.request.method or "GET"
        url = urlparse(response.request.url or "")
        path = url.path
        # Drop the version prefix and object ids so calls group by endpoint.
        version, *parts = [part for part in path.split("/") if part] or [""]
        if parts[:1] == ["distribution"]:
            # The image reference (it may contain slashes) is in the path, and its tag may
            # come from a secret variable: never logged.
            endpoint = "distribution/{image}/json"
            path = f"/{version}/{endpoint}"
        else:
            endpoint = "/".join(parts[:1] + (["{id}", *parts[2:]] if len(parts) > 1 else []))
        with self._calls_lock:
            self.calls[f"{method} /{endpoint}"] += 1
        if _log.isEnabledFor(logging.DEBUG):
            # Never a body, and no query string: only where the call went and how it ended.
            elapsed = response.elapsed.total_seconds() * 1000
            query = "?..." if url.query else ""
            _log.debug(
                "%s %s%s -> %s in %.0f ms", method, path, query, response.status_code, elapsed
            )

    @property
    def call_count(self) -> int:
        """How many HTTP requests this engine has answered so far."""
        return sum(self.calls.values())

    @property
    def write_count(self) -> int:
        """How many of those requests were writes (anything but GET and HEAD)."""
        return sum(count for call, count in self.calls.items() if not call.startswith("GET"))

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except docker.errors.APIError as error:
            explanation = _explain(error)
            raise _error_type(error, explanation)(f"{action}: {explanation}") from error
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            raise EngineUnavailableError(
                f"cannot reach the Docker engine at {self.address}: {_unreachable_reason(error)}"
            ) from error

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def watch_events(self, stack: str) -> Iterator[EventWatch | None]:
        """Follow the engine's ``/events`` for the stack's services and every node, in a
        background thread, for as long as the block runs. Yields None when the engine (or a
        fake in tests) cannot stream events: callers then only poll.

        Swarm managers report service and node changes (an update's state moving to
        ``completed``, ``paused`` or ``rollback_started``; a node going down); task state
        changes are not events on the manager, so polling stays the source of truth.
        """
        filters = {"type": ["service", "node"]}
        try:
            stream = self._client.events(decode=True, filters=filters)
        except (AttributeError, docker.errors.APIError, requests.exceptions.RequestException):
            yield None
            return
        watch = EventWatch(stream, name_prefix(stack))
        try:
            yield watch
        finally:
            watch.close()

    # -- reads ---------------------------------------------------------------------------------

    def info(self) -> EngineInfo:
        with self._translate("failed to read the engine's info"):
            return EngineInfo(self._client.info())

    def require_manager(self) -> EngineInfo:
        """The engine's info, after checking it is a reachable swarm manager.

        Raises:
            EngineError: unreachable, not in a swarm, or a worker.
        """
        info = self.info()
        if info.local_state != "active":
            raise EngineError(
                f"the Docker engine at {self.address} is not part of a swarm "
                f"(state: {info.local_state}); run 'docker swarm init' or point DOCKER_HOST "
                "at a manager"
            )
        if not info.is_manager:
            raise EngineError(
                f"the Docker engine at {self.address} ({info.hostname}) is a swarm worker; "
                "converge needs a manager"
            )
        return info

    def join_tokens(self) -> dict[str, str]:
        """The swarm's join tokens: ``{"Worker": ..., "Manager": ...}`` (a manager only)."""
        with self._translate("failed to read the swarm's join tokens"):
            return dict(self._client.inspect_swarm().get("JoinTokens") or {})

    # -- membership (the cluster spec) --------------------------------------------------------

    def init_swarm(
        self,
        advertise_addr: str | None,
        listen_addr: str | None,
        data_path_addr: str | None,
        default_addr_pool: list[str] | None,
        subnet_size: int | None,
    ) -> None:
        """Make this engine the first manager of a new swarm."""
        with self._translate(f"failed to init the swarm on {self.address}"):
            self._client.init_swarm(
                advertise_addr=advertise_addr,
                listen_addr=listen_addr or "0.0.0.0:2377",
                data_path_addr=data_path_addr,
                default_addr_pool=default_addr_pool or None,
                subnet_size=subnet_size,
            )

    def join_swarm(
        self,
        remote_addrs: list[str],
        token: str,
        advertise_addr: str | None,
        listen_addr: str | None,
        data_path_addr: str | None,
    ) -> None:
        """Join this engine to the swarm its managers at ``remote_addrs`` run."""
        with self._translate(f"failed to join {self.address} to the swarm"):
            self._client.join_swarm(
                remote_addrs=remote_addrs,
                join_token=token,
                listen_addr=listen_addr or "0.0.0.0:2377",
                advertise_addr=advertise_addr,
                data_path_addr=data_path_addr,
            )

    def leave_swarm(self) -> None:
        """Make this engine leave its swarm (forced: a manager's own engine too)."""
        with self._translate(f"failed to leave the swarm on {self.address}"):
            self._client.leave_swarm(force=True)

    def remove_node(self, hostname: str, node_id: str, force: bool = False) -> None:
        with self._translate(f"failed to remove node {hostname}"):
            self._client.remove_node(node_id, force=force)

    def nodes(self) -> list[Json]:
        with self._translate("failed to list nodes"):
            return cast(list[Json], self._client.nodes())

    def networks(self) -> list[Json]:
        with self._translate("failed to list networks"):
            return cast(list[Json], self._client.networks())

    def services(self) -> list[Json]:
        with self._translate("failed to list services"):
            return cast(list[Json], self._client.services(status=True))

    def tasks(self, filters: Mapping[str, Any] | None = None) -> list[Json]:
        with self._translate("failed to list tasks"):
            return cast(list[Json], self._client.tasks(filters=dict(filters or {})))

    def task_logs(self, task_id: str, tail: int) -> str:
        """The last ``tail`` lines a swarm task logged (stdout and stderr).

        Raises:
            EngineError: among others when the service's log driver does not allow reading
                (the engine's words say so).
        """
        with self._translate(f"failed to read the logs of task {task_id}"):
            url = self._client._url("/tasks/{0}/logs", task_id)
            params = {"stdout": 1, "stderr": 1, "tail": tail}
            # APIClient is a requests.Session: its public get, then the pinned _result.
            raw = self._client._result(self._client.get(url, params=params), binary=True)
        logged, failure = _demultiplex(cast(bytes, raw))
        if failure:
            # The manager could not fetch them (the task's node is not available, ...).
            raise EngineError(f"failed to read the logs of task {task_id}: {failure.strip()}")
        return logged.decode(errors="replace")

    def configs(self, filters: Mapping[str, Any] | None = None) -> list[Json]:
        with self._translate("failed to list configs"):
            return cast(list[Json], self._client.configs(filters=dict(filters or {})))

    def containers(self, filters: Mapping[str, Any] | None = None) -> list[Json]:
        with self._translate("failed to list containers"):
            return cast(list[Json], self._client.containers(all=True, filters=dict(filters or {})))

    # -- writes --------------------------------------------------------------------------------

    def registry_auth(self, image: str) -> str | None:
        """The ``X-Registry-Auth`` header the docker CLI sends for ``image`` with
        ``--with-registry-auth``: the credentials of its registry from the docker client
        config (``$DOCKER_CONFIG/config.json``: ``auths``, ``credsStore``, ``credHelpers``);
        None when the config has none for it.

        Raises:
            EngineError: the image name is malformed, or a credential helper failed.
        """
        try:
            registry, _ = docker.auth.resolve_repository_name(image)
            if self._auth_configs is None:
                self._auth_configs = docker.auth.load_config(
                    credstore_env=self._client.credstore_env
                )
            found = docker.auth.resolve_authconfig(
                self._auth_configs, registry, credstore_env=self._client.credstore_env
            )
        except docker.errors.DockerException as error:
            raise EngineError(
                f"cannot read the registry credentials for {image}: {error}"
            ) from None
        if not found:
            return None
        return bytes(docker.auth.encode_header(found)).decode("ascii")

    def image_digest(self, image: str, registry_auth: str | None = None) -> str:
        """The digest ``image``'s registry gives for its tag, asked through the engine
        (``GET /distribution/{name}/json``, as ``docker stack deploy`` resolves images).

        Raises:
            EngineError: the registry did not answer, refused, or does not know the tag.
        """
        with self._translate(f"failed to resolve image {image}"):
            url = self._client._url("/distribution/{0}/json", image)
            response = self._client._get(url, headers=_auth(registry_auth))
            result = self._client._result(response, json=True)
            digest = (result.get("Descriptor") or {}).get("digest")
        if not digest:
            raise EngineError(f"failed to resolve image {image}: the engine gave no digest")
        return str(digest)

    def create_service(self, name: str, spec: Json, registry_auth: str | None = None) -> str:
        """Create a service from a complete Engine API ServiceSpec; returns its id.

        Args:
            registry_auth: an ``X-Registry-Auth`` header (``registry_auth()``): the nodes
                pull the image with these credentials.
        """
        with self._translate(f"failed to create service {name}"):
            url = self._client._url("/services/create")
            response = self._client._post_json(url, data=spec, headers=_auth(registry_auth))
            result = self._client._result(response, json=True)
            return cast(str, result["ID"])

    def update_service(
        self,
        name: str,
        service_id: str,
        version: int,
        spec: Json,
        registry_auth: str | None = None,
    ) -> list[str]:
        """Replace a service's spec, as of ``version``; returns the engine's warnings.

        Without ``registry_auth`` the engine keeps the credentials the service had.

        Raises:
            OutOfSequenceError: the service changed since ``version`` was read.
        """
        with self._translate(f"failed to update service {name}"):
            url = self._client._url("/services/{0}/update", service_id)
            response = self._client._post_json(
                url, data=spec, params={"version": version}, headers=_auth(registry_auth)
            )
            result = self._client._result(response, json=True)
            return list(result.get("Warnings") or [])

    def remove_service(self, name: str, service_id: str) -> None:
        with self._translate(f"failed to remove service {name}"):
            self._client.remove_service(service_id)

    def update_node(self, hostname: str, node_id: str, version: int, spec: Json) -> None:
        """Replace a node's whole spec (role, availability, labels) as of ``version``."""
        with self._translate(f"failed to update node {hostname}"):
            self._client.update_node(node_id, version, spec)

    def create_network(self, name: str, spec: Json) -> str:
        """Create a network from an Engine API NetworkCreate body; returns its id."""
        with self._translate(f"failed to create network {name}"):
            url = self._client._url("/networks/create")
            body = {"Name": name, "CheckDuplicate": True, **spec}
            result = self._client._result(self._client._post_json(url, data=body), json=True)
            return cast(str, result["Id"])

    def remove_network(self, name: str, network_id: str) -> None:
        with self._translate(f"failed to remove network {name}"):
            self._client.remove_network(network_id)

    def secrets(self, filters: Mapping[str, Any] | None = None) -> list[Json]:
        with self._translate("failed to list secrets"):
            return cast(list[Json], self._client.secrets(filters=dict(filters or {})))

    def create_secret(
        self, name: str, data: bytes, labels: Mapping[str, str], templating: str | None = None
    ) -> str:
        """Create a secret (as ``docker stack deploy``: data, labels, template driver)."""
        return self._create_file_object("secret", name, data, labels, templating)

    def remove_secret(self, name: str, secret_id: str) -> None:
        with self._translate(f"failed to remove secret {name}"):
            self._client.remove_secret(secret_id)

    def create_config(
        self, name: str, data: bytes, labels: Mapping[str, str], templating: str | None = None
    ) -> str:
        return self._create_file_object("config", name, data, labels, templating)

    def _create_file_object(
        self, kind: str, name: str, data: bytes, labels: Mapping[str, str], templating: str | None
    ) -> str:
        body: Json = {
            "Name": name,
            "Data": base64.b64encode(data).decode("ascii"),
            "Labels": dict(labels),
        }
        if templating is not None:
            body["Templating"] = {"Name": templating}
        with self._translate(f"failed to create {kind} {name}"):
            url = self._client._url(f"/{kind}s/create")
            result = self._client._result(self._client._post_json(url, data=body), json=True)
            return cast(str, result["ID"])

    def remove_config(self, name: str, config_id: str) -> None:
        with self._translate(f"failed to remove config {name}"):
            self._client.remove_config(config_id)

    # -- containers (the external load balancer) ------------------------------------------------

    def inspect_container(self, name: str) -> Json | None:
        """The container's full JSON, or None when there is no such container."""
        with self._translate(f"failed to inspect container {name}"):
            try:
                return cast(Json, self._client.inspect_container(name))
            except docker.errors.NotFound:
                return None

    def create_container(self, name: str, body: Json) -> str:
        """Create (not start) a container from an Engine API ContainerCreate body; its id."""
        with self._translate(f"failed to create container {name}"):
            url = self._client._url("/containers/create")
            response = self._client._post_json(url, data=body, params={"name": name})
            return cast(str, self._client._result(response, json=True)["Id"])

    def start_container(self, name: str, container_id: str) -> None:
        with self._translate(f"failed to start container {name}"):
            self._client.start(container_id)

    def remove_container(self, name: str, container_id: str) -> None:
        """Remove a container, stopping it first if it runs."""
        with self._translate(f"failed to remove container {name}"):
            self._client.remove_container(container_id, force=True)

    def kill_container(self, name: str, container_id: str, signal: str) -> None:
        """Send ``signal`` (e.g. ``SIGUSR2``) to the container's main process."""
        with self._translate(f"failed to signal container {name}"):
            self._client.kill(container_id, signal=signal)

    def wait_container(self, name: str, container_id: str, timeout: float) -> int:
        """Wait until the container exits; its exit code."""
        with self._translate(f"failed to wait for container {name}"):
            result = self._client.wait(container_id, timeout=timeout)
            return int(result.get("StatusCode", -1))

    def container_logs(self, name: str, container_id: str) -> str:
        with self._translate(f"failed to read the logs of container {name}"):
            return cast(bytes, self._client.logs(container_id)).decode(errors="replace")

    def put_archive(self, name: str, container_id: str, path: str, tar: bytes) -> None:
        """Extract a tar archive into the directory ``path`` of the container."""
        with self._translate(f"failed to copy into container {name}"):
            self._client.put_archive(container_id, path, tar)

    def get_archive(self, name: str, container_id: str, path: str) -> bytes | None:
        """A tar archive of ``path`` in the container, or None when the path does not exist."""
        with self._translate(f"failed to copy from container {name}"):
            try:
                stream, _ = self._client.get_archive(container_id, path)
            except docker.errors.NotFound:
                return None
            return b"".join(stream)

    def connect_network(self, name: str, container_id: str, network: str) -> None:
        """Attach a container to a network (API 1.41 takes only one at creation)."""
        with self._translate(f"failed to connect container {name} to network {network}"):
            self._client.connect_container_to_network(container_id, network)

    def exec_run(self, name: str, container_id: str, command: list[str]) -> tuple[int, str]:
        """Run ``command`` in the running container; its exit code and combined output."""
        with self._translate(f"failed to run {command[0]} in container {name}"):
            created = self._client.exec_create(container_id, command, stdout=True, stderr=True)
            output = cast(bytes, self._client.exec_start(created["Id"]))
            code = self._client.exec_inspect(created["Id"]).get("ExitCode")
            return (int(code) if code is not None else -1, output.decode(errors="replace"))


_SYSTEM_ERROR_STREAM = 3
"""The log stream's frames of this kind carry the engine's own error, not the task's output
(docker's stdcopy ``Systemerr``: e.g. "node ... is not available")."""


def _demultiplex(raw: bytes) -> tuple[bytes, str]:
    """The payload of the engine's log stream, and the engine's errors in it: frames of an
    8-byte header (stream, 0, 0, 0, big-endian length) then the bytes, unless the service runs
    with a TTY (raw bytes, no errors)."""
    if not raw or raw[0] not in (0, 1, 2, _SYSTEM_ERROR_STREAM) or raw[1:4] != b"\0\0\0":
        return raw, ""
    out, errors, offset = bytearray(), bytearray(), 0
    while offset + 8 <= len(raw):
        length = int.from_bytes(raw[offset + 4 : offset + 8], "big")
        frame = raw[offset + 8 : offset + 8 + length]
        if raw[offset] == _SYSTEM_ERROR_STREAM:
            errors += frame
        else:
            out += frame
        offset += 8 + length
    return bytes(out), errors.decode(errors="replace")


@dataclass(frozen=True)
class Endpoint:
    """Where an engine is, and where that was said: the docker CLI's order of precedence.

    ``--host``, then ``--context``, then ``DOCKER_HOST``, then ``DOCKER_CONTEXT``, then the
    current context of the docker CLI's config (``docker context use``), then the local socket.
    """

    address: str
    source: str
    """For messages: ``--host``, ``DOCKER_HOST``, ``context prod (--context)``, ``default``."""
    context: str | None = None

    def describe(self) -> str:
        return f"{self.address} (from {self.source})"


_DEFAULT_ADDRESS = "unix:///var/run/docker.sock"


def resolve_endpoint(
    host: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """Which engine the docker CLI would talk to with these flags and this environment.

    Args:
        environ: where ``DOCKER_HOST`` and ``DOCKER_CONTEXT`` are read (default: the process
            environment); the docker CLI's contexts are found through the process environment
            (``converge.contexts``).

    Raises:
        EngineError: both a host and a context were given, or the context does not exist.
    """
    environ = os.environ if environ is None else environ
    if host and context:
        raise EngineError("--host and --context conflict: give one of them")
    if host:
        return Endpoint(host, "--host")
    if context is None and environ.get("DOCKER_HOST"):
        return Endpoint(environ["DOCKER_HOST"], "DOCKER_HOST")
    source = "--context"
    if context is None and environ.get("DOCKER_CONTEXT"):
        context, source = environ["DOCKER_CONTEXT"], "DOCKER_CONTEXT"
    if context is None:
        context, source = current_context_name(), "docker context use"
    if context == DEFAULT_CONTEXT:
        return Endpoint(_DEFAULT_ADDRESS, "default")
    found = load_context(context)
    if found is None:
        raise EngineError(f"docker context {context!r} ({source}) does not exist")
    return Endpoint(found.host, f"context {context} ({source})", context)


def _enable_ssh() -> None:
    """Give docker-py the ssh adapter it left out while paramiko was hidden (see the imports)."""
    if getattr(docker.api.client, "SSHHTTPAdapter", None) is not None:
        return
    from docker.transport.sshconn import SSHHTTPAdapter

    docker.transport.SSHHTTPAdapter = SSHHTTPAdapter  # type: ignore[misc]
    docker.api.client.SSHHTTPAdapter = SSHHTTPAdapter  # type: ignore[attr-defined]


def _ssh_host_as_written(client: docker.APIClient, address: str) -> None:
    # docker-py adds ":22" to an ssh:// URL without a port, and its ssh client adapter then
    # passes "-p 22", which overrides the Port of the operator's ~/.ssh/config.
    parsed = urlparse(address)
    adapter = getattr(client, "_custom_adapter", None)
    if parsed.port is None and adapter is not None and hasattr(adapter, "ssh_host"):
        adapter.ssh_host = parsed.netloc


def connect(
    host: str | None = None, timeout: float = 30.0, *, context: str | None = None
) -> Engine:
    """Connect as the docker CLI would (see ``Endpoint`` for the order of precedence).

    The TLS variables (``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``) apply to ``--host`` and
    ``DOCKER_HOST`` as with the docker CLI; a context brings its own TLS material. ``ssh://``
    hosts go through the system's ssh client, so ``~/.ssh/config`` (Port, User, IdentityFile,
    ProxyJump) applies.

    Raises:
        EngineError: the address is malformed, or the context unknown.
    """
    endpoint = resolve_endpoint(host, context)
    if endpoint.address.startswith("ssh://"):
        _enable_ssh()
    try:
        if endpoint.context is None:
            environment = {**os.environ, "DOCKER_HOST": endpoint.address}
            settings = docker.utils.kwargs_from_env(environment=environment)
        else:
            found = load_context(endpoint.context)
            settings = {"base_url": endpoint.address}
            if found is not None and found.uses_tls:
                settings["tls"] = docker.tls.TLSConfig(
                    client_cert=(str(found.client_cert), str(found.client_key))
                    if found.client_cert and found.client_key
                    else None,
                    ca_cert=str(found.ca_cert) if found.ca_cert else None,
                    verify=not found.skip_tls_verify,
                )
        client = docker.APIClient(
            version=API_VERSION, timeout=int(timeout), use_ssh_client=True, **settings
        )
    except docker.errors.DockerException as error:
        raise EngineError(
            f"cannot connect to the Docker engine at {endpoint.describe()}: {error}"
        ) from None
    if endpoint.address.startswith("ssh://"):
        _ssh_host_as_written(client, endpoint.address)
    if settings.get("tls") or endpoint.address.startswith("unix://"):
        # With TLS, requests would let REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace
        # DOCKER_CERT_PATH's CA. Over a socket no proxy or .netrc applies, and requests would
        # still read the environment for them at every call (0.2 ms each).
        client.trust_env = False
    return Engine(client, endpoint.describe())

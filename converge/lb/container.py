"""The load balancer's I/O: observe its container, validate and install its config, reload.

Everything goes through the Docker engine of the load balancer's node (``loadbalancer.engine``,
or the engine converge talks to): the config is copied into the container with the archive
API, never through a path on the machine running converge.

Applying, in order:

- the container is missing, or its image, ports, networks or node differ, or it stopped:
  the new config is validated with ``haproxy -c`` in a throwaway container of the target
  image; only then is the old container removed and the new one created, given the config
  and started;
- only the config differs: the new config is copied next to the live one and validated with
  ``haproxy -c`` inside the running container; only then does it replace the live one, and
  the master process gets SIGUSR2 (a graceful reload: old workers finish their connections);
- an invalid config fails the apply and leaves the running HAProxy and its config untouched.

The executor observes again when the action runs (after the services converged) and the config
is rendered from that observation, so the servers of ``tasks`` backends follow the placement
apply produced.
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any

from converge.actions import Action
from converge.engine import Engine, connect
from converge.errors import EngineError, LoadBalancerError
from converge.lb.config import (
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_PATH,
    RELOAD_SIGNAL,
    REPLACE_FIELDS,
    container_body,
    container_name,
    desired_view,
    dns_networks,
    observed_view,
)
from converge.naming import LB_CHECK_LABEL, LB_LABEL, STACK_LABEL, ownership_labels
from converge.polling import Clock, PollTimeoutError, poll_until
from converge.spec import Spec
from converge.state import ObservedLoadBalancer, ObservedLoadBalancerCheck, ObservedState

__all__ = ["execute_loadbalancer", "loadbalancer_engine", "observe_loadbalancer"]

_CANDIDATE = f"{CONFIG_FILE}.converge-new"
_ALERT_PREFIX = re.compile(r"^\[(ALERT|WARNING|NOTICE)\]\s*\(\d+\)\s*:\s*(config\s*:\s*)?")
_VALIDATE_TIMEOUT = 60.0
_START_TIMEOUT = 10.0


@contextmanager
def loadbalancer_engine(spec: Spec, engine: Engine) -> Iterator[Engine]:
    """The engine of the load balancer's node: ``loadbalancer.engine``, else ``engine``."""
    address = spec.loadbalancer.engine if spec.loadbalancer is not None else None
    if address is None:
        yield engine
        return
    with connect(address) as own:
        yield own


def _tar(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _untar(data: bytes) -> bytes | None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        for member in archive.getmembers():
            if member.isfile():
                handle = archive.extractfile(member)
                return handle.read() if handle is not None else None
    return None


def _read_config(engine: Engine, name: str, container_id: str) -> str | None:
    archive = engine.get_archive(name, container_id, CONFIG_PATH)
    content = _untar(archive) if archive is not None else None
    return content.decode(errors="replace") if content is not None else None


def _name(container: Mapping[str, Any]) -> str:
    return str((container.get("Names") or ["/?"])[0]).lstrip("/")


def _observed(engine: Engine, container: Mapping[str, Any], node: str) -> ObservedLoadBalancer:
    name = _name(container)
    inspected = engine.inspect_container(container["Id"])
    if inspected is None:  # removed between the list and the inspect
        return ObservedLoadBalancer(container["Id"], name, True, {}, None)
    config = _read_config(engine, name, inspected["Id"])
    state = inspected.get("State") or {}
    return ObservedLoadBalancer(
        id=inspected["Id"],
        name=name,
        owned=True,
        view=observed_view(inspected, node, config),
        config=config,
        started_at=state.get("StartedAt", ""),
        pid=int(state.get("Pid") or 0),
    )


def observe_loadbalancer(engine: Engine, spec: Spec, observed: ObservedState) -> ObservedState:
    """``observed`` plus the stack's load-balancer containers, read on the balancer's node,
    and the ``haproxy -c`` containers an interrupted apply left there.

    A fixed number of calls: the engine's info (when it is another engine), one container
    list, then an inspect and a config read per owned container (one, normally), and one
    inspect of the spec's container name to see whether something unowned holds it.

    Raises:
        EngineError: the load balancer's engine is unreachable or refused a call.
    """
    with loadbalancer_engine(spec, engine) as target:
        hostname = target.info().hostname if target is not engine else observed.manager
        # One list for both kinds: the engine ANDs label filters, it cannot OR them.
        listed = target.containers({"label": [f"{STACK_LABEL}={spec.stack}"]})
        found = [
            _observed(target, item, hostname)
            for item in listed
            if LB_LABEL in (item.get("Labels") or {})
        ]
        checks = tuple(
            ObservedLoadBalancerCheck(item["Id"], _name(item))
            for item in listed
            if LB_CHECK_LABEL in (item.get("Labels") or {})
        )
        if spec.loadbalancer is not None:
            name = container_name(spec.stack, spec.loadbalancer)
            if all(item.name != name for item in found):
                other = target.inspect_container(name)
                if other is not None:
                    found.append(ObservedLoadBalancer(other["Id"], name, False, {}, None))
    return replace(
        observed,
        loadbalancers=tuple(found),
        loadbalancer_checks=checks,
        loadbalancer_engine=hostname,
    )


def execute_loadbalancer(
    spec: Spec, action: Action, engine: Engine, observed: ObservedState
) -> str:
    """Carry out a load-balancer action; returns the outcome (created, updated, unchanged...).

    Args:
        observed: the stack as it is now (``observe``); the config is rendered from its task
            placement. A removal does not read it.

    Raises:
        LoadBalancerError: the rendered config is invalid (nothing was changed) or the
            container did not start.
        EngineError: the engine refused a call.
    """
    if action.kind == "remove":
        with loadbalancer_engine(spec, engine) as target:
            if action.observed_id is not None:
                target.remove_container(action.name, action.observed_id)
        return "removed"
    if spec.loadbalancer is None:
        raise LoadBalancerError(f"{action.address}: the spec declares no load balancer")
    name = container_name(spec.stack, spec.loadbalancer)
    desired = desired_view(spec, observed)
    config = str(desired["config"])
    current = next((lb for lb in observed.loadbalancers if lb.owned and lb.name == name), None)
    with loadbalancer_engine(spec, engine) as target:
        if current is None or any(
            current.view.get(field) != desired[field] for field in REPLACE_FIELDS
        ):
            kept = "nothing was changed" if current is not None else "nothing was created"
            _validate_in_image(target, spec, name, config, kept)
            if current is not None:
                target.remove_container(name, current.id)
            _create(target, spec, name, config)
            return "created" if current is None else "replaced"
        if current.config == config:
            return "unchanged"
        _reload(target, name, current.id, config)
        return "updated"


def _invalid(name: str, output: str, kept: str) -> LoadBalancerError:
    lines = [_ALERT_PREFIX.sub("", line).strip() for line in output.splitlines() if line.strip()]
    # The lines naming a place in the file say what is wrong; the rest is the summary.
    precise = [line for line in lines if line.startswith("parsing [")]
    detail = " | ".join((precise or lines)[-5:]) or "(no output)"
    return LoadBalancerError(
        f"invalid HAProxy configuration for loadbalancer {name}, {kept}: {detail}"
    )


def _validate_in_image(engine: Engine, spec: Spec, name: str, config: str, kept: str) -> None:
    """``haproxy -c`` on the config in a throwaway container of the target image."""
    assert spec.loadbalancer is not None
    scratch = f"{name}-check-{int(time.time() * 1000) % 1_000_000}"
    body = {
        "Image": spec.loadbalancer.image,
        "Cmd": ["haproxy", "-c", "-f", CONFIG_PATH],
        "Labels": {**ownership_labels(spec.stack), LB_CHECK_LABEL: name},
        "HostConfig": {"NetworkMode": "none"},
    }
    container_id = engine.create_container(scratch, body)
    try:
        engine.put_archive(scratch, container_id, CONFIG_DIR, _tar(CONFIG_FILE, config.encode()))
        engine.start_container(scratch, container_id)
        code = engine.wait_container(scratch, container_id, _VALIDATE_TIMEOUT)
        if code != 0:
            raise _invalid(name, engine.container_logs(scratch, container_id), kept)
    finally:
        engine.remove_container(scratch, container_id)


def _create(engine: Engine, spec: Spec, name: str, config: str) -> None:
    body = container_body(spec)
    container_id = engine.create_container(name, body)
    for network in dns_networks(spec)[1:]:
        engine.connect_network(name, container_id, network)
    engine.put_archive(name, container_id, CONFIG_DIR, _tar(CONFIG_FILE, config.encode()))
    engine.start_container(name, container_id)
    _check_running(engine, name, container_id, "did not start")


def _reload(engine: Engine, name: str, container_id: str, config: str) -> None:
    """Validate next to the live config, then swap it in and reload gracefully."""
    engine.put_archive(name, container_id, CONFIG_DIR, _tar(_CANDIDATE, config.encode()))
    candidate = f"{CONFIG_DIR}/{_CANDIDATE}"
    code, output = engine.exec_run(name, container_id, ["haproxy", "-c", "-f", candidate])
    if code != 0:
        _remove_candidate(engine, name, container_id, candidate)
        raise _invalid(name, output, "the running one is kept")
    engine.put_archive(name, container_id, CONFIG_DIR, _tar(CONFIG_FILE, config.encode()))
    _remove_candidate(engine, name, container_id, candidate)
    engine.kill_container(name, container_id, RELOAD_SIGNAL)
    _check_running(engine, name, container_id, "stopped after the reload")


def _remove_candidate(engine: Engine, name: str, container_id: str, path: str) -> None:
    # Best effort: an image without rm only keeps a stale candidate file around.
    with suppress(EngineError):
        engine.exec_run(name, container_id, ["rm", "-f", path])


def _check_running(
    engine: Engine, name: str, container_id: str, what: str, clock: Clock | None = None
) -> None:
    """Wait while the container restarts; raise unless it ends up running."""
    state: dict[str, Any] = {}

    def running() -> bool:
        inspected = engine.inspect_container(container_id) or {}
        state.clear()
        state.update(inspected.get("State") or {})
        if state.get("Running") and not state.get("Restarting"):
            return True
        if not state.get("Restarting"):
            raise _not_running(engine, name, container_id, what, state)
        return False

    try:
        poll_until(running, timeout=_START_TIMEOUT, clock=clock)
    except PollTimeoutError:
        raise _not_running(engine, name, container_id, what, state) from None


def _not_running(
    engine: Engine, name: str, container_id: str, what: str, state: Mapping[str, Any]
) -> LoadBalancerError:
    logs = engine.container_logs(name, container_id).strip().splitlines()[-5:]
    return LoadBalancerError(
        f"loadbalancer {name} {what}: {state.get('Status', 'gone')}"
        + (f"; last log lines: {' | '.join(logs)}" if logs else "")
    )

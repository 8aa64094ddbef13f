"""The integration-test harness: one real multi-node lab swarm shared by the whole session.

Fixtures:
    lab            the running :class:`converge.lab.Lab` (session): reused if it already runs
                   (and then left running), otherwise started and removed at the end unless
                   ``CONVERGE_KEEP_LAB=1`` or another test session still uses it.
    docker_client  a docker SDK client of the manager (session).
    node_client    ``node_client("worker1")``: a client of one node's own engine.
    stack          a fresh stack name per test (``t`` + 8 hex digits); after the test every
                   service, container, network, volume, config and secret labelled
                   ``com.docker.stack.namespace=<stack>`` is removed from every node, and node
                   specs (labels, availability, role) changed during the test are restored.
    faults         the lab, for tests that stop nodes or cut links: afterwards every node is
                   running, linked and Ready again.
    engine         a converge Engine on the manager (counts its API calls).
    converge_cli   ``converge_cli("plan", "spec.yml")``: runs ``python -m converge`` against the
                   lab's manager and returns the completed process.

Before the first lab test of each module every node must run a task the manager reaches over
an overlay network and hold no copy of a network the manager no longer has; a node that fails
has its daemon restarted, and the run's summary says so (``labhealth.py``, ``stacks.py``). A
failed test's report ends with the lab's state (``labreport.py``).

Every integration test module sets ``pytestmark = pytest.mark.integration``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import docker
import docker.errors
import pytest
from labhealth import heal
from labreport import lab_report
from stacks import LAB_REPAIRS, cluster_owner_configs, remove_stack, restore_node_specs

from converge.engine import Engine, connect
from converge.lab import Lab

_PROBED_MODULES: set[str] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the lab swarm needs root")
    lab = Lab()
    was_set_up = lab.exists()
    lab.up()  # idempotent: completes or repairs a lab that is already there
    # Sessions register while they use the lab, so one never removes it under another.
    sessions = lab.config.directory / "sessions"
    sessions.mkdir(exist_ok=True)
    mine = sessions / str(os.getpid())
    mine.touch()
    yield lab
    mine.unlink(missing_ok=True)
    others = [p for p in sessions.iterdir() if p.name.isdigit() and _alive(int(p.name))]
    if not was_set_up and not others and os.environ.get("CONVERGE_KEEP_LAB") != "1":
        lab.down()


@pytest.fixture(scope="session")
def docker_client(lab: Lab) -> Iterator[docker.DockerClient]:
    client = lab.client()
    yield client
    client.close()


@pytest.fixture
def node_client(lab: Lab) -> Iterator[Callable[[str], docker.DockerClient]]:
    clients: dict[str, docker.DockerClient] = {}

    def get(name: str) -> docker.DockerClient:
        if name not in clients:
            clients[name] = lab.client(name)
        return clients[name]

    yield get
    for client in clients.values():
        client.close()


@pytest.fixture
def stack(lab: Lab, docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}"
    node_specs = {node.id: node.attrs["Spec"] for node in docker_client.nodes.list()}
    owners = {config.id for config in cluster_owner_configs(docker_client)}
    yield name
    remove_stack(lab, docker_client, name)
    restore_node_specs(docker_client, node_specs)
    # A cluster spec of the test recorded itself as the nodes' owner: the next test's may not
    # be refused for it.
    for config in cluster_owner_configs(docker_client):
        if config.id not in owners:
            config.remove()


@pytest.fixture
def faults(
    lab: Lab, docker_client: docker.DockerClient, request: pytest.FixtureRequest
) -> Iterator[Lab]:
    yield lab
    for name in lab.nodes():
        lab.restore_link(name)
        if not lab.is_running(name):
            lab.start_node(name, wait=False)
    lab.up(len(lab.nodes()) - 1)  # waits until every node is Ready again
    LAB_REPAIRS.extend(
        f"after {request.node.name}: {problem}" for problem in heal(lab, docker_client)
    )


@pytest.fixture
def engine(lab: Lab) -> Iterator[Engine]:
    engine = connect(lab.docker_host())
    yield engine
    engine.close()


ConvergeCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def converge_cli(lab: Lab) -> ConvergeCli:
    environment = {**os.environ, "DOCKER_HOST": lab.docker_host(), "NO_COLOR": "1"}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "converge", *arguments],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report ends with the lab's state (nodes, stuck tasks, resources)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and os.geteuid() == 0:
        lab = Lab()
        if lab.exists():
            report.sections.append(("lab state at the failure", lab_report(lab)))


@pytest.fixture(autouse=True)
def _healthy_lab(request: pytest.FixtureRequest) -> None:
    """Before the first lab test of each module (of each test, in a module that sets
    ``LAB_PROBE_EACH_TEST = True``): every node runs a task the manager reaches, or its daemon
    is restarted (see labhealth.py); the run's summary lists what was found."""
    module = request.node.module.__name__
    each = getattr(request.module, "LAB_PROBE_EACH_TEST", False)
    if "lab" not in request.fixturenames or (module in _PROBED_MODULES and not each):
        return
    _PROBED_MODULES.add(module)
    lab: Lab = request.getfixturevalue("lab")
    client = lab.client()
    try:
        found = heal(lab, client)
    finally:
        client.close()
    LAB_REPAIRS.extend(f"before {request.node.nodeid}: {problem}" for problem in found)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LAB_REPAIRS:
        terminalreporter.section("lab repairs (a node leaked a network or stopped running tasks)")
        for line in LAB_REPAIRS:
            terminalreporter.write_line(line)

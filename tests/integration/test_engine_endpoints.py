"""converge finds the lab's manager the way the docker CLI would: contexts and ssh:// aliases.

- A context made with the real ``docker context create`` and chosen by ``docker context use``
  (or ``DOCKER_CONTEXT``) is used when ``DOCKER_HOST`` is not set.
- ``DOCKER_HOST=ssh://lab-manager`` goes through the system's ssh client, so the alias's
  HostName, Port (not 22), User and IdentityFile come from ``~/.ssh/config``. The test starts
  Debian's sshd inside the manager's network namespace on the manager's lab address, port 2222,
  with throwaway keys; its sessions get ``DOCKER_HOST`` pointing at the manager's socket, so
  ``docker system dial-stdio`` on the "remote" side reaches the manager's engine.

ssh reads ``~/.ssh/config`` from the home directory in the password database, not from
``$HOME``: converge runs in a private mount namespace whose ``/etc/passwd`` (a bind-mounted
copy) gives root a temporary home, so the real one is neither read nor touched.

Every plan here is read-only: it declares a label on worker1 that the lab does not have, and
the plan must show it, which only a swarm with that node can produce.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from waiting import wait_for

from converge.lab import Lab
from converge.lab.layout import MANAGER

pytestmark = pytest.mark.integration

SSH_PORT = 2222
SPEC = """\
x-converge:
  stack: {stack}
  cluster:
    nodes:
      worker1: {{labels: {{converge-endpoint-test: "yes"}}}}
"""


def _environment(**settings: str | Path) -> dict[str, str]:
    """The test's environment without any docker endpoint setting, plus ``settings``."""
    cleared = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY")
    environment = {k: v for k, v in os.environ.items() if k not in cleared}
    return {**environment, "NO_COLOR": "1", **{k: str(v) for k, v in settings.items()}}


def _run(argv: list[str | Path], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in argv],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _docker(environment: dict[str, str], *arguments: str) -> str:
    result = _run(["docker", *arguments], environment)
    assert result.returncode == 0, f"docker {' '.join(arguments)}: {result.stderr}"
    return result.stdout


def _converge_plan(
    spec: Path, environment: dict[str, str], home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command: list[str | Path] = [sys.executable, "-m", "converge", "plan", spec]
    if home is not None:
        # ssh finds ~/.ssh/config through the password database, not $HOME: run converge in a
        # private mount namespace whose /etc/passwd gives this user the home ``home``.
        passwd = home.parent / "passwd"
        passwd.write_text(_with_home(Path("/etc/passwd").read_text(), os.getuid(), home))
        command = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            'mount --bind "$0" /etc/passwd && exec "$@"',
            passwd,
            *command,
        ]
        environment = {**environment, "HOME": str(home)}
    return _run(command, environment)


def _with_home(passwd: str, uid: int, home: Path) -> str:
    lines = []
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) == 7 and fields[2] == str(uid):
            fields[5] = str(home)
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def _assert_reached_the_lab(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    # Whatever labels worker1 has, the plan adds this one: only a swarm with worker1 says so.
    assert "~ node worker1" in result.stdout, result.stdout
    assert "converge-endpoint-test" in result.stdout, result.stdout
    # (the owner record is added: this spec is the first to own the cluster)
    assert "Plan: 1 to add, 1 to change, 0 to destroy." in result.stdout


@pytest.fixture
def spec(stack: str, tmp_path: Path) -> Path:
    path = tmp_path / "spec.yml"
    path.write_text(SPEC.format(stack=stack), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# docker contexts


def test_the_current_docker_context_reaches_the_lab(lab: Lab, spec: Path, tmp_path: Path) -> None:
    config = tmp_path / "docker-config"
    environment = _environment(DOCKER_CONFIG=config)
    _docker(environment, "context", "create", "lab", "--docker", f"host={lab.docker_host()}")
    _docker(environment, "context", "use", "lab")
    assert _docker(environment, "context", "show").strip() == "lab"

    _assert_reached_the_lab(_converge_plan(spec, environment))


def test_docker_context_variable_and_its_place_in_the_order(
    lab: Lab, spec: Path, tmp_path: Path
) -> None:
    config = tmp_path / "docker-config"
    environment = _environment(DOCKER_CONFIG=config)
    # No `docker context use`: the CLI writes no config.json until then.
    _docker(environment, "context", "create", "lab", "--docker", f"host={lab.docker_host()}")
    dead = f"unix://{tmp_path}/nothing.sock"
    _docker(environment, "context", "create", "dead", "--docker", f"host={dead}")
    assert not (config / "config.json").exists()

    _assert_reached_the_lab(_converge_plan(spec, {**environment, "DOCKER_CONTEXT": "lab"}))

    unreachable = _converge_plan(spec, {**environment, "DOCKER_CONTEXT": "dead"})
    assert unreachable.returncode == 1
    assert f"{dead} (from context dead (DOCKER_CONTEXT))" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

    # DOCKER_HOST comes before DOCKER_CONTEXT, as with the docker CLI.
    both = {**environment, "DOCKER_CONTEXT": "dead", "DOCKER_HOST": lab.docker_host()}
    _assert_reached_the_lab(_converge_plan(spec, both))


def test_a_worker_s_engine_is_refused_by_name(lab: Lab, spec: Path) -> None:
    """The observer reads /info beside the lists; a worker answers both with errors, and the
    one that explains it (a worker, not a manager) is the one shown."""
    worker = lab.docker_host("worker1")
    refused = _converge_plan(spec, _environment(DOCKER_HOST=worker))

    assert refused.returncode == 1, refused.stdout
    assert f"the Docker engine at {worker} (from DOCKER_HOST) (worker1) is a swarm worker; " in (
        refused.stderr
    )
    assert "converge needs a manager" in refused.stderr
    assert "Traceback" not in refused.stderr


# ---------------------------------------------------------------------------------------------
# ssh://


@dataclass(frozen=True)
class SshHome:
    """A home directory whose ~/.ssh/config names the lab manager ``lab-manager``."""

    home: Path
    address: str
    sshd_log: Path


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "converge-test", "-f", str(path)],
        check=True,
        timeout=30,
    )


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def ssh_home(lab: Lab, tmp_path: Path) -> Iterator[SshHome]:
    """sshd in the manager's network namespace on its lab address, port 2222; stopped after."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        pytest.fail("sshd not found: scripts/lab-prereqs.sh installs openssh-server")
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    _keygen(keys / "host")
    _keygen(keys / "client")
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    address = lab.manager_address()
    config = keys / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {address}:{SSH_PORT}",
                f"HostKey {keys / 'host'}",
                f"AuthorizedKeysFile {keys / 'authorized_keys'}",
                "PidFile none",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",  # the keys live in pytest's temporary directory
                f"SetEnv DOCKER_HOST={lab.docker_host()}",
                "",
            ]
        )
    )
    # sshd's privilege separation directory, as the package's service would create it.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = (tmp_path / "sshd.log").open("w")
    process = subprocess.Popen(
        [
            "nsenter",
            f"--net={lab.config.netns_path(MANAGER)}",
            sshd,
            "-D",
            "-e",
            "-f",
            str(config),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: process.poll() is None and _listening(address, SSH_PORT),
            timeout=15,
            what=f"sshd listening on {address}:{SSH_PORT} (log: {tmp_path / 'sshd.log'})",
        )
        home = tmp_path / "home"
        (home / ".ssh").mkdir(parents=True, mode=0o700)
        (home / ".ssh" / "config").write_text(
            "\n".join(
                [
                    "Host lab-manager",
                    f"    HostName {address}",
                    f"    Port {SSH_PORT}",
                    "    User root",
                    f"    IdentityFile {keys / 'client'}",
                    "    IdentitiesOnly yes",
                    "    BatchMode yes",
                    "    StrictHostKeyChecking no",
                    "    UserKnownHostsFile /dev/null",
                    "    LogLevel ERROR",
                    "",
                ]
            )
        )
        yield SshHome(home, address, tmp_path / "sshd.log")
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def test_an_ssh_alias_uses_the_port_user_and_key_of_the_ssh_config(
    ssh_home: SshHome, spec: Path, tmp_path: Path
) -> None:
    environment = _environment(DOCKER_CONFIG=tmp_path / "docker-config")

    through_alias = {**environment, "DOCKER_HOST": "ssh://lab-manager"}
    _assert_reached_the_lab(_converge_plan(spec, through_alias, ssh_home.home))
    # sshd let in the config's User with the config's IdentityFile (the only key it accepts).
    assert "Accepted publickey for root" in ssh_home.sshd_log.read_text()

    # A docker context naming the alias works the same way.
    _docker(environment, "context", "create", "over-ssh", "--docker", "host=ssh://lab-manager")
    through_context = {**environment, "DOCKER_CONTEXT": "over-ssh"}
    _assert_reached_the_lab(_converge_plan(spec, through_context, ssh_home.home))

    # Without the config's Port, ssh dials port 22, where nothing listens: the port came from it.
    direct = {**environment, "DOCKER_HOST": f"ssh://root@{ssh_home.address}"}
    refused = _converge_plan(spec, direct, ssh_home.home)
    assert refused.returncode == 1
    assert f"ssh://root@{ssh_home.address} (from DOCKER_HOST)" in refused.stderr
    assert f"connect to host {ssh_home.address} port 22: Connection refused" in refused.stderr
    assert "Traceback" not in refused.stderr

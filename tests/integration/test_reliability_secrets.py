"""A secret scan over every output path of the command line, on the lab, with known values.

One story: a spec takes ``DB_URL`` (a name that does not look secret: its source makes it
secret) and ``API_KEY`` from the environment, and mounts two swarm secrets (``db_password``
from a variable, ``tls_key`` from a file); the values are rotated (the swarm secrets get new
versions), a plan is saved and
applied, someone adds ``API_TOKEN`` by hand with ``docker service update --env-add``, the spec
drops ``DB_URL``, and an apply fails on an image whose tag comes from a secret variable. Every
output along the way (plan text, JSON and Markdown; the saved plan; apply progress, result and
errors, text and JSON; drift text, JSON, Markdown and metrics; status text and JSON; the lock
object's labels while an apply holds it; the debug log of every command, on with
``CONVERGE_LOG=debug``) is scanned: zero occurrences of any value.
"""

from __future__ import annotations

import threading
from pathlib import Path

import docker
import pytest
from reliability import Cli, record
from waiting import wait_for

from converge.lab import Lab
from converge.naming import lock_name

pytestmark = pytest.mark.integration

SPEC = """
x-converge:
  stack: {stack}
services:
  web:
    image: converge-lab/app:{tag}
    environment:
{env}      MODE: scan
    secrets:
      - db_password
      - source: tls_key
        target: tls.key
    deploy:
      replicas: 1
      update_config: {{monitor: 1s}}
secrets:
  db_password:
    environment: DB_PASSWORD
  tls_key:
    file: ./tls.key
"""

OLD_URL = "postgres://app:scan-old-url-7731@db/app"
NEW_URL = "postgres://app:scan-new-url-7732@db/app"
NEXT_URL = "postgres://app:scan-next-url-7733@db/app"
KEYS = ("scan-api-key-0001", "scan-api-key-0002", "scan-api-key-0003")
HAND_SET = "scan-hand-set-token-0004"
BAD_TAG = "scan-tag-secret-0005"
PASSWORDS = ("scan-db-password-0011", "scan-db-password-0012", "scan-db-password-0013")
TLS_KEYS = ("scan-tls-key-0021", "scan-tls-key-0022", "scan-tls-key-0023")
SECRETS = (
    OLD_URL,
    NEW_URL,
    NEXT_URL,
    *KEYS,
    HAND_SET,
    BAD_TAG,
    "scan-old-url-7731",
    *PASSWORDS,
    *TLS_KEYS,
)


def spec(stack: str, with_secrets: bool = True, tag: str = "v1") -> str:
    env = "      DB_URL: ${DB_URL}\n      API_KEY: ${API_KEY}\n" if with_secrets else ""
    return SPEC.format(stack=stack, env=env, tag=tag)


class Scan:
    """Every text converge showed, by where it came from."""

    def __init__(self) -> None:
        self.outputs: dict[str, str] = {}

    def add(self, where: str, text: str) -> None:
        self.outputs[where] = self.outputs.get(where, "") + text

    def found(self) -> list[str]:
        return [
            f"{where}: {secret}"
            for where, text in self.outputs.items()
            for secret in SECRETS
            if secret in text
        ]


def test_no_output_path_shows_a_secret(
    lab: Lab, stack: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    cli = Cli(lab, tmp_path, {"CONVERGE_LOG": "debug"})
    scan = Scan()
    full = cli.write("spec.yml", spec(stack))

    def use(url: str, key: str) -> None:
        turn = KEYS.index(key)
        cli.extra_env.update(
            DB_URL=url, API_KEY=key, IMAGE_TOKEN=BAD_TAG, DB_PASSWORD=PASSWORDS[turn]
        )
        cli.write("tls.key", TLS_KEYS[turn] + "\n")

    def run(where: str, *arguments: str | Path) -> int:
        done = cli.run(*arguments)
        scan.add(f"{where} (stdout)", done.stdout)
        scan.add(f"{where} (stderr)", done.stderr)
        return done.returncode

    use(OLD_URL, KEYS[0])
    assert run("first apply", "apply", "--yes", full) == 0

    # Rotation, shown every way; the lock's labels read while the apply holds it.
    use(NEW_URL, KEYS[1])
    for output in ("text", "json", "markdown"):
        assert run(f"plan -o {output}", "plan", "-o", output, full) == 0
    labels: list[str] = []
    stop = threading.Event()

    def watch_lock() -> None:
        while not stop.is_set():
            for config in docker_client.configs.list(filters={"name": lock_name(stack)}):
                labels.append(repr(config.attrs["Spec"].get("Labels")))
            stop.wait(0.05)

    watcher = threading.Thread(target=watch_lock, daemon=True)
    watcher.start()
    try:
        assert run("apply (rotation)", "apply", "--yes", full) == 0
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert labels, "the lock was never seen while the apply ran"
    scan.add("lock labels", "\n".join(labels))

    # A saved plan, and applying it, with JSON output.
    use(NEXT_URL, KEYS[2])
    saved = tmp_path / "saved.json"
    assert run("plan --out", "plan", "--out", saved, full) == 0
    scan.add("saved plan file", saved.read_text(encoding="utf-8"))
    assert run("apply saved plan -o json", "apply", "-o", "json", saved) == 0

    # Someone adds a token by hand: plan, drift in every format, status.
    service = docker_client.services.get(f"{stack}_web")
    container = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    service.update(env=[*container.get("Env", []), f"API_TOKEN={HAND_SET}"])
    for output in ("text", "json", "markdown"):
        assert run(f"plan -o {output} (hand-set)", "plan", "-o", output, full) == 0
        metrics = tmp_path / f"drift-{output}.prom"
        code = run(f"drift -o {output}", "drift", "-o", output, "--metrics-file", metrics, full)
        assert code == 2
        scan.add(f"drift metrics ({output})", metrics.read_text(encoding="utf-8"))
    # The hand update rolls its task (on the stack's default network, which takes a few
    # seconds to attach): status says converged once it has.
    wait_for(
        lambda: (
            (docker_client.api.inspect_service(f"{stack}_web").get("UpdateStatus") or {}).get(
                "State"
            )
            == "completed"
            or None
        ),
        timeout=60,
        what="the hand update to complete",
    )
    for output in ("text", "json"):
        assert run(f"status -o {output}", "status", "-o", output, full) == 0

    # The spec drops both variables: the swarm's values are shown nowhere (API_KEY by its
    # name; DB_URL's password as a URL's credentials).
    dropped = cli.write("dropped.yml", spec(stack, with_secrets=False))
    assert run("plan (dropped)", "plan", dropped) == 0
    assert run("drift (dropped)", "drift", dropped) == 2
    assert run("apply -o json (dropped)", "apply", "--yes", "-o", "json", dropped) == 0

    # A failing apply whose image tag is a secret: its errors, then status and drift.
    failing = cli.write("failing.yml", spec(stack, with_secrets=False, tag="${IMAGE_TOKEN}"))
    assert run("apply (failing)", "apply", "--yes", "--timeout", "60", failing) == 1
    assert run(
        "apply -o json (failing)", "apply", "--yes", "-o", "json", "--timeout", "60", failing
    ) in (0, 1)
    run("status (failing)", "status", failing)
    run("status -o json (failing)", "status", "-o", "json", failing)
    run("drift -o json (failing)", "drift", "-o", "json", failing)

    found = scan.found()
    record("secrets", outputs=len(scan.outputs), secrets=len(SECRETS), occurrences=len(found))
    assert found == []
    # The scan saw the masked values where they were meant to be.
    assert "(sensitive)" in scan.outputs["plan -o text (stdout)"]
    assert "(sensitive)" in scan.outputs["plan -o text (hand-set) (stdout)"]
    assert "Debug: " in scan.outputs["apply (rotation) (stderr)"]
    assert "): new version; 1 service roll" in scan.outputs["apply (rotation) (stdout)"]

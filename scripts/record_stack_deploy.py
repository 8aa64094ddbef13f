"""Record the Engine API requests ``docker stack deploy`` sends for a compose file.

converge's conversion (``converge.engine_spec``) mirrors docker stack deploy's; this records
the ground truth it is tested against. A small proxy on a unix socket stands between the docker
CLI and the lab manager's engine and keeps the body of every ``POST /networks/create`` and
``POST /services/create``; the stack is removed afterwards.

Writes ``<file without .yml>.requests.json`` beside the compose file: ``{"networks": {name:
body}, "services": {name: body}}``, keys sorted.

Usage (the lab running; the docker CLI on PATH):
    DOCKER_HOST=unix:///var/lib/converge-lab/nodes/manager/docker.sock \\
        .venv/bin/python scripts/record_stack_deploy.py tests/fixtures/stackdeploy/everything.yml
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

STACK = "sd"


class _Recorder:
    """Forwards connections to the engine and keeps the requests each one carried."""

    def __init__(self, listen: str, target: str) -> None:
        self.target = target
        self.streams: list[bytearray] = []
        self._lock = threading.Lock()
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(listen)
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            stream = bytearray()
            with self._lock:
                self.streams.append(stream)
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            threading.Thread(
                target=self._pipe, args=(client, upstream, stream), daemon=True
            ).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, keep: bytearray | None) -> None:
        try:
            while data := source.recv(65536):
                if keep is not None:
                    keep.extend(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def requests(self) -> list[tuple[str, str, bytes]]:
        """(method, path, body) of every request seen, in order per connection."""
        found: list[tuple[str, str, bytes]] = []
        with self._lock:
            streams = [bytes(stream) for stream in self.streams]
        for stream in streams:
            rest = stream
            while b"\r\n\r\n" in rest:
                head, _, rest = rest.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                found.append((method, path, rest[:length]))
                rest = rest[length:]
        return found


def _docker(host: str, *args: str) -> None:
    environment = {**os.environ, "DOCKER_HOST": host}
    subprocess.run(["docker", *args], check=True, env=environment, capture_output=True)


def record(compose_file: Path, engine_socket: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        listen = str(Path(directory) / "proxy.sock")
        recorder = _Recorder(listen, engine_socket)
        proxy = f"unix://{listen}"
        try:
            _docker(
                proxy,
                "stack",
                "deploy",
                "--resolve-image",
                "never",
                "--detach",
                "-c",
                str(compose_file),
                STACK,
            )
        finally:
            time.sleep(0.5)  # let the pipes copy the last bytes
            recorder.server.close()
            _docker(f"unix://{engine_socket}", "stack", "rm", STACK)
    result: dict[str, Any] = {"networks": {}, "services": {}}
    for method, path, body in recorder.requests():
        if method != "POST" or not body:
            continue
        document = json.loads(body)
        if path.endswith("/networks/create"):
            result["networks"][document.pop("Name")] = document
        elif path.endswith("/services/create"):
            result["services"][document["Name"]] = document
    return result


def main() -> int:
    host = os.environ.get("DOCKER_HOST", "")
    if not host.startswith("unix://") or len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 1
    compose_file = Path(sys.argv[1]).resolve()
    recorded = record(compose_file, host.removeprefix("unix://"))
    out = compose_file.with_name(compose_file.stem + ".requests.json")
    out.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(
        f"wrote {out} ({len(recorded['services'])} services, {len(recorded['networks'])} networks)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

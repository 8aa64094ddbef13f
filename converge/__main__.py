"""The ``converge`` command: ``python -m converge`` and the console script both start here.

The CLI's imports build some 65,000 objects the cyclic collector tracks (pydantic, typer,
rich, the spec models; 80,000 with the Docker SDK) that live until the process ends. With the
collector on, each full collection during the imports walks all of them again (10-25 ms a
pass once they are loaded, several passes: 40 ms of `--version`, 100 ms of a plan). So the
imports run with the collector paused, and what they built is moved out of its reach
(``gc.freeze``); it runs as usual for everything made after that. Only the command's own
process does this: ``converge.cli.main`` called from Python (the tests) leaves the collector
alone.
"""

from __future__ import annotations

import gc


def main() -> None:
    """Entry point of the ``converge`` console script and of ``python -m converge``."""
    gc.disable()
    try:
        from converge import collector
        from converge.cli import main as run
    finally:
        gc.freeze()
        gc.enable()
    collector.own_process()
    run()


if __name__ == "__main__":
    main()

"""Run the converge CLI exactly as ``converge ...`` does, recording every Engine's API calls.

``python -m bench.counted OUT.json plan spec.yml`` runs ``converge plan spec.yml`` and, at
exit, writes ``{"calls": {"METHOD /endpoint": count}, "peak_rss_mb": MB}`` to OUT.json: the
calls summed over the engines the command opened (counted by ``Engine`` itself, at the SDK's
transport) and the process's peak resident memory.
"""

from __future__ import annotations

import atexit
import gc
import json
import resource
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def main() -> None:
    # As the console script (converge.__main__) starts: imports with the collector paused, and
    # what they built frozen; the engine module is imported here first, to count its calls.
    gc.disable()
    import converge.engine

    out = Path(sys.argv[1])
    engines: list[converge.engine.Engine] = []
    original = converge.engine.Engine.__init__

    def recording_init(self: converge.engine.Engine, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        engines.append(self)

    converge.engine.Engine.__init__ = recording_init  # type: ignore[method-assign]

    def dump() -> None:
        total: Counter[str] = Counter()
        for engine in engines:
            total.update(engine.calls)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        document = {"calls": dict(sorted(total.items())), "peak_rss_mb": peak_mb}
        out.write_text(json.dumps(document), encoding="utf-8")

    atexit.register(dump)
    sys.argv = ["converge", *sys.argv[2:]]
    from converge.__main__ import main as converge_main

    converge_main()


if __name__ == "__main__":
    main()

"""``python -m bench local|distributed|feeds|politeness ...``: the benchmark entry point (see docs/benchmarks.md)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "local": "bench.local",
    "distributed": "bench.distributed",
    "feeds": "bench.feeds",
    "politeness": "bench.politeness",
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(f"usage: python -m bench {{{'|'.join(COMMANDS)}}} [options]  (--help for each)\n")
        return 2
    mod = importlib.import_module(COMMANDS[sys.argv[1]])
    return int(mod.main(sys.argv[2:]) or 0)


if __name__ == "__main__":
    sys.exit(main())

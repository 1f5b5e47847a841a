"""Fail (exit 1) when the e2e suite did not really run: any e2e test skipped, or none ran.

    KUBECRAWL_E2E_REPORT=.e2e-report.json python tests/e2e/check_report.py [REPORT]

The report is written by tests/e2e/conftest.py at the end of any pytest session that set
KUBECRAWL_E2E_REPORT. CI calls this after the test run so that a machine without Go cannot pass CI.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else os.environ.get("KUBECRAWL_E2E_REPORT", ".e2e-report.json"))
    if not path.exists():
        sys.stderr.write(f"e2e: no report at {path}: the e2e suite did not run\n")
        return 1
    report = json.loads(path.read_text())
    skipped = report.get("skipped", [])
    ran = sum(len(report.get(k, [])) for k in ("passed", "failed", "xfailed", "xpassed"))
    if skipped or ran == 0:
        sys.stderr.write(f"e2e: {len(skipped)} test(s) skipped, {ran} ran; CI requires the e2e suite to run\n")
        for nodeid in skipped:
            sys.stderr.write(f"  skipped: {nodeid}\n")
        return 1
    counts = {k: len(v) for k, v in report.items()}
    sys.stdout.write(f"e2e: ran {ran} tests {counts}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

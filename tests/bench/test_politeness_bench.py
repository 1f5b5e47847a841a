"""``python -m bench politeness`` end to end at a tiny size: every run crawls every page once and reports.

The PASS/MISS figures are timing and load dependent; this checks that they are computed from the
witness server's log and printed, not what they are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_both_shapes_crawl_every_page_once_and_every_target_is_reported(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "politeness",
            "--slaves",
            "1,2",
            "--pages",
            "6",
            "--delay",
            "0.05",
            "--hosts",
            "3",
            "--host-pages",
            "5",
            "--latency-ms",
            "5",
            "--json",
            str(out),
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    rows = {(r["shape"], r["slaves"]): r for r in result["rows"]}
    assert set(rows) == {("A", 1), ("A", 2), ("B", 1), ("B", 2)}
    for (shape, _n), row in rows.items():
        assert row["complete"] and row["distinct_pages"] == row["expected_pages"]
        # the figures come from the server's log: one entry per witnessed host
        assert len(row["per_host"]) == (1 if shape == "A" else 3)
        assert sum(h["requests"] for h in row["per_host"].values()) == row["pages_served"]
        assert row["peak_per_host"] >= 1 and row["pages_per_s"] > 0
    targets = [t["target"] for t in result["targets"]]
    assert any("mean gap" in t for t in targets) and any("2 slaves" in t for t in targets)
    assert ("PASS" in proc.stdout or "MISS" in proc.stdout) and "| A | 1 |" in proc.stdout

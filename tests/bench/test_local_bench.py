"""``python -m bench local`` end to end on a small site: every contender crawls every page exactly once.

Scrapy is left out here: it lives in a bench-only venv that the bench command creates with pip.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_every_contender_crawls_every_page_once_and_ratios_are_reported(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "local",
            "--pages",
            "150",
            "--page-kb",
            "4",
            "--repeat",
            "1",
            "--only",
            "kubecrawl,raw-aiohttp,raw-httpx-aiohttp,raw-httpx",
            "--site-dir",
            str(tmp_path / "site"),
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
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"kubecrawl", "raw-aiohttp", "raw-httpx-aiohttp", "raw-httpx"}
    for row in rows.values():
        assert row["complete"] and row["pages"] == 150
        assert row["pages_per_cpu_s"] > 0 and row["peak_rss_mb"] > 0
    assert set(result["ratios"]) == {"raw-aiohttp", "raw-httpx-aiohttp", "raw-httpx"}
    assert result["targets"]["vs_best_raw"]["baseline"] in rows
    assert "| kubecrawl |" in proc.stdout

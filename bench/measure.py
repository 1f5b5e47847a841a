"""Run one contender in its own process and measure it: CPU (user+sys), peak RSS, wall, its own report.

CPU and peak RSS come from ``os.wait4`` on the child, so they are that process's own (and of any
process it waited for), never the bench driver's. The contender also reports its crawl phase (CPU
and wall between set-up and tear-down) and its page counts in a JSON file.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

log = logging.getLogger(__name__)


class Measured(BaseModel):
    """One run of one contender."""

    name: str
    exit_code: int
    process_cpu_s: float
    peak_rss_mb: float
    process_wall_s: float
    crawl_cpu_s: float | None = None
    crawl_wall_s: float | None = None
    pages: int = 0
    unique: int = 0
    errors: int = 0
    extra: dict[str, Any] = {}

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.crawl_wall_s is not None


def run_measured(
    name: str,
    cmd: list[str],
    result_path: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 3600.0,
) -> Measured:
    """Run ``cmd`` to completion; ``result_path`` is where the contender writes its JSON report."""
    result_path.unlink(missing_ok=True)
    full_env = {**os.environ, **(env or {}), "KC_BENCH_RESULT": str(result_path)}
    log.debug("running %s: %s", name, " ".join(cmd))
    with open(log_path, "wb") as logf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=full_env, cwd=cwd
        )
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    pid, status, ru = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.05)
        except BaseException:  # interrupted bench: never leave a contender running
            proc.kill()
            os.wait4(proc.pid, 0)
            raise
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    report: dict[str, Any] = {}
    if result_path.exists():
        report = json.loads(result_path.read_text())
    m = Measured(
        name=name,
        exit_code=proc.returncode,
        process_cpu_s=ru.ru_utime + ru.ru_stime,
        peak_rss_mb=ru.ru_maxrss / 1024.0,
        process_wall_s=wall,
        crawl_cpu_s=report.pop("crawl_cpu_s", None),
        crawl_wall_s=report.pop("crawl_wall_s", None),
        pages=int(report.pop("pages", 0)),
        unique=int(report.pop("unique", 0)),
        errors=int(report.pop("errors", 0)),
        extra=report,
    )
    if not m.ok:
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
        log.error("%s failed (exit %d); last output:\n%s", name, m.exit_code, tail)
    return m

"""The bench-only virtualenv (``bench/.venv-scrapy``): Scrapy and the profilers, never project dependencies.

Created on first use with the same base interpreter as the running Python, then ``pip install``-ed.
A stamp file records what was installed, so later runs only check it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

BENCH_DIR = Path(__file__).resolve().parent
VENV_DIR = BENCH_DIR / ".venv-scrapy"
#: what the bench environment holds: Scrapy (a contender) and the two profilers
PACKAGES = ("scrapy>=2.13", "py-spy>=0.3", "pyinstrument>=4.6")
_STAMP = ".kubecrawl-bench-packages"


def venv_python(venv: Path = VENV_DIR) -> Path:
    return venv / "bin" / "python"


def base_python() -> str:
    """The interpreter the running venv was made from (so the bench venv has the same Python)."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(base) if base.exists() else sys.executable


def ensure_bench_venv(venv: Path = VENV_DIR, packages: tuple[str, ...] = PACKAGES) -> Path:
    """Create/refresh the bench venv if needed; returns its python. Raises if pip fails."""
    py = venv_python(venv)
    stamp = venv / _STAMP
    wanted = "\n".join(packages)
    if py.exists() and stamp.exists() and stamp.read_text() == wanted:
        return py
    if not py.exists():
        log.info("creating bench venv %s", venv)
        subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
    log.info("installing %s into %s (first run only)", " ".join(packages), venv)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True, env=env)
    stamp.write_text(wanted)
    return py


def site_packages(venv: Path = VENV_DIR) -> Path:
    """The venv's site-packages (to borrow pure tools such as pyinstrument from another interpreter)."""
    out = subprocess.run(
        [str(venv_python(venv)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def tool(name: str, venv: Path = VENV_DIR) -> Path:
    """Path of a console script in the bench venv (``py-spy``, ``scrapy``...)."""
    return venv / "bin" / name

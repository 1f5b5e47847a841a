"""Locate the cached control-plane binaries, building them with build.sh on first use."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

logger = logging.getLogger(__name__)

K8S_VERSION = os.environ.get("KUBECRAWL_E2E_K8S_VERSION", "v1.33.5")
BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "build.sh"
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kubectl")


class BinariesUnavailable(RuntimeError):
    """The control plane cannot be built here (no Go); the message says what is missing."""


def cache_bin_dir() -> Path:
    root = Path(os.environ.get("KUBECRAWL_E2E_CACHE", Path.home() / ".cache" / "kubecrawl-e2e"))
    return root / K8S_VERSION / "bin"


def find_go() -> str | None:
    go = shutil.which("go")
    if go:
        return go
    return "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None


def _missing(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if not os.access(cache_bin_dir() / n, os.X_OK)]


def ensure_binaries(*, build_timeout: float = 3600.0) -> Path:
    """Return the bin dir holding every binary, running build.sh when some are missing.

    Raises BinariesUnavailable when they are missing and Go is not installed.
    """
    wanted = (*K8S_BINARIES, "helm")
    missing = _missing(wanted)
    if missing:
        if find_go() is None:
            raise BinariesUnavailable(
                f"Go is not installed, so {', '.join(missing)} cannot be built "
                f"(install Go or run {BUILD_SCRIPT} on a machine that has it)"
            )
        logger.info("building %s with %s (first run only)", missing, BUILD_SCRIPT)
        subprocess.run(["bash", str(BUILD_SCRIPT), "all"], check=True, timeout=build_timeout)
    if shutil.which("etcd") is None:
        subprocess.run(["bash", str(BUILD_SCRIPT), "etcd"], check=True, timeout=600)
    still = _missing(wanted)
    if still:
        raise RuntimeError(f"build.sh finished but {still} are missing from {cache_bin_dir()}")
    return cache_bin_dir()

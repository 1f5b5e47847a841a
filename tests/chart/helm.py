"""Run the real Helm binary on charts/kubecrawl: locate (or build) it, render, lint."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubecrawl"
E2E_BUILD = REPO / "tests" / "e2e" / "build.sh"
RELEASE = "kc"
# The API version `helm template` and `helm lint` render for (the e2e control plane's version).
KUBE_VERSION = "1.33.5"
NAMESPACE = "kubecrawl-system"


class HelmNotFound(RuntimeError):
    """No helm binary, and it could not be built."""


def find_helm(build: bool = True) -> Path:
    """Return a helm binary: $KUBECRAWL_HELM, then the e2e cache, then PATH; build it if allowed.

    The e2e harness builds helm from its Go module (`tests/e2e/build.sh helm`) into a cache that
    later runs reuse, so on a fresh machine the first chart test run pays for that build once.
    """
    if env := os.environ.get("KUBECRAWL_HELM"):
        return Path(env)
    cached = _e2e_bin() / "helm" if E2E_BUILD.exists() else None
    if cached is not None and cached.exists():
        return cached
    on_path = shutil.which("helm")
    if on_path:
        return Path(on_path)
    if build and E2E_BUILD.exists():
        logger.info("building helm with %s helm", E2E_BUILD)
        subprocess.run(["bash", str(E2E_BUILD), "helm"], check=True, timeout=1800)
        if cached is not None and cached.exists():
            return cached
    raise HelmNotFound(
        "no helm binary: set KUBECRAWL_HELM, put helm on PATH, or run `tests/e2e/build.sh helm` "
        "(needs Go; builds helm.sh/helm/v3 from the Go module proxy)"
    )


def _e2e_bin() -> Path:
    out = subprocess.run(["bash", str(E2E_BUILD), "print-bin"], check=True, capture_output=True, text=True, timeout=60)
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class HelmResult:
    """Exit code and output of one helm invocation."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass(frozen=True)
class Helm:
    """The real helm binary, pointed at throwaway HOME-like directories."""

    binary: Path
    home: Path

    def run(self, *args: str) -> HelmResult:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            # No cluster: `helm template` and `helm lint` must never need one.
            "KUBECONFIG": str(self.home / "no-kubeconfig"),
        }
        proc = subprocess.run([str(self.binary), *args], capture_output=True, text=True, env=env, timeout=300)
        return HelmResult(proc.returncode, proc.stdout, proc.stderr)

    def values_file(self, values: dict[str, Any] | None, name: str = "values") -> list[str]:
        """Write `values` to a file and return the `-f FILE` arguments (none for defaults)."""
        if not values:
            return []
        path = self.home / f"{name}-{abs(hash(yaml.safe_dump(values)))}.yaml"
        path.write_text(yaml.safe_dump(values))
        return ["-f", str(path)]

    def template(self, values: dict[str, Any] | None = None, *extra: str) -> HelmResult:
        return self.run(
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--include-crds",
            "--kube-version",
            KUBE_VERSION,
            *self.values_file(values),
            *extra,
        )

    def render(self, values: dict[str, Any] | None = None, *extra: str) -> list[dict[str, Any]]:
        """Render the chart and return its objects; fail with Helm's message if it refuses."""
        result = self.template(values, *extra)
        if result.returncode != 0:
            raise AssertionError(f"helm template failed:\n{result.output}")
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def lint(self, values: dict[str, Any] | None = None) -> HelmResult:
        return self.run(
            "lint",
            str(CHART),
            "--strict",
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            *self.values_file(values),
        )

    def notes(self, values: dict[str, Any] | None = None) -> str:
        """templates/NOTES.txt as Helm renders it for an install.

        `helm template` never prints notes and `helm install --dry-run` wants a cluster, so a
        throwaway copy of the chart renders the very same NOTES.txt text with Helm's `tpl` into a
        ConfigMap that `helm template` prints.
        """
        copy = self.home / "chart-for-notes"
        if not copy.exists():
            shutil.copytree(CHART, copy)
            shutil.copy(CHART / "templates" / "NOTES.txt", copy / "notes-under-test.txt")
            (copy / "templates" / "notes-under-test.yaml").write_text(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\ndata:\n"
                '  notes: {{ tpl (.Files.Get "notes-under-test.txt") . | toJson }}\n'
            )
        result = self.run(
            "template",
            RELEASE,
            str(copy),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            "--show-only",
            "templates/notes-under-test.yaml",
            *self.values_file(values),
        )
        if result.returncode != 0:
            raise AssertionError(f"rendering NOTES.txt failed:\n{result.output}")
        return str(yaml.safe_load(result.stdout)["data"]["notes"])


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]

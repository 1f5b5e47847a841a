"""Build the project's images with podman and run commands inside them with buildah (no daemon).

`podman run` does not work on our machines (cgroups v1, no resource limits), but
`buildah from` + `buildah run --isolation=chroot` does, and runs the image's own bytes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD_IMAGES = HERE / "build_images.sh"


@dataclass(frozen=True)
class Build:
    """One finished image build: its name, how long it took, and podman's log of the steps."""

    image: str
    seconds: float
    log: str


def build(component: str, context: Path = REPO, log_dir: Path | None = None, prefix: str = "kubecrawl") -> Build:
    """Build `<prefix>/<component>` from `Dockerfile.<component>` in `context` (raises with the log on failure)."""
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(BUILD_IMAGES), component, str(context)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "KUBECRAWL_IMAGE_PREFIX": prefix},
    )
    seconds = time.monotonic() - started
    if log_dir is not None:
        (log_dir / f"build-{component}.log").write_text(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"building {component} failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
    return Build(image=proc.stdout.strip().splitlines()[-1], seconds=seconds, log=proc.stderr)


def inspect(image: str) -> dict[str, Any]:
    """`podman image inspect` of one image."""
    out = subprocess.run(["podman", "image", "inspect", image], check=True, capture_output=True, text=True)
    (info,) = json.loads(out.stdout)
    return dict(info)


def size_bytes(image: str) -> int:
    return int(inspect(image)["Size"])


def history(image: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["podman", "image", "history", "--no-trunc", "--format", "json", image],
        check=True,
        capture_output=True,
        text=True,
    )
    return list(json.loads(out.stdout))


@dataclass
class Container:
    """A working container of an image, for `buildah run`."""

    name: str

    def run(
        self,
        *cmd: str,
        user: str | None = None,
        volumes: Sequence[tuple[Path, str]] = (),
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` inside the container on the host network; never raises on a non-zero exit."""
        args = ["buildah", "run", "--isolation=chroot", "--network=host"]
        if user:
            args += ["--user", user]
        for host, inside in volumes:
            args += ["--volume", f"{host}:{inside}"]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        return subprocess.run([*args, self.name, "--", *cmd], capture_output=True, text=True, timeout=timeout)


@contextmanager
def container(image: str) -> Iterator[Container]:
    """A working container from a local image (never pulled), removed afterwards."""
    out = subprocess.run(["buildah", "from", "--pull-never", image], check=True, capture_output=True, text=True)
    name = out.stdout.strip().splitlines()[-1]
    try:
        yield Container(name)
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True, text=True)

"""Container runtimes for the node helper: how an image + command becomes a running process.

`VenvRuntime` maps image names to local commands (a table tests can extend) and rewrites volume mount
paths to per-pod directories. Another runtime (e.g. `buildah run` into the real image) implements the
same `Runtime` interface and needs no path rewriting.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import procs
from .cachefiles import build_once

logger = logging.getLogger(__name__)

SHIM_SOURCE = Path(__file__).resolve().parent / "shim" / "podnet.c"


@dataclass(frozen=True)
class Image:
    """What a local stand-in for an image runs: ENTRYPOINT and CMD, and where its commands live."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    path: tuple[str, ...] = ()  # dirs searched first for command[0]


@dataclass
class ContainerLaunch:
    """Everything needed to start one container of a pod; built by the node from the Pod manifest."""

    pod_key: str  # namespace/name
    name: str
    image: str
    command: list[str] | None
    args: list[str] | None
    env: dict[str, str]
    pod_ip: str
    mounts: dict[str, Path]  # mountPath → host dir
    working_dir: str | None
    log_path: Path
    hosts_file: Path | None = None  # cluster DNS for the pod's namespace (hosts format)
    node_env: dict[str, str] = field(default_factory=dict)  # set by the node on host paths: never rewritten


class UnknownImage(LookupError):
    pass


def default_images() -> list[tuple[str, Image]]:
    """(substring of the image name, Image): first match wins. Tests may insert their own entries."""
    bindir = str(Path(sys.executable).parent)
    return [
        ("kubecrawl/worker", Image(entrypoint=(f"{bindir}/kubecrawl",), path=(bindir,))),
        ("kubecrawl/operator", Image(entrypoint=(f"{bindir}/kubecrawl-operator",), cmd=("run",), path=(bindir,))),
        ("redis", Image(cmd=("redis-server",))),
        ("python", Image(cmd=("python3",), path=(bindir,))),
        ("busybox", Image(cmd=("sh",))),
        ("", Image()),  # anything else: the pod must give a command that exists on this machine
    ]


class Runtime(ABC):
    """Starts containers as processes and runs exec probes inside them."""

    @abstractmethod
    def start(self, launch: ContainerLaunch) -> subprocess.Popen[bytes]: ...

    @abstractmethod
    def exec(self, launch: ContainerLaunch, command: list[str], timeout: float) -> int: ...

    def check(self, launch: ContainerLaunch) -> None:
        """Raise UnknownImage when this runtime cannot run the container (reported as ErrImagePull)."""


@dataclass
class VenvRuntime(Runtime):
    """Runs images as local commands: the venv's console scripts, redis-server, python3, sh…"""

    shim_dir: Path
    images: list[tuple[str, Image]] = field(default_factory=default_images)
    _shim: Path | None = None

    def image(self, name: str) -> Image:
        for needle, image in self.images:
            if needle in name:
                return image
        raise UnknownImage(name)

    def argv(self, launch: ContainerLaunch) -> list[str]:
        image = self.image(launch.image)
        # Only what the pod spec says is a path inside the container; the image's local entrypoint is
        # a path on this machine and must not be rewritten (a checkout under /tmp would otherwise be
        # mapped into a pod's /tmp emptyDir).
        if launch.command is not None:
            argv = [rewrite_paths(a, launch.mounts) for a in [*launch.command, *(launch.args or [])]]
        else:
            args = launch.args if launch.args is not None else list(image.cmd)
            argv = list(image.entrypoint) + [rewrite_paths(a, launch.mounts) for a in args]
        if not argv:
            raise UnknownImage(f"image {launch.image!r} has no local entrypoint and the pod gives no command")
        argv[0] = self._which(argv[0], image)
        return argv

    def check(self, launch: ContainerLaunch) -> None:
        self.argv(launch)

    def _which(self, cmd: str, image: Image) -> str:
        if os.sep in cmd:
            return cmd
        for d in image.path:
            if os.access(os.path.join(d, cmd), os.X_OK):
                return os.path.join(d, cmd)
        found = shutil.which(cmd)
        if found is None:
            raise UnknownImage(f"command {cmd!r} not found on this machine")
        return found

    def env(self, launch: ContainerLaunch) -> dict[str, str]:
        env = {k: rewrite_paths(v, launch.mounts) for k, v in launch.env.items()}
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self._home(launch))}
        if "/tmp" in launch.mounts:
            base["TMPDIR"] = str(launch.mounts["/tmp"])
        base["KUBEHARNESS_POD_IP"] = launch.pod_ip
        base["KUBEHARNESS_HOSTNAME"] = launch.env.get("HOSTNAME", launch.pod_key.split("/")[-1])
        base["LD_PRELOAD"] = str(self.shim())
        if launch.hosts_file is not None:
            base["KUBEHARNESS_HOSTS"] = str(launch.hosts_file)
        return {**base, **env, **launch.node_env}

    def _home(self, launch: ContainerLaunch) -> Path:
        home = launch.log_path.parent / f"{launch.name}-home"
        home.mkdir(parents=True, exist_ok=True)
        return home

    def cwd(self, launch: ContainerLaunch) -> Path:
        if launch.working_dir:
            return Path(rewrite_paths(launch.working_dir, launch.mounts))
        return self._home(launch)

    def start(self, launch: ContainerLaunch) -> subprocess.Popen[bytes]:
        argv = self.argv(launch)
        logger.info("pod %s container %s: %s", launch.pod_key, launch.name, argv)
        return procs.start(argv, launch.log_path, env=self.env(launch), cwd=self.cwd(launch))

    def exec(self, launch: ContainerLaunch, command: list[str], timeout: float) -> int:
        argv = [rewrite_paths(a, launch.mounts) for a in command]
        argv[0] = self._which(argv[0], self.image(launch.image))
        try:
            return subprocess.run(
                argv,
                env=self.env(launch),
                cwd=self.cwd(launch),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            return 124

    def shim(self) -> Path:
        """Compile (once per source version) the LD_PRELOAD shim that gives each pod its own IP.

        Safe to call from every pod thread at once: one build, under a lock, to a unique temp name."""
        if self._shim is None:
            source = SHIM_SOURCE.read_bytes()
            out = self.shim_dir / f"podnet-{hashlib.sha256(source).hexdigest()[:12]}.so"
            self._shim = build_once(out, _compile_shim)
        return self._shim


def _compile_shim(tmp: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("a C compiler (cc) is needed to build the pod network shim")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(SHIM_SOURCE), "-ldl"], check=True)


def rewrite_paths(text: str, mounts: Mapping[str, Path]) -> str:
    """Replace container mount paths at path boundaries with their host directories, in one pass
    (host directories may themselves contain a mount path such as /tmp)."""
    paths = sorted((m.rstrip("/") for m in mounts if m.rstrip("/")), key=len, reverse=True)
    if not paths:
        return text
    hosts = {m.rstrip("/"): str(h) for m, h in mounts.items()}
    pattern = re.compile(r"(?<![\w.\-/])(" + "|".join(re.escape(p) for p in paths) + r")(?![\w.\-])")
    return pattern.sub(lambda m: hosts[m.group(1)], text)

"""A node-helper runtime that runs pods' containers inside the real images with `buildah run`.

The e2e node helper (tests/e2e/kubeharness) normally maps an image name to commands of the local venv
(`VenvRuntime`: fast). `BuildahRuntime` runs `kubecrawl/worker` and `kubecrawl/operator` containers
from the images that `tests/images/build_images.sh` built from the repository's Dockerfiles, so a
crawl on the e2e "cluster" runs the same bytes a user deploys; other images (redis, busybox) still go
to the fallback runtime. The pod-network shim (LD_PRELOAD, one IP per pod) and the hosts file are
mounted read-only into the container; mounts need no path rewriting.

Select it in the node fixture, e.g. when KUBECRAWL_E2E_RUNTIME=buildah:
    runtime = BuildahRuntime(fallback=VenvRuntime(shim_dir=...), images=built_images())
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.kubeharness import procs
from tests.e2e.kubeharness.runtime import ContainerLaunch, Runtime, UnknownImage, VenvRuntime

from .containers import inspect

logger = logging.getLogger(__name__)

SHIM_MOUNT = "/run/kubeharness"


def built_images(version: str = "0.1.0") -> dict[str, str]:
    """(substring of a pod's image name) → local image built from our Dockerfiles."""
    return {
        "kubecrawl/worker": f"localhost/kubecrawl/worker:{version}",
        "kubecrawl/operator": f"localhost/kubecrawl/operator:{version}",
    }


@dataclass
class BuildahRuntime(Runtime):
    """Runs the kubecrawl images' containers with `buildah run --isolation=chroot --network=host`."""

    fallback: VenvRuntime
    images: dict[str, str] = field(default_factory=built_images)
    _containers: dict[str, str] = field(default_factory=dict)  # pod_key/name → buildah container

    def local_image(self, name: str) -> str | None:
        for needle, image in self.images.items():
            if needle in name:
                return image
        return None

    def check(self, launch: ContainerLaunch) -> None:
        image = self.local_image(launch.image)
        if image is None:
            self.fallback.check(launch)
            return
        try:
            inspect(image)
        except subprocess.CalledProcessError:
            raise UnknownImage(f"{image} is not built: run tests/images/build_images.sh") from None

    def argv(self, launch: ContainerLaunch, image: str) -> list[str]:
        """What Kubernetes runs: command+args, else the image's ENTRYPOINT + (args or CMD)."""
        if launch.command is not None:
            return [*launch.command, *(launch.args or [])]
        config = inspect(image)["Config"]
        args = launch.args if launch.args is not None else list(config.get("Cmd") or [])
        return [*(config.get("Entrypoint") or []), *args]

    def _container(self, launch: ContainerLaunch, image: str) -> str:
        key = f"{launch.pod_key}/{launch.name}"
        name = "kc-" + hashlib.sha256(f"{key}@{image}".encode()).hexdigest()[:16]
        if key not in self._containers:
            subprocess.run(["buildah", "rm", name], capture_output=True)  # a leftover of an earlier run
            subprocess.run(["buildah", "from", "--pull-never", "--name", name, image], check=True, capture_output=True)
            self._containers[key] = name
        return self._containers[key]

    def run_argv(self, launch: ContainerLaunch, image: str, command: list[str]) -> list[str]:
        shim = self.fallback.shim()
        argv = [
            "buildah",
            "run",
            "--isolation=chroot",
            "--network=host",
            "--volume",
            f"{shim.parent}:{SHIM_MOUNT}:ro",
            "--env",
            f"LD_PRELOAD={SHIM_MOUNT}/{shim.name}",
            "--env",
            f"KUBEHARNESS_POD_IP={launch.pod_ip}",
        ]
        if launch.hosts_file is not None:
            argv += [
                "--volume",
                f"{launch.hosts_file.parent}:{SHIM_MOUNT}-hosts:ro",
                "--env",
                f"KUBEHARNESS_HOSTS={SHIM_MOUNT}-hosts/{launch.hosts_file.name}",
            ]
        for mount_path, host_dir in sorted(launch.mounts.items()):
            argv += ["--volume", f"{host_dir}:{_through_symlinks(mount_path)}"]
        for key, value in sorted({**launch.env, **self._node_env(launch)}.items()):
            argv += ["--env", f"{key}={value}"]
        if launch.working_dir:
            argv += ["--workingdir", launch.working_dir]
        return [*argv, self._container(launch, image), "--", *command]

    @staticmethod
    def _node_env(launch: ContainerLaunch) -> dict[str, str]:
        """The node's own settings (e.g. KUBECONFIG in the ServiceAccount volume), host paths mapped
        back to where the volume is mounted in the container."""
        out = {}
        for key, value in (getattr(launch, "node_env", None) or {}).items():
            for mount_path, host_dir in launch.mounts.items():
                if value == str(host_dir) or value.startswith(f"{host_dir}/"):
                    value = mount_path.rstrip("/") + value[len(str(host_dir)) :]
                    break
            out[key] = value
        return out

    @staticmethod
    def _give_volumes_to(launch: ContainerLaunch, user: str) -> None:
        """What the kubelet does for a pod's fsGroup: the image's user may read and write its volumes
        (ServiceAccount token, ConfigMaps, emptyDirs), which the node created as root."""
        uid, _, gid = user.partition(":")
        if not uid.isdigit():
            return
        for host_dir in launch.mounts.values():
            for path in [host_dir, *host_dir.rglob("*")] if host_dir.is_dir() else [host_dir]:
                os.chown(path, int(uid), int(gid or uid), follow_symlinks=False)

    def start(self, launch: ContainerLaunch) -> subprocess.Popen[bytes]:
        image = self.local_image(launch.image)
        if image is None:
            return self.fallback.start(launch)
        self._give_volumes_to(launch, str(inspect(image)["Config"].get("User") or ""))
        argv = self.run_argv(launch, image, self.argv(launch, image))
        logger.info("pod %s container %s in %s: %s", launch.pod_key, launch.name, image, argv)
        return procs.start(argv, launch.log_path)

    def exec(self, launch: ContainerLaunch, command: list[str], timeout: float) -> int:
        image = self.local_image(launch.image)
        if image is None:
            return self.fallback.exec(launch, command, timeout)
        try:
            return subprocess.run(
                self.run_argv(launch, image, command),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            return 124

    def cleanup(self) -> None:
        """Remove every working container this runtime made (call when the node stops)."""
        for name in self._containers.values():
            subprocess.run(["buildah", "rm", name], capture_output=True)
        self._containers.clear()


def _through_symlinks(mount_path: str) -> str:
    """Debian images have /var/run -> /run; `buildah run --volume` does not follow a symlink in the
    destination (the mount would be invisible), so mount at the real directory."""
    if mount_path == "/var/run" or mount_path.startswith("/var/run/"):
        return "/run" + mount_path[len("/var/run") :]
    return mount_path


def shim_dir_default() -> Path:
    return Path.home() / ".cache" / "kubecrawl-e2e" / "shim"

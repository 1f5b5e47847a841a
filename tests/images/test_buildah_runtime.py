"""The node helper's buildah runtime runs a pod's container inside the real worker image."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kubeharness import procs
from tests.e2e.kubeharness.runtime import ContainerLaunch, VenvRuntime

from .buildah_runtime import BuildahRuntime, shim_dir_default
from .containers import Build

pytestmark = pytest.mark.images


def _launch(tmp_path: Path, **kw: object) -> ContainerLaunch:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    os.chmod(out, 0o777)
    defaults: dict[str, object] = dict(
        pod_key="ns/pod-1",
        name="worker",
        image="kubecrawl/worker:e2e",
        command=None,
        args=None,
        env={"KUBECRAWL_LOG_FORMAT": "json"},
        pod_ip="127.0.0.1",
        mounts={"/out": out},
        working_dir=None,
        log_path=tmp_path / "logs" / "worker.log",
    )
    defaults.update(kw)
    return ContainerLaunch(**defaults)  # type: ignore[arg-type]


@pytest.fixture
def runtime() -> Iterator[BuildahRuntime]:
    rt = BuildahRuntime(fallback=VenvRuntime(shim_dir=shim_dir_default()))
    yield rt
    rt.cleanup()


def test_pod_args_run_after_the_images_entrypoint_as_its_user(
    worker_image: Build, runtime: BuildahRuntime, tmp_path: Path
) -> None:
    launch = _launch(tmp_path, args=["--version"])
    runtime.check(launch)
    assert runtime.argv(launch, runtime.local_image(launch.image) or "") == ["kubecrawl", "--version"]
    proc = runtime.start(launch)
    assert proc.wait(timeout=120) == 0, launch.log_path.read_text()
    assert launch.log_path.read_text().strip().splitlines()[-1] == "kubecrawl 0.1.0"


def test_exec_probe_and_mounts_reach_the_container(
    worker_image: Build, runtime: BuildahRuntime, tmp_path: Path
) -> None:
    launch = _launch(tmp_path, command=["sh", "-c", "id -u > /out/uid; echo $KUBECRAWL_LOG_FORMAT >> /out/uid"])
    proc = runtime.start(launch)
    assert proc.wait(timeout=120) == 0, launch.log_path.read_text()
    assert (tmp_path / "out" / "uid").read_text().split() == ["10001", "json"]
    assert runtime.exec(launch, ["test", "-f", "/out/uid"], timeout=60) == 0
    assert runtime.exec(launch, ["test", "-f", "/out/missing"], timeout=60) != 0


def test_a_long_running_container_stops_with_its_process_group(
    worker_image: Build, runtime: BuildahRuntime, tmp_path: Path
) -> None:
    seconds = str(600_000 + secrets.randbelow(100_000))  # marks this test's process in /proc
    launch = _launch(tmp_path, command=["sh", "-c", f"echo started > /out/state; exec sleep {seconds}"])
    proc = runtime.start(launch)
    procs.wait_until(lambda: (tmp_path / "out" / "state").exists(), timeout=60, what="the container to start")
    assert _sleepers(seconds), "the container's process is not visible on the host"
    assert procs.stop(proc, grace=15) is not None
    assert proc.poll() is not None
    procs.wait_until(lambda: not _sleepers(seconds), timeout=30, what="the container's process to exit")


def _sleepers(seconds: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", seconds.encode()]:
                found.append(int(entry.name))
    return found

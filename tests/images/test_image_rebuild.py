"""A code-only change rebuilds the worker image on top of the cached dependency layer."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import FIGURES
from .containers import REPO, Build, build, container

pytestmark = pytest.mark.images

PREFIX = "kubecrawl-rebuild-test"


@pytest.fixture
def context_copy(tmp_path: Path) -> Iterator[Path]:
    """The build context (what .dockerignore admits) copied, so the change never touches the repo."""
    ctx = tmp_path / "context"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*_cache")
    for part in ("worker", "operator"):
        shutil.copytree(REPO / part, ctx / part, ignore=ignore)
    for name in ("Dockerfile.worker", "Dockerfile.operator", ".dockerignore"):
        shutil.copy(REPO / name, ctx / name)
    yield ctx
    subprocess.run(["podman", "rmi", "--force", f"localhost/{PREFIX}/worker:0.1.0"], capture_output=True)


def _steps(log: str) -> list[tuple[str, bool]]:
    """(instruction, served from cache?) for each step of the final `podman build` log."""
    steps: list[tuple[str, bool]] = []
    for line in log.splitlines():
        if re.match(r"^\[\d+/\d+\] STEP \d+/\d+: ", line):
            steps.append((line.split(": ", 1)[1], False))
        elif line.startswith("--> Using cache") and steps:
            steps[-1] = (steps[-1][0], True)
    return steps


def test_code_only_change_reuses_the_dependency_layer(worker_image: Build, context_copy: Path) -> None:
    # A first build of the copy: from here on the only difference is the code change below
    # (the session's worker_image may be older than the tree when others edit it meanwhile).
    build("worker", context=context_copy, prefix=PREFIX)

    # Unique per run: an earlier run's layers for the same change would be (rightly) reused.
    change = f"# a code-only change {uuid.uuid4().hex}"
    init = context_copy / "worker" / "kubecrawl" / "__init__.py"
    init.write_text(init.read_text() + f"\n{change}\n")
    rebuilt = build("worker", context=context_copy, prefix=PREFIX)
    FIGURES["worker rebuild after a code-only change (s)"] = f"{rebuilt.seconds:.1f}"

    steps = _steps(rebuilt.log)
    deps = [cached for step, cached in steps if "requirements.txt" in step and step.startswith("RUN")]
    code = [cached for step, cached in steps if step.startswith("COPY worker/ ")]
    assert deps == [True], steps
    assert code == [False], steps
    with container(rebuilt.image) as c:
        source = c.run("sh", "-c", "tail -n1 /opt/venv/lib/python3*/site-packages/kubecrawl/__init__.py")
    assert source.stdout.strip() == change

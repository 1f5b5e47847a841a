"""The harness's cached artefacts are built safely when many pods need them at once (issue 13)."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.e2e.kubeharness.cachefiles import build_once, write_atomic
from tests.e2e.kubeharness.runtime import VenvRuntime


def _all_at_once(n: int, fn) -> list[object]:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except BaseException as exc:  # collected and asserted on below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_shim_builds_once_from_many_threads_into_an_empty_cache(tmp_path: Path) -> None:
    cache = tmp_path / "empty-cache" / "shim"  # does not exist yet: the first caller creates it
    runtimes = [VenvRuntime(shim_dir=cache) for _ in range(12)]  # one per pod, as the node has
    it = iter(runtimes)
    lock = threading.Lock()

    def shim() -> Path:
        with lock:
            runtime = next(it)
        return runtime.shim()

    results = _all_at_once(12, shim)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    paths = {str(r) for r in results}
    assert len(paths) == 1, paths
    built = Path(paths.pop())
    assert built.read_bytes()[:4] == b"\x7fELF"
    assert built.stat().st_mode & 0o005 == 0o005, "a container's non-root user must read and map the shim"
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [built.name], "temp files left behind"


def test_build_once_runs_the_build_a_single_time(tmp_path: Path) -> None:
    calls: list[int] = []

    def build(tmp: Path) -> None:
        calls.append(1)
        tmp.write_text("built")

    out = tmp_path / "artefact"
    results = _all_at_once(16, lambda: build_once(out, build))
    assert all(r == out for r in results), results
    assert calls == [1]
    assert out.read_text() == "built"


def test_failed_build_leaves_nothing_and_the_next_caller_retries(tmp_path: Path) -> None:
    out = tmp_path / "artefact"

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("compiler died")

    results = _all_at_once(4, lambda: build_once(out, broken))
    assert all(isinstance(r, RuntimeError) for r in results)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    assert build_once(out, lambda tmp: tmp.write_text("ok")).read_text() == "ok"


def test_concurrent_writers_never_tear_a_file(tmp_path: Path) -> None:
    path = tmp_path / "hosts" / "ns.hosts"
    contents = [f"{i}\n" * 5000 for i in range(8)]
    results = _all_at_once(8, lambda: [write_atomic(path, c) for c in contents])
    assert not [r for r in results if isinstance(r, BaseException)]
    assert path.read_text() in contents
    assert path.stat().st_mode & 0o004, "containers read the hosts files as other users"


def test_a_cached_artefact_left_unreadable_is_repaired(tmp_path: Path) -> None:
    out = tmp_path / "shim.so"
    out.write_bytes(b"\x7fELF")
    out.chmod(0o711)  # what the first cache-safe harness left behind: not readable by a container user
    assert build_once(out, lambda tmp: tmp.write_text("never rebuilt")) == out
    assert out.stat().st_mode & 0o755 == 0o755
    assert out.read_bytes() == b"\x7fELF"

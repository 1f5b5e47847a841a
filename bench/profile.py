"""Where a contender's CPU goes (kubecrawl's above all): one profiled crawl (py-spy or pyinstrument, both from the bench venv).

py-spy samples the crawl process from outside (no instrumentation overhead in the target); its raw
collapsed stacks are folded here into self and inclusive time per function and per library.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from .venv import VENV_DIR, site_packages, tool

log = logging.getLogger(__name__)

#: libraries reported separately; a frame belongs to the first of these among its file's path components
LAYERS = (
    "kubecrawl",
    "httpx_aiohttp",
    "httpx",
    "httpcore",
    "aiohttp",
    "yarl",
    "multidict",
    "parsel",
    "cssselect",
    "lxml",
    "w3lib",
    "pydantic",
    "orjson",
    "asyncio",
    "logging",
    "urllib",
    "scrapy",
    "twisted",
)
_SPIDERS = ("kc_spider.py", "raw_loop.py", "scrapy_run.py", "benchreport.py")


def layer_of(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> the library it belongs to."""
    _, _, loc = frame.rpartition(" (")
    path = loc.rsplit(":", 1)[0]
    if not path:
        return "native/other"
    parts = path.replace("\\", "/").split("/")
    if parts[-1] in _SPIDERS:
        return "bench contender code"
    for part in parts[:-1]:
        if part in LAYERS:
            return part
    return "stdlib/other"


def stage_of(frames: list[str]) -> str:
    """The crawl stage a sample belongs to, from its whole stack (kubecrawl's and the raw loops' frames)."""
    stack = ";".join(frames)
    leaf = frames[-1]
    if "Runner.run" not in stack and "CrawlerProcess" not in stack:
        return "start-up: imports, settings, clients, TLS contexts"
    if "Downloader.fetch" in stack or "fetch_httpx" in stack or "run.<locals>.fetch" in stack:
        if "selector_events.py" in leaf:
            return "HTTP: socket send/receive (kernel, loopback)"
        for lib, name in (
            ("httpx_aiohttp/", "HTTP: httpx-aiohttp adapter"),
            ("httpx/", "HTTP: httpx models"),
            ("kubecrawl/", "HTTP: kubecrawl downloader"),
        ):
            if f"({lib}" in leaf or f"/{lib}" in leaf:
                return name
        return "HTTP: aiohttp client"
    if "create_root_node" in stack or "document_fromstring" in stack:
        return "HTML parse (lxml)"
    if "Response.encoding" in stack or "decode_body" in stack:
        return "encoding detection"
    if "urljoin" in stack or "urlparse (urllib" in stack or "urlsplit (urllib" in stack:
        return "links: urljoin"
    if "follow_all" in stack or "Request.__init__ (kubecrawl" in stack or "xpath" in leaf.lower():
        return "links: extract, make requests"
    if "ItemRecord" in stack or "pipelines" in stack:
        return "items: fingerprint, serialise"
    if "_flush" in stack or "commit" in stack or "fingerprint" in stack:
        return "store: commit, dedup, fingerprints"
    if "selector_events.py" in leaf:
        return "HTTP: socket send/receive (kernel, loopback)"
    if "aiohttp/" in leaf:
        return "HTTP: aiohttp client"
    if "kubecrawl/" in stack:
        return "engine: scheduling, callbacks, outputs"
    return "event loop, other"


def stages(raw: str) -> tuple[Counter[str], int]:
    """Samples per crawl stage (see :func:`stage_of`) and the total."""
    out: Counter[str] = Counter()
    total = 0
    for frames, n in _samples(raw):
        out[stage_of(frames)] += n
        total += n
    return out, total


def _samples(raw: str) -> list[tuple[list[str], int]]:
    out = []
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if frames:
            out.append((frames, int(count)))
    return out


def fold(raw: str) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """py-spy raw output -> (self samples per function, inclusive per function, self per layer, total)."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    total = 0
    for frames, n in _samples(raw):
        total += n
        self_t[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
        # attribute the sample to the innermost frame of a named library (C code runs under its caller)
        layers[layer_of(frames[-1])] += n
    return self_t, incl, layers, total


def format_profile(raw: str, top: int = 30) -> str:
    self_t, incl, layers, total = fold(raw)
    if not total:
        return "no samples\n"
    by_stage, _ = stages(raw)
    out = [f"{total} samples\n", "time by crawl stage:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_stage.most_common()]
    out.append("\nself time by library:")
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in layers.most_common()]
    out.append(f"\ntop {top} functions by self time:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_t.most_common(top)]
    out.append(f"\ntop {top} functions by inclusive time:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    return "\n".join(out) + "\n"


def profile_contender(name: str, kind: str, cmd: list[str], env: dict[str, str], workdir: Path) -> Path:
    """Run one contender once under ``kind``; print the folded profile; return the report path."""
    full_env = {**os.environ, **env, "KC_BENCH_RESULT": str(workdir / "profile-result.json")}
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    if kind == "py-spy":
        raw_path = workdir / "pyspy.txt"
        subprocess.run(
            [
                str(tool("py-spy")),
                "record",
                "--format",
                "raw",
                "--function",
                "--nonblocking",
                "--rate",
                "250",
                "-o",
                str(raw_path),
                "--",
                *cmd,
            ],
            env=full_env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        text = format_profile(raw_path.read_text())
        out = results / f"profile-{name}-pyspy.txt"
        (results / f"profile-{name}-pyspy.raw").write_text(raw_path.read_text())
    else:
        # pyinstrument is borrowed from the bench venv onto the end of the project interpreter's path
        full_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [full_env.get("PYTHONPATH"), str(site_packages(VENV_DIR))])
        )
        out = results / f"profile-{name}-pyinstrument.txt"
        subprocess.run(
            [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(out), *cmd],
            env=full_env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        text = out.read_text()
    out.write_text(text)
    sys.stdout.write(f"\nprofile of one {name} run ({kind}), also in {out}:\n{text}")
    return out

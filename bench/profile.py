"""Where kubecrawl's CPU goes: one profiled crawl (py-spy or pyinstrument, both from the bench venv).

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

#: library a frame belongs to, by a fragment of its file path (first match wins)
LAYERS = (
    ("kubecrawl", "/kubecrawl/"), ("bench spider", "kc_spider.py"), ("httpx_aiohttp", "/httpx_aiohttp/"),
    ("httpx", "/httpx/"), ("httpcore", "/httpcore/"), ("aiohttp", "/aiohttp/"), ("yarl", "/yarl/"),
    ("multidict", "/multidict/"), ("parsel", "/parsel/"), ("cssselect", "/cssselect/"), ("lxml", "/lxml/"),
    ("w3lib", "/w3lib/"), ("pydantic", "/pydantic"), ("orjson", "orjson"), ("asyncio", "/asyncio/"),
    ("logging", "/logging/"), ("urllib", "/urllib/"),
)


def layer_of(frame: str) -> str:
    for name, frag in LAYERS:
        if frag in frame:
            return name
    if "(" not in frame:
        return "native/other"
    return "stdlib/other"


def fold(raw: str) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """py-spy raw output -> (self samples per function, inclusive per function, self per layer, total)."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        if not frames:
            continue
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
    out = [f"{total} samples\n", "self time by library:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in layers.most_common()]
    out.append(f"\ntop {top} functions by self time:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_t.most_common(top)]
    out.append(f"\ntop {top} functions by inclusive time:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    return "\n".join(out) + "\n"


def profile_kubecrawl(kind: str, cmd: list[str], env: dict[str, str], workdir: Path,
                      bench_python: Path | None = None) -> Path:
    """Run the kubecrawl contender once under ``kind``; print the folded profile; return the report path."""
    full_env = {**os.environ, **env, "KC_BENCH_RESULT": str(workdir / "profile-result.json")}
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    if kind == "py-spy":
        raw_path = workdir / "pyspy.txt"
        subprocess.run([str(tool("py-spy")), "record", "--format", "raw", "--function", "--nonblocking",
                        "--rate", "250", "-o", str(raw_path), "--", *cmd], env=full_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        text = format_profile(raw_path.read_text())
        out = results / "profile-kubecrawl-pyspy.txt"
        (results / "profile-kubecrawl-pyspy.raw").write_text(raw_path.read_text())
    else:
        # pyinstrument is borrowed from the bench venv onto the end of the project interpreter's path
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [full_env.get("PYTHONPATH"), str(site_packages(VENV_DIR))]))
        out = results / "profile-kubecrawl-pyinstrument.txt"
        subprocess.run([sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(out), *cmd], env=full_env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        text = out.read_text()
    out.write_text(text)
    sys.stdout.write(f"\nprofile of one kubecrawl run ({kind}), also in {out}:\n{text}")
    return out

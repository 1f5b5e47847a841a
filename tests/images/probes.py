"""Checks run *inside* an image (python -c ...), kept here so the tests read as what they check."""

from __future__ import annotations

# Prints JSON: build tools on PATH, caches and build leftovers present, setuptools importable.
LEFTOVERS = r"""
import importlib.util, json, os, shutil
tools = ["gcc", "cc", "c++", "g++", "make", "ld", "as", "cpp", "clang", "rustc", "cargo"]
caches = ["/root/.cache", "/root/.cache/pip", "/home/kubecrawl/.cache", "/src", "/tmp/requirements.txt",
          "/var/cache/apt/archives/partial"]
debs = [p for p in os.listdir("/var/cache/apt/archives") if p.endswith(".deb")] if os.path.isdir("/var/cache/apt/archives") else []
print(json.dumps({
    "tools": {t: shutil.which(t) for t in tools if shutil.which(t)},
    "caches": [c for c in caches if os.path.exists(c) and (os.path.isfile(c) or os.listdir(c))],
    "debs": debs,
    "setuptools": importlib.util.find_spec("setuptools") is not None,
    "venv_headers": [os.path.join(d, f) for d, _, fs in os.walk("/opt/venv/include") for f in fs],
}))
"""

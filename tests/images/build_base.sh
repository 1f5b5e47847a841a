#!/usr/bin/env bash
# Build, or reuse, a local stand-in for the Python base image that Dockerfile.worker and
# Dockerfile.operator start FROM, so that `podman build --pull=never` works on a machine with no
# registry access. The stand-in is a test device only: the Dockerfiles never depend on it.
#
# The rootfs is made by debootstrap (Debian bookworm, the same Python 3.11 as the official
# python:3.11-slim-bookworm image), cached as a tarball under ~/.cache/kubecrawl-images/ and
# imported under the exact name the Dockerfiles use. It is rebuilt only when its recipe changes.
#
# Usage: tests/images/build_base.sh        (prints the image name on its last line)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${KUBECRAWL_IMAGES_CACHE:-$HOME/.cache/kubecrawl-images}"
MIRROR="${DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}"

# The name the Dockerfiles build FROM (their `ARG PYTHON_IMAGE=` default); both must agree.
BASE_IMAGE="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$ROOT/Dockerfile.worker" | head -n1)"
OPERATOR_BASE="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$ROOT/Dockerfile.operator" | head -n1)"
if [[ -z "$BASE_IMAGE" || "$BASE_IMAGE" != "$OPERATOR_BASE" ]]; then
    echo "Dockerfile.worker and Dockerfile.operator must declare the same 'ARG PYTHON_IMAGE=' default" >&2
    exit 2
fi
case "$BASE_IMAGE" in */*) FULL_NAME="$BASE_IMAGE" ;; *) FULL_NAME="docker.io/library/$BASE_IMAGE" ;; esac

# What the official image has that the Dockerfiles rely on: `python` (python-is-python3),
# `python -m venv` with pip (python3-venv, python3-pip), CA certificates, useradd/groupadd (passwd).
PACKAGES="python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd"
RECIPE_VERSION=2
RECIPE="$(printf '%s\n' "$RECIPE_VERSION" "$PACKAGES" "$FULL_NAME" "$MIRROR" | sha256sum | cut -c1-16)"

for tool in podman debootstrap; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y buildah podman debootstrap" >&2; exit 2; }
done

current="$(podman image inspect --format '{{ index .Labels "io.kubecrawl.standin-recipe" }}' "$FULL_NAME" 2>/dev/null || true)"
if [[ "$current" == "$RECIPE" ]]; then
    echo "stand-in base is current (recipe $RECIPE)" >&2
    echo "$FULL_NAME"
    exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"   # one debootstrap at a time into the shared cache
flock 9
TARBALL="$CACHE/standin-$RECIPE.tar"
if [[ ! -s "$TARBALL" ]]; then
    WORK="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
    echo "debootstrap bookworm into $WORK/rootfs" >&2
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$WORK/rootfs" "$MIRROR" >&2
    # Keep the stand-in as lean as the official slim image: no apt lists, caches or docs.
    rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/"*.bin \
        "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/usr/share/doc/"* \
        "$WORK/rootfs/usr/share/man/"* "$WORK/rootfs/usr/share/locale/"*
    tar -C "$WORK/rootfs" --numeric-owner -cf "$WORK/standin.tar" .
    mv "$WORK/standin.tar" "$TARBALL"
fi

podman import \
    --change "LABEL io.kubecrawl.standin-recipe=$RECIPE" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change 'CMD ["python3"]' \
    "$TARBALL" "$FULL_NAME" >&2
# Older stand-in tarballs are useless once the recipe changes.
find "$CACHE" -maxdepth 1 -name 'standin-*.tar' ! -name "standin-$RECIPE.tar" -delete
echo "$FULL_NAME"

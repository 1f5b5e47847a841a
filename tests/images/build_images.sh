#!/usr/bin/env bash
# Build the worker and/or operator image from the repository's own Dockerfiles with podman, as a
# user with Docker would (`docker build -f Dockerfile.worker .`), on a machine with no registry:
# the Python base comes from tests/images/build_base.sh (a local stand-in, never pulled).
#
#   tests/images/build_images.sh [worker|operator|all] [CONTEXT]
#
# Build-time only, never in the image: the host's CA bundle is mounted for the builder stage's
# `pip install` (PIP_CERT, a builder-stage ARG), so pip trusts what the host trusts.
# Prints the built image names, one a line, on stdout.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
WHAT="${1:-all}"
CONTEXT="${2:-$(cd "$HERE/../.." && pwd)}"
VERSION="${KUBECRAWL_IMAGE_VERSION:-0.1.0}"
# Image names are $PREFIX/worker and $PREFIX/operator (tests use another prefix for throwaway builds).
PREFIX="${KUBECRAWL_IMAGE_PREFIX:-kubecrawl}"
CA_BUNDLE="${KUBECRAWL_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

"$HERE/build_base.sh" >/dev/null

build() {
    local component="$1" tag="$PREFIX/$1:$VERSION"
    local args=(build --pull=never --isolation=chroot --network=host --layers
                --build-arg "VERSION=$VERSION" -f "$CONTEXT/Dockerfile.$component" -t "$tag")
    if [[ -s "$CA_BUNDLE" ]]; then
        args+=(--volume "$(dirname "$CA_BUNDLE"):$(dirname "$CA_BUNDLE"):ro" --build-arg "PIP_CERT=$CA_BUNDLE")
    fi
    podman "${args[@]}" "$CONTEXT" >&2
    echo "localhost/$tag"
}

case "$WHAT" in
    worker|operator) build "$WHAT" ;;
    all) build worker; build operator ;;
    *) echo "usage: $0 [worker|operator|all] [CONTEXT]" >&2; exit 2 ;;
esac

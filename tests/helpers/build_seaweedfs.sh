#!/usr/bin/env bash
# Build (once) and cache SeaweedFS's `weed`, the S3-compatible server the S3 sink tests run against.
#
#   tests/helpers/build_seaweedfs.sh            # build unless cached, print nothing else on stdout
#   tests/helpers/build_seaweedfs.sh print-bin  # print the cached binary's path (built or not)
#
# The binary lands in ${KUBECRAWL_SEAWEEDFS_CACHE:-~/.cache/kubecrawl-seaweedfs}/<version>/bin/weed
# and is reused by later runs. SeaweedFS (Apache-2.0) cannot be `go install`ed: its go.mod has replace
# directives, which are ignored in a dependency. So we download the module from the Go module proxy
# (`go mod download -json` gives its directory in the read-only module cache), copy that directory
# and build ./weed inside the copy, where the replaces apply. ~15 min on 2 busy cores the first time.
set -euo pipefail

SEAWEEDFS_VERSION="${KUBECRAWL_SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
MODULE="github.com/seaweedfs/seaweedfs"
CACHE_ROOT="${KUBECRAWL_SEAWEEDFS_CACHE:-${HOME}/.cache/kubecrawl-seaweedfs}"
CACHE="${CACHE_ROOT}/${SEAWEEDFS_VERSION}"
BIN="${CACHE}/bin/weed"

if [ "${1:-build}" = print-bin ]; then echo "${BIN}"; exit 0; fi

if [ -z "${GO:-}" ]; then
    if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
    elif [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go
    else GO=""
    fi
fi

log() { printf '[seaweedfs-build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -x "${BIN}" ]; then log "weed cached: ${BIN}"; exit 0; fi
if [ -z "${GO}" ]; then
    log "Go is not installed (looked for \`go\` on PATH and /usr/local/go/bin/go); cannot build SeaweedFS"
    exit 3
fi

mkdir -p "${CACHE}/bin"
# One build at a time: a second run (make test and a fixture, two worktrees) waits, then finds it.
exec 9>"${CACHE}/.build.lock"
flock 9
if [ -x "${BIN}" ]; then log "weed cached (built while we waited): ${BIN}"; exit 0; fi

start=$SECONDS
work="$(mktemp -d "${CACHE}/.build.XXXXXX")"
trap 'chmod -R u+w "${work}" 2>/dev/null; rm -rf "${work}"' EXIT
log "downloading ${MODULE}@${SEAWEEDFS_VERSION} from the Go module proxy"
dir="$(cd "${work}" && GOFLAGS=-mod=mod "${GO}" mod download -json "${MODULE}@${SEAWEEDFS_VERSION}" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [ ! -d "${dir}" ]; then log "could not download ${MODULE}@${SEAWEEDFS_VERSION}"; exit 1; fi
cp -r "${dir}" "${work}/src"
chmod -R u+w "${work}/src"   # the module cache is read-only; the build writes nothing there, but rm must work
log "building ./weed in a copy of ${dir} (first build takes ~15 min on 2 busy cores)"
(cd "${work}/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod "${GO}" build -trimpath -ldflags "-s -w" \
    -o "${work}/weed" ./weed)
chmod 0755 "${work}/weed"
mv "${work}/weed" "${BIN}"   # same filesystem: a reader sees no binary or the whole one
log "weed built in $((SECONDS - start))s: ${BIN} ($(du -h "${BIN}" | cut -f1)), $("${BIN}" version 2>/dev/null | head -1)"

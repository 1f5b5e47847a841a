#!/usr/bin/env bash
# Build (once) and cache the Kubernetes control plane used by the e2e suite.
#
#   tests/e2e/build.sh helm     # only helm
#   tests/e2e/build.sh k8s      # only kube-apiserver, kube-controller-manager, kubectl
#   tests/e2e/build.sh all      # helm first, then the k8s binaries (default)
#   tests/e2e/build.sh etcd     # only make sure etcd is installed (apt)
#   tests/e2e/build.sh print-bin  # print the cache's bin directory
#
# Binaries land in ${KUBECRAWL_E2E_CACHE:-~/.cache/kubecrawl-e2e}/v1.33.5/bin and are reused by later runs.
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every k8s.io/* staging module with
# ./staging/src/..., which is ignored in a dependency. So we write a small build module that requires
# k8s.io/kubernetes and replaces each staging module it lists with the published v0.MINOR.PATCH.
set -euo pipefail

K8S_VERSION="${KUBECRAWL_E2E_K8S_VERSION:-v1.33.5}"
HELM_VERSION="${KUBECRAWL_E2E_HELM_VERSION:-v3.19.0}"
CACHE_ROOT="${KUBECRAWL_E2E_CACHE:-${HOME}/.cache/kubecrawl-e2e}"
CACHE="${CACHE_ROOT}/${K8S_VERSION}"
BIN="${CACHE}/bin"
SRC="${CACHE}/src"

if [ -z "${GO:-}" ]; then
    if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
    elif [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go
    else GO=""
    fi
fi

log() { printf '[e2e-build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

need_go() {
    if [ -z "${GO}" ]; then
        log "Go is not installed (looked for \`go\` on PATH and /usr/local/go/bin/go); cannot build the control plane"
        exit 3
    fi
}

build_helm() {
    if [ -x "${BIN}/helm" ]; then log "helm cached: ${BIN}/helm"; return; fi
    need_go
    mkdir -p "${BIN}"
    log "building helm ${HELM_VERSION}"
    local start=$SECONDS
    local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    GOBIN="${BIN}.tmp-helm" CGO_ENABLED=0 "${GO}" install -ldflags "${ldflags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
    mv "${BIN}.tmp-helm/helm" "${BIN}/helm"
    rmdir "${BIN}.tmp-helm"
    log "helm built in $((SECONDS - start))s: $("${BIN}/helm" version --short)"
}

write_build_module() {
    # Generates ${SRC}/go.mod: require k8s.io/kubernetes, replace every staging module it lists.
    mkdir -p "${SRC}"
    local minor_patch="${K8S_VERSION#v1.}"   # 33.5
    local staging_version="v0.${minor_patch}"
    local kmod
    kmod="$(cd "${SRC}" && GOFLAGS=-mod=mod "${GO}" mod download -json "k8s.io/kubernetes@${K8S_VERSION}" \
        | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    if [ ! -f "${kmod}" ]; then log "could not download k8s.io/kubernetes@${K8S_VERSION}"; exit 1; fi
    # Lines like `k8s.io/api => ./staging/src/k8s.io/api` inside replace ( ... ).
    local staging
    staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "${kmod}" | sort -u)"
    if [ -z "${staging}" ]; then log "no staging replaces found in ${kmod}"; exit 1; fi
    {
        echo "module kubecrawl.local/e2e-k8s-build"
        echo
        echo "go 1.24"
        echo
        echo "require k8s.io/kubernetes ${K8S_VERSION}"
        echo
        echo "replace ("
        local m
        for m in ${staging}; do echo "	${m} => ${m} ${staging_version}"; done
        echo ")"
    } > "${SRC}/go.mod"
    log "build module with $(echo "${staging}" | wc -l) staging replaces at ${SRC}/go.mod"
}

build_k8s() {
    local targets=(kube-apiserver kube-controller-manager kubectl)
    local missing=()
    local t
    for t in "${targets[@]}"; do [ -x "${BIN}/${t}" ] || missing+=("${t}"); done
    if [ ${#missing[@]} -eq 0 ]; then log "kubernetes ${K8S_VERSION} binaries cached in ${BIN}"; return; fi
    need_go
    mkdir -p "${BIN}"
    local start=$SECONDS
    write_build_module
    local pkgs=()
    for t in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${t}"); done
    log "resolving modules for ${missing[*]}"
    (cd "${SRC}" && GOFLAGS=-mod=mod "${GO}" get "${pkgs[@]/%/@${K8S_VERSION}}")
    local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    local vflags=""
    local pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        vflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
        vflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
    done
    log "building ${missing[*]} (first build takes ~6 min on 2 cores)"
    (cd "${SRC}" && CGO_ENABLED=0 GOFLAGS=-mod=mod "${GO}" build -trimpath -ldflags "-s -w${vflags}" \
        -o "${BIN}.tmp-k8s/" "${pkgs[@]}")
    for t in "${missing[@]}"; do mv "${BIN}.tmp-k8s/${t}" "${BIN}/${t}"; done
    rmdir "${BIN}.tmp-k8s" 2>/dev/null || true
    log "kubernetes binaries built in $((SECONDS - start))s: $("${BIN}/kubectl" version --client 2>/dev/null | head -1)"
}

ensure_etcd() {
    if command -v etcd >/dev/null 2>&1; then log "etcd: $(command -v etcd)"; return; fi
    log "installing etcd-server from apt"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    ${sudo} apt-get update -qq
    DEBIAN_FRONTEND=noninteractive ${sudo} apt-get install -y -qq etcd-server >/dev/null
    # Debian starts the packaged service; the tests start their own etcd on free ports.
    ${sudo} systemctl disable --now etcd >/dev/null 2>&1 || true
}

ensure_redis() {
    if command -v redis-server >/dev/null 2>&1; then return; fi
    log "installing redis-server from apt"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    ${sudo} apt-get update -qq
    DEBIAN_FRONTEND=noninteractive ${sudo} apt-get install -y -qq redis-server >/dev/null
}

# Builds into the shared cache hold a lock, so two runs (or a fixture and `make e2e-build`)
# started at once build once and never move each other's half-built files.
if [ "${1:-all}" != print-bin ]; then
    mkdir -p "${CACHE}"
    exec 9>"${CACHE}/.build.lock"
    flock 9
fi

case "${1:-all}" in
    helm) build_helm ;;
    k8s) build_k8s ;;
    etcd) ensure_etcd ;;
    all) build_helm; ensure_etcd; ensure_redis; build_k8s ;;
    print-bin) echo "${BIN}" ;;
    *) echo "usage: $0 [helm|k8s|etcd|all|print-bin]" >&2; exit 2 ;;
esac

# Short names for the things people do here. Every target sets up what it needs first.
.PHONY: setup setup-venv test test-fast lint demo bench e2e-build s3-build

setup:
	./scripts/setup.sh

setup-venv:
	./scripts/setup.sh --venv-only

# The real Kubernetes control plane and helm for the e2e/chart tests, built from Go modules
# (about 10 minutes on 2 cores the first time; cached in ~/.cache/kubecrawl-e2e).
e2e-build:
	@if command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; then PATH="$$PATH:/usr/local/go/bin" bash tests/e2e/build.sh all; \
	else echo "e2e-build: Go not found; the e2e tests will be skipped (CI requires them)"; fi

# SeaweedFS's weed, the S3-compatible server of the s3:// feed tests, built from its Go module
# (about 15 minutes on 2 busy cores the first time; cached in ~/.cache/kubecrawl-seaweedfs).
s3-build:
	@if command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; then PATH="$$PATH:/usr/local/go/bin" bash tests/helpers/build_seaweedfs.sh; \
	else echo "s3-build: Go not found; the S3 feed tests will be skipped (CI requires them)"; fi

# The whole test suite: unit, integration (real redis-server and HTTP servers), operator,
# chart, and e2e against a real kube-apiserver built from Go modules (cached after the first build).
test: setup e2e-build s3-build
	.venv/bin/python -m pytest -q -rs

# Unit + integration only (no Kubernetes control plane, no image builds).
test-fast: setup
	.venv/bin/python -m pytest -q tests/unit tests/contract tests/integration

lint: setup
	.venv/bin/ruff check worker operator tests bench
	.venv/bin/ruff format --check worker operator tests bench
	.venv/bin/mypy

demo: setup-venv
	.venv/bin/kubecrawl demo -o demo-items.jsonl

bench: setup-venv
	.venv/bin/python -m bench local

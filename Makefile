# Short names for the things people do here. Every target sets up what it needs first.
.PHONY: setup test test-fast lint demo bench e2e-build

setup:
	./scripts/setup.sh

# The whole test suite: unit, integration (real redis-server and HTTP servers), operator,
# chart, and e2e against a real kube-apiserver built from Go modules (cached after the first build).
test: setup
	.venv/bin/python -m pytest -q -rs

# Unit + integration only (no Kubernetes control plane, no image builds).
test-fast: setup
	.venv/bin/python -m pytest -q tests/unit tests/integration

lint: setup
	.venv/bin/ruff check worker operator tests bench
	.venv/bin/ruff format --check worker operator tests bench
	.venv/bin/mypy

demo: setup
	.venv/bin/kubecrawl demo -o demo-items.jsonl

bench: setup
	.venv/bin/python -m bench local

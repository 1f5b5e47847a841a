#!/usr/bin/env bash
# Run the e2e suite against a real control plane: build (or reuse the cached) binaries, then pytest.
#
#   tests/e2e/run.sh [pytest args...]
#
# In CI (CI=1, or KUBECRAWL_E2E_REQUIRED=1) a skipped e2e test is a failure: the suite must really run.
# The outcome of every e2e test is written to $KUBECRAWL_E2E_REPORT (default: .e2e-report.json).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
if [ -n "${CI:-}" ]; then export KUBECRAWL_E2E_REQUIRED="${KUBECRAWL_E2E_REQUIRED:-1}"; fi
export KUBECRAWL_E2E_REPORT="${KUBECRAWL_E2E_REPORT:-$PWD/.e2e-report.json}"
rm -f "${KUBECRAWL_E2E_REPORT}"

if [ "${KUBECRAWL_E2E_REQUIRED:-0}" = 1 ] || command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ]; then
    bash tests/e2e/build.sh all
fi

status=0
"${PY}" -m pytest tests/e2e "$@" || status=$?

if [ "${KUBECRAWL_E2E_REQUIRED:-0}" = 1 ]; then
    "${PY}" tests/e2e/check_report.py "${KUBECRAWL_E2E_REPORT}" || status=1
fi
exit "${status}"

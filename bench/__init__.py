"""kubecrawl benchmarks: ``python -m bench local`` and ``python -m bench distributed`` (see docs/benchmarks.md)."""

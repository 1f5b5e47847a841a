"""The documented chart options, each as a values override: every test runs over all of them."""

from __future__ import annotations

from typing import Any

DIGEST = "sha256:" + "ab" * 32

# name -> values overrides (None = the chart's defaults). Each is documented in docs/install.md.
OPTIONS: dict[str, dict[str, Any] | None] = {
    "defaults": None,
    "namespaced": {"watch": {"mode": "namespaces", "namespaces": ["crawls-a", "crawls-b"]}},
    "ha": {"operator": {"replicas": 2, "image": {"repository": "kubecrawl/operator"}}},
    "no-leader-election": {"operator": {"replicas": 1, "leaderElection": {"enabled": False}}},
    "namespaced-ha": {
        "operator": {"replicas": 3, "image": {"repository": "kubecrawl/operator"}},
        "watch": {"mode": "namespaces", "namespaces": ["crawls"]},
    },
    "podmonitor": {"podMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "images-by-digest": {
        "operator": {"replicas": 1, "image": {"repository": "registry.example/kc/operator", "digest": DIGEST}},
        "worker": {"image": {"repository": "registry.example/kc/worker", "tag": "1.2.3"}},
        "imagePullSecrets": [{"name": "regcred"}],
    },
    "existing-serviceaccount": {"serviceAccount": {"create": False, "name": "crawler-operator"}},
    "crd-managed-outside": {"crds": {"install": False}},
    "interval-and-scheduling": {
        "operator": {
            "replicas": 1,
            "image": {"repository": "kubecrawl/operator"},
            "reconcileIntervalSeconds": 30,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "crawl", "effect": "NoSchedule"}],
            "extraEnv": [{"name": "KUBECRAWL_EXTRA", "value": "1"}],
        }
    },
}

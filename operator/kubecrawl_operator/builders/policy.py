"""Cluster hygiene around a crawl's workers: an egress NetworkPolicy and the slaves' PodDisruptionBudget.

The NetworkPolicy is a second wall behind the worker's SSRF guard: even a worker that was tricked into
fetching an internal address (a bug, a DNS rebinding race) cannot reach private ranges, the node's
link-local metadata endpoint or the cluster's own services, only DNS, its own Redis and public addresses.
It is enforced only where the cluster's network plugin implements NetworkPolicy.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from kubecrawl_operator.models import CrawlSpec
from kubecrawl_operator.naming import REDIS_PORT, CrawlRef, metadata, selector_labels

#: Never reachable from a worker unless allowed explicitly: every IPv4 range the worker's SSRF guard
#: (kubecrawl.netguard.is_internal) refuses: private, CGNAT, loopback, link-local (cloud metadata),
#: documentation, benchmarking, multicast and reserved. A test checks the guard refuses nothing outside.
DENIED_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
#: IPv6: only global unicast (2000::/3) is public; inside it the IETF protocol assignments (2001::/23,
#: with Teredo and ORCHID), documentation and 6to4 (which embeds IPv4 addresses, private ones too).
PUBLIC_V6 = "2000::/3"
DENIED_V6 = ("2001::/23", "2001:db8::/32", "2002::/16")
WORKER_COMPONENTS = ("seed", "round", "slave")


def worker_network_policy_name(crawl: CrawlRef) -> str:
    return f"{crawl.name}-workers"


def slave_pdb_name(crawl: CrawlRef) -> str:
    return f"{crawl.name}-slave"


def _allowed_networks(spec: CrawlSpec) -> list[str]:
    """spec.networkPolicy.allowCidrs plus every IP/CIDR entry of ssrfAllow (host names cannot be)."""
    found: list[str] = []
    for entry in [*spec.network_policy.allow_cidrs, *spec.ssrf_allow]:
        try:
            net = str(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue  # a host name in ssrfAllow: a NetworkPolicy can only name addresses
        if net not in found:
            found.append(net)
    return found


def _public(cidr: str, denied: tuple[str, ...], extra: list[str]) -> dict[str, Any]:
    block = ipaddress.ip_network(cidr)
    excepts = [*denied]
    for entry in extra:
        net = ipaddress.ip_network(entry, strict=False)
        if net.version == block.version and net.subnet_of(block) and str(net) not in excepts:  # type: ignore[arg-type]
            excepts.append(str(net))
    return {"ipBlock": {"cidr": cidr, "except": excepts}}


def _redis_egress(crawl: CrawlRef, spec: CrawlSpec) -> dict[str, Any]:
    if spec.redis.url is None:
        return {
            "to": [{"podSelector": {"matchLabels": selector_labels(crawl, "redis")}}],
            "ports": [{"protocol": "TCP", "port": REDIS_PORT}],
        }
    # An external Redis may well live on a private address: its port is open to any address.
    port = urlsplit(spec.redis.url).port or REDIS_PORT
    return {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def worker_network_policy(crawl: CrawlRef, spec: CrawlSpec) -> dict[str, Any] | None:
    """Egress of the seed, round and slave pods: DNS, their Redis, public addresses and allowCidrs."""
    if not spec.network_policy.enabled:
        return None
    deny = [str(ipaddress.ip_network(c, strict=False)) for c in spec.network_policy.deny_cidrs]
    egress: list[dict[str, Any]] = [
        # DNS anywhere: cluster DNS is a Service (DNAT to kube-dns pods) or a node-local cache on a
        # link-local address, which a pod selector could not name.
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        _redis_egress(crawl, spec),
        {"to": [_public("0.0.0.0/0", DENIED_V4, deny), _public(PUBLIC_V6, DENIED_V6, deny)]},
    ]
    allowed = _allowed_networks(spec)
    if allowed:
        egress.append({"to": [{"ipBlock": {"cidr": net}} for net in allowed]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(crawl, worker_network_policy_name(crawl), "workers"),
        "spec": {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "kubecrawl", "app.kubernetes.io/instance": crawl.name},
                "matchExpressions": [
                    {"key": "app.kubernetes.io/component", "operator": "In", "values": list(WORKER_COMPONENTS)}
                ],
            },
            "policyTypes": ["Egress"],
            "egress": egress,
        },
    }


def slave_disruption_budget(crawl: CrawlRef, spec: CrawlSpec) -> dict[str, Any] | None:
    """At most `maxUnavailable` slaves evicted at once by a drain; a slave hands its leases back first."""
    if not spec.disruption_budget.enabled:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(crawl, slave_pdb_name(crawl), "slave"),
        "spec": {
            "maxUnavailable": spec.disruption_budget.max_unavailable,
            "selector": {"matchLabels": selector_labels(crawl, "slave")},
            # Evicting a slave that is not Ready (crash-looping, starting) never needs the budget.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }

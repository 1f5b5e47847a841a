"""The workers' egress NetworkPolicy and the slaves' PodDisruptionBudget (builders/policy.py).

The policy's "public internet" rule is checked against the worker's own SSRF guard
(`kubecrawl.netguard.is_internal`, a peer's behaviour, not this module's lists): every address the guard
refuses must be outside what the policy lets a worker reach, for addresses hypothesis picks at random
and for the guard's classic bypass targets.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import kubernetes_validate
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubecrawl.netguard import is_internal
from kubecrawl_operator.builders import BuildContext, desired_children
from kubecrawl_operator.builders.policy import slave_disruption_budget, worker_network_policy
from kubecrawl_operator.models import parse_spec
from kubecrawl_operator.naming import CrawlRef

CRAWL = CrawlRef(name="news", namespace="crawls", uid="0b6c6a5e-2f0c-4a8c-9a43-3b3f0d2c9e11")
RULES = {"name": "news", "start": {"urls": ["https://example.org/"]}, "callbacks": {"parse": {}}}


def policy(**spec: Any) -> dict[str, Any]:
    built = worker_network_policy(CRAWL, parse_spec({"spider": {"rules": RULES}, **spec}))
    assert built is not None
    return built


def reachable(pol: dict[str, Any], ip: str, port: int = 443) -> bool:
    """Would this NetworkPolicy let a selected pod connect to ip:port over TCP? (NetworkPolicy semantics:
    rules are a union; an ipBlock matches its cidr minus its excepts; a rule without `to` matches any peer.)"""
    addr = ipaddress.ip_address(ip)
    for rule in pol["spec"]["egress"]:
        ports = rule.get("ports")
        if ports and not any(p.get("protocol", "TCP") == "TCP" and p["port"] == port for p in ports):
            continue
        peers = rule.get("to")
        if not peers:
            return True
        for peer in peers:
            block = peer.get("ipBlock")
            if block is None:
                continue  # a pod selector: pods, not arbitrary addresses
            net = ipaddress.ip_network(block["cidr"])
            if addr.version != net.version or addr not in net:
                continue
            if not any(addr in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


@pytest.mark.parametrize("version", ["1.33", "1.37"])
def test_policy_and_budget_are_valid_kubernetes(version: str) -> None:
    for spec in ({}, {"ssrfAllow": ["10.2.0.0/16", "intranet.local"], "networkPolicy": {"denyCidrs": ["8.8.0.0/16"]}}):
        kubernetes_validate.validate(policy(**spec), version, strict=True)
    budget = slave_disruption_budget(CRAWL, parse_spec({"spider": {"rules": RULES}}))
    assert budget is not None
    kubernetes_validate.validate(budget, version, strict=True)


def test_workers_reach_dns_their_redis_and_the_internet_but_no_private_address() -> None:
    pol = policy()
    assert pol["spec"]["policyTypes"] == ["Egress"]
    selector = pol["spec"]["podSelector"]
    assert selector["matchLabels"] == {"app.kubernetes.io/name": "kubecrawl", "app.kubernetes.io/instance": "news"}
    assert selector["matchExpressions"][0]["values"] == ["seed", "round", "slave"]
    assert reachable(pol, "93.184.215.14") and reachable(pol, "2606:4700::6810:84e5", 80)
    assert reachable(pol, "10.96.0.10", 53), "DNS goes anywhere (cluster DNS Service, node-local cache)"
    for internal in ("10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "127.0.0.1", "100.64.0.1",
                     "::1", "fd00:ec2::254", "fe80::1", "::ffff:10.0.0.1", "2002:a00:1::1"):  # fmt: skip
        assert not reachable(pol, internal), internal
    (redis_rule,) = [r for r in pol["spec"]["egress"] if any("podSelector" in p for p in r.get("to", []))]
    assert redis_rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    assert redis_rule["ports"] == [{"protocol": "TCP", "port": 6379}]


def test_ssrf_allow_addresses_and_allow_cidrs_open_private_ranges_and_deny_cidrs_close_public_ones() -> None:
    pol = policy(
        ssrfAllow=["10.2.3.4", "intranet.example"],
        networkPolicy={"allowCidrs": ["192.168.7.0/24"], "denyCidrs": ["203.1.0.0/16", "2a00:1450::/32"]},
    )
    assert reachable(pol, "10.2.3.4") and not reachable(pol, "10.2.3.5")
    assert reachable(pol, "192.168.7.9")
    assert not reachable(pol, "203.1.2.3") and reachable(pol, "203.2.2.3")
    assert not reachable(pol, "2a00:1450::1")


def test_an_external_redis_port_is_open_to_any_address() -> None:
    pol = policy(redis={"url": "redis://10.9.9.9:6380/0"})
    assert reachable(pol, "10.9.9.9", 6380) and not reachable(pol, "10.9.9.9", 443)


def test_disabled_means_no_policy_and_no_budget_and_the_children_follow() -> None:
    spec = parse_spec(
        {"spider": {"rules": RULES}, "networkPolicy": {"enabled": False}, "disruptionBudget": {"enabled": False}}
    )
    kinds = [m["kind"] for m in desired_children(CRAWL, spec, BuildContext(default_image="w:1"), 1).mutable]
    assert "PodDisruptionBudget" not in kinds and kinds.count("NetworkPolicy") == 1  # only Redis' own


def test_budget_defaults_to_a_quarter_rounded_up_and_refuses_nonsense() -> None:
    budget = slave_disruption_budget(CRAWL, parse_spec({"spider": {"rules": RULES}}))
    assert budget is not None and budget["spec"]["maxUnavailable"] == "25%"
    assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "slave"
    two = slave_disruption_budget(
        CRAWL, parse_spec({"spider": {"rules": RULES}, "disruptionBudget": {"maxUnavailable": 2}})
    )
    assert two is not None and two["spec"]["maxUnavailable"] == 2
    for bad in ("half", "25", -1):
        with pytest.raises(pydantic.ValidationError, match=r"maxUnavailable|negative"):
            parse_spec({"spider": {"rules": RULES}, "disruptionBudget": {"maxUnavailable": bad}})
    with pytest.raises(pydantic.ValidationError, match="not-a-cidr"):
        parse_spec({"spider": {"rules": RULES}, "networkPolicy": {"allowCidrs": ["not-a-cidr"]}})


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_every_address_the_ssrf_guard_refuses_is_unreachable_through_the_policy(ip: Any) -> None:
    if is_internal(ip):
        assert not reachable(POLICY, str(ip)), f"{ip}: the SSRF guard refuses it, the NetworkPolicy lets it out"


BYPASS_TARGETS = [
    "0.0.0.0", "127.1.2.3", "169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192",
    "198.18.0.1", "224.0.0.251", "255.255.255.255", "::", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
    "64:ff9b::a00:1", "fd00:ec2::254", "2001:db8::1", "2001::1", "ff02::1",
]  # fmt: skip


@pytest.mark.parametrize("ip", BYPASS_TARGETS)
def test_classic_ssrf_targets_are_refused_by_both_walls(ip: str) -> None:
    assert is_internal(ipaddress.ip_address(ip)), f"{ip}: expected the guard to refuse it"
    assert not reachable(POLICY, ip)


POLICY = policy()


def test_the_policy_also_closes_what_the_guard_leaves_open() -> None:
    """Deprecated site-local IPv6 (fec0::/10) passes the guard (is_internal is False), not the policy."""
    assert not is_internal(ipaddress.ip_address("fec0::1"))
    assert not reachable(POLICY, "fec0::1")

"""Pod placement, settings that mean what they say, spider code from a ConfigMap, sinks, and the Redis
PVC's lifecycle (issue 18 §3-§6, issue 19's spec.output): the pure builders and checks, plus the Redis
reads of the operator against a real redis-server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from kubecrawl_operator.builders import desired_children
from kubecrawl_operator.builders.workers import SOURCE_DIR
from kubecrawl_operator.models import parse_spec
from kubecrawl_operator.naming import CrawlRef
from kubecrawl_operator.observe import delivery_problem, read_redis_extras
from kubecrawl_operator.phase import Observed, decide
from kubecrawl_operator.validation import check_spec
from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import OperatorProcess, RedisServer
from tests.operator.test_builders import CRAWL, CTX, RULES, SPECS, env_of

ROOT = Path(__file__).resolve().parents[2]


def children(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = parse_spec(raw)
    kids = desired_children(CRAWL, spec, CTX, 2)
    out = {m["kind"]: m for m in kids.mutable}
    out["Job"] = kids.seed_job
    if kids.cronjob:
        out["CronJob"] = kids.cronjob
    return out


def worker_templates(kids: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = [kids["Deployment"]["spec"]["template"], kids["Job"]["spec"]["template"]]
    if "CronJob" in kids:
        out.append(kids["CronJob"]["spec"]["jobTemplate"]["spec"]["template"])
    return out


# -- §3 placement -------------------------------------------------------------------------------


def test_pod_template_lands_on_seed_slave_and_round_pods_and_redis_gets_its_own() -> None:
    kids = children(SPECS["placed"])
    for template in worker_templates(kids):
        pod = template["spec"]
        assert pod["nodeSelector"] == {"pool": "crawlers"}
        assert pod["tolerations"] == [
            {"key": "dedicated", "operator": "Equal", "value": "crawl", "effect": "NoSchedule"}
        ]
        assert pod["affinity"]["nodeAffinity"]
        assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
        assert pod["priorityClassName"] == "batch-low"
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert pod["serviceAccountName"] == "crawler"
        assert template["metadata"]["labels"]["team"] == "search"
        # the operator's selector labels win over a user's label of the same name
        assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "news"
        assert template["metadata"]["annotations"]["cost-center"] == "42"
        assert "kubecrawl.io/redis-auth-hash" in template["metadata"]["annotations"]
        # the restricted profile is kept whatever the template asked for
        sc = pod["securityContext"]
        assert (sc["runAsNonRoot"], sc["runAsUser"], sc["seccompProfile"]) == (True, 10001, {"type": "RuntimeDefault"})
        assert pod["automountServiceAccountToken"] is False
    redis_pod = kids["StatefulSet"]["spec"]["template"]["spec"]
    assert redis_pod["nodeSelector"] == {"pool": "stateful"}
    assert redis_pod["securityContext"]["fsGroup"] == 2000
    assert redis_pod["securityContext"]["runAsNonRoot"] is True
    assert "tolerations" not in redis_pod


def test_a_weakening_security_context_is_ignored_and_said_in_a_condition() -> None:
    spec, problem = check_spec(SPECS["placed"])
    assert spec is not None and problem is None
    from kubecrawl_operator.builders.podtemplate import ignored_security

    ignored = ignored_security(spec.pod_template, "spec.podTemplate")
    assert ignored == [
        "spec.podTemplate.securityContext.runAsNonRoot=false",
        "spec.podTemplate.securityContext.runAsUser=0",
        "spec.podTemplate.securityContext.seccompProfile.type=Unconfined",
    ]
    decision = decide(Observed(spec=spec, security_ignored=tuple(ignored)))
    status, reason, message = decision.conditions["SecurityContextEnforced"]
    assert status and reason == "IgnoredWeakening" and "runAsUser=0" in message
    assert decide(Observed(spec=parse_spec(SPECS["rules"]))).conditions["SecurityContextEnforced"][0] is False


# -- §4 settings --------------------------------------------------------------------------------


def test_only_what_the_crawl_sets_reaches_the_pods() -> None:
    env = env_of(children(SPECS["rules"])["Deployment"])
    knobs = {k for k in env if k.startswith("KUBECRAWL_")}
    # nothing that would override the spider's custom_settings
    assert knobs == {
        "KUBECRAWL_ROLE",
        "KUBECRAWL_CRAWL",
        "KUBECRAWL_SPIDER",
        "KUBECRAWL_LOG_FORMAT",
        "KUBECRAWL_HEALTH_PORT",
        "KUBECRAWL_REDIS_URL",
        "KUBECRAWL_REDIS_PASSWORD",
    }
    # a setting given only in spec.settings is passed as given
    env = env_of(children({"spider": {"rules": RULES}, "settings": {"concurrency": "3", "log_format": "text"}})["Job"])
    assert env["KUBECRAWL_CONCURRENCY"] == "3" and env["KUBECRAWL_LOG_FORMAT"] == "text"


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"concurency": "3"}, "spec.settings.concurency is not a worker setting; did you mean 'concurrency'?"),
        ({"download_dealy": "1"}, "did you mean 'download_delay'?"),
        ({"robotstxt_obey": "false"}, "Scrapy's ROBOTSTXT_OBEY is 'obey_robots' here"),
        ({"zzzz": "1"}, "spec.settings.zzzz is not a worker setting (docs/settings.md"),
    ],
)
def test_an_unknown_settings_key_is_refused_naming_the_closest(settings: dict[str, str], needle: str) -> None:
    spec, problem = check_spec({"spider": {"rules": RULES}, "settings": settings})
    assert spec is None and problem is not None
    assert problem.reason == "UnknownSetting"
    assert needle in problem.message


def test_a_setting_given_twice_or_an_env_the_worker_does_not_know_is_refused() -> None:
    _spec, problem = check_spec(
        {"spider": {"rules": RULES}, "politeness": {"concurrency": 4}, "settings": {"concurrency": "8"}}
    )
    assert problem is not None and problem.reason == "InvalidSettings"
    assert "spec.settings.concurrency and spec.politeness.concurrency are both set" in problem.message
    _, problem = check_spec({"spider": {"rules": RULES}, "env": [{"name": "KUBECRAWL_CONCURENCY", "value": "1"}]})
    assert problem is not None and problem.reason == "UnknownSetting" and "'concurrency'" in problem.message
    _, problem = check_spec({"spider": {"rules": RULES}, "env": [{"name": "KUBECRAWL_ROLE", "value": "master"}]})
    assert problem is not None and problem.reason == "InvalidEnv"


def test_the_generated_worker_settings_list_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "operator" / "scripts" / "gen_worker_settings.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_env_env_from_spider_args_and_sink_secrets_reach_the_right_pods() -> None:
    kids = children(SPECS["python-source"])
    slave = kids["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    master = kids["Job"]["spec"]["template"]["spec"]["containers"][0]
    env = env_of(kids["Deployment"])
    assert env["API_TOKEN"] == {"secretKeyRef": {"name": "api", "key": "token"}}
    assert env["KUBECRAWL_USER_AGENT"] == "books-bot/1"
    assert slave["envFrom"] == [
        {"secretRef": {"name": "pipeline-creds"}},
        {"secretRef": {"name": "pg"}},
        {"secretRef": {"name": "s3"}},
    ]
    assert master["envFrom"] == [{"secretRef": {"name": "pipeline-creds"}}]  # only slaves deliver
    assert master["args"] == ["crawl", "--role", "master", "-a", "category=poetry", "-a", "max_pages=3"]
    assert slave["args"][:7] == [*master["args"][:1], "--role", "slave", "-a", "category=poetry", "-a", "max_pages=3"]
    flag, value = slave["args"][7:]
    assert flag == "-s" and value.startswith("feeds=")
    assert json.loads(value[len("feeds=") :]) == {
        "postgresql://crawler@pg.db:5432/items": {"table": "books"},
        "s3://bucket/books/%(round)s.jsonl": {"format": "jsonl"},
    }


def test_the_feeds_argument_is_what_the_worker_parses() -> None:
    """The slave's `-s feeds=...` read by the worker's own settings parser gives the sinks back."""
    from kubecrawl.settings import build_settings, parse_kv

    raw = {"spider": {"rules": RULES}, "output": [{"uri": "postgresql://u@pg/db", "options": {"table": "t"}}]}
    args = children(raw)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    settings = build_settings(cli=parse_kv([args[args.index("-s") + 1]]), environ={})
    (feed,) = settings.feed_specs()
    assert (feed.uri, feed.kind, feed.table) == ("postgresql://u@pg/db", "postgresql", "t")


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        ([{"uri": "postgresql://u:pw@pg/db"}], "holds a password: put it in a Secret"),
        ([{"uri": "postgresql://u@pg/db", "options": {"tabel": "x"}}], "unknown option(s) tabel"),
        ([{"uri": "postgresql://u@pg/db"}, {"uri": "postgresql://u@pg/db"}], "is given twice"),
    ],
)
def test_bad_sinks_are_refused(output: list[dict[str, Any]], needle: str) -> None:
    spec, problem = check_spec({"spider": {"rules": RULES}, "output": output})
    assert spec is None and problem is not None and problem.reason == "InvalidOutput"
    assert needle in problem.message


# -- §5 spider source ---------------------------------------------------------------------------


def test_a_configmap_spider_is_mounted_and_importable() -> None:
    kids = children(SPECS["python-source"])
    for template in worker_templates(kids):
        pod = template["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["KUBECRAWL_SPIDER"] == "books:BooksSpider" and env["PYTHONPATH"] == SOURCE_DIR
        assert {"name": "spider-source", "mountPath": SOURCE_DIR, "readOnly": True} in container["volumeMounts"]
        assert {"name": "spider-source", "configMap": {"name": "my-spiders"}} in pod["volumes"]
    pkg = children(SPECS["file-in-package"])
    env = env_of(pkg["Deployment"])
    assert env["KUBECRAWL_SPIDER"] == f"{SOURCE_DIR}/myproj/spiders/books.py:Books"
    volume = next(v for v in pkg["Deployment"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "spider-source")
    assert volume["configMap"]["items"][1] == {"key": "books.py", "path": "myproj/spiders/books.py"}


@pytest.mark.parametrize(
    "spider",
    [
        {"file": "books.py"},  # a file needs a source
        {"rules": RULES, "source": {"configMap": "x"}},
        {"module": "a:B", "file": "b.py", "source": {"configMap": "x"}},
    ],
)
def test_spider_source_combinations_that_make_no_sense_are_refused(spider: dict[str, Any]) -> None:
    spec, problem = check_spec({"spider": spider})
    assert spec is None and problem is not None and problem.reason == "InvalidSpec"


# -- §6 lifecycle -------------------------------------------------------------------------------


def test_the_redis_pvc_goes_with_the_crawl_unless_retained() -> None:
    policy = children(SPECS["rules"])["StatefulSet"]["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy == {"whenDeleted": "Delete", "whenScaled": "Retain"}
    policy = children(SPECS["placed"])["StatefulSet"]["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy["whenDeleted"] == "Retain"


def test_the_timer_puts_no_finalizer_on_crawls() -> None:
    import kopf

    import kubecrawl_operator.handlers  # noqa: F401 - registers the handlers

    registry = kopf.get_default_registry()
    assert all(not h.requires_finalizer for h in registry._spawning.get_all_handlers())
    assert all(not h.requires_finalizer for h in registry._changing.get_all_handlers())


def test_existing_data_of_an_earlier_crawl_is_reported_once_and_the_redis_claimed(redis_server: RedisServer) -> None:
    client = redis_server.client()
    crawl = CrawlRef(name="books", namespace="ns", uid="uid-new")
    # what an earlier Crawl of this name left in a retained PVC (its round started long before)
    client.hset("kc:{books}:meta", mapping={"round": 3, "round_started_at": "1700000000.5", "seeded_round": 3})
    extras = read_redis_extras(redis_server.url, redis_server.password, crawl, "2026-12-01T10:00:00Z", 3, False)
    assert (
        "held data from before this Crawl was created (round 3 started at 2023-11-14T22:13:20Z)" in extras.existing_data
    )
    assert "data-books-redis-0" in extras.existing_data
    assert client.get("kc:{books}:owner") == b"uid-new"
    again = read_redis_extras(redis_server.url, redis_server.password, crawl, "2026-12-01T10:00:00Z", 3, False)
    assert again.existing_data == ""  # claimed: the status keeps the first report
    # a second Crawl of the same name finds the first one's uid
    other = CrawlRef(name="books", namespace="ns", uid="uid-later")
    later = read_redis_extras(redis_server.url, redis_server.password, other, "2026-12-02T10:00:00Z", 3, False)
    assert "data of an earlier Crawl 'books' (uid uid-new)" in later.existing_data
    # a fresh crawl whose own seed already ran (round started after the Crawl was created) is not "existing"
    client.flushall()
    client.hset("kc:{books}:meta", mapping={"round": 1, "round_started_at": "1764583300"})  # 2025-12-01T10:01:40Z
    fresh = read_redis_extras(redis_server.url, redis_server.password, crawl, "2025-12-01T10:00:00Z", 3, False)
    assert fresh.existing_data == ""


def test_delivery_counts_and_a_failing_sink_come_from_the_feeds_group(redis_server: RedisServer) -> None:
    """The worker's StreamDelivery consumer group, driven as the slaves drive it: read, ack, fail, retry."""
    client: redis.Redis = redis_server.client()
    crawl = CrawlRef(name="books", namespace="ns", uid="u1")
    stream = "kc:{books}:items"
    client.set("kc:{books}:owner", "u1")
    ids = [client.xadd(stream, {"j": json.dumps({"n": i}), "k": f"{i:02x}"}) for i in range(10)]
    extras = read_redis_extras(redis_server.url, redis_server.password, crawl, "", 3, True)
    assert (extras.delivered, extras.lag) == (0, 10)  # no slave delivered yet: no group
    client.xgroup_create(stream, "feeds", id="0")
    client.xreadgroup("feeds", "slave-a", {stream: ">"}, count=4)
    client.xack(stream, "feeds", *ids[:4])
    client.xreadgroup("feeds", "slave-a", {stream: ">"}, count=3)  # being written
    extras = read_redis_extras(redis_server.url, redis_server.password, crawl, "", 3, True)
    assert (extras.delivered, extras.pending, extras.lag) == (4, 3, 3)
    assert delivery_problem(extras) is None
    for _ in range(5):  # the sink refuses the batch: the slave re-reads its own pending entries and retries
        client.xreadgroup("feeds", "slave-a", {stream: "0"}, count=3)
    extras = read_redis_extras(redis_server.url, redis_server.password, crawl, "", 3, True)
    problem = delivery_problem(extras)
    assert problem is not None and problem.reason == "SinkWriteFailing"
    assert extras.oldest_id == ids[4].decode() and extras.oldest_attempts == 6
    spec = parse_spec({"spider": {"rules": RULES}, "output": [{"uri": "postgresql://u@pg/db"}]})
    assert decide(Observed(spec=spec, delivery_problem=problem)).conditions["DeliveryFailed"][:2] == (
        True,
        "SinkWriteFailing",
    )


# -- the real operator process against the emulated API -------------------------------------------


def test_operator_waits_for_the_spider_source_and_rolls_the_pods_when_the_code_changes(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create_crawl(
        "pysp", {"spider": {"module": "books:BooksSpider", "source": {"configMap": "spiders"}}, "replicas": 1}
    )
    missing = eventually(
        lambda: (c := cluster.condition("pysp", "Ready")).get("reason") == "SpiderSourceMissing" and c,
        "Ready=False SpiderSourceMissing",
    )
    assert missing["status"] == "False" and "kubectl create configmap spiders" in missing["message"]
    assert cluster.get("Deployment", "pysp-slave") is None  # nothing created without the code
    cluster.create(
        "ConfigMap",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "spiders"}, "data": {"books.py": "# v1\n"}},
    )

    def source_hash() -> str | None:
        dep = cluster.get("Deployment", "pysp-slave") or {}
        annotations = ((dep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
        return annotations.get("kubecrawl.io/spider-source-hash")

    first = eventually(source_hash, "the slaves, with the source's hash")
    cluster.patch("ConfigMap", "spiders", {"data": {"books.py": "# v2\n"}})
    eventually(lambda: (h := source_hash()) and h != first and h, "the slaves rolled by the new code")


def test_operator_reports_an_unknown_setting_with_an_event_and_creates_nothing(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.create_crawl("typo", {"spider": {"rules": RULES}, "settings": {"max_retires": "5"}})
    ready = eventually(
        lambda: (c := cluster.condition("typo", "Ready")).get("reason") == "UnknownSetting" and c, "UnknownSetting"
    )
    assert "spec.settings.max_retires is not a worker setting; did you mean 'max_retries'?" in ready["message"]
    eventually(lambda: any(e.get("reason") == "UnknownSetting" for e in cluster.events("typo")), "the event")
    assert cluster.get("Deployment", "typo-slave") is None and cluster.get("StatefulSet", "typo-redis") is None

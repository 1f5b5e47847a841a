"""``python -m bench distributed``: local mode vs master + 1 slave vs master + 2 slaves, and fingerprint memory.

Same generated site and spider as ``python -m bench local`` (bench/contenders/kc_spider.py). Every crawl
process runs on its own; CPU and peak RSS come from ``os.wait4`` on each child, Redis's own CPU from
``INFO cpu``, round trips from the client-side counter the workers add to the crawl's stats. Memory per
million fingerprints is the ``INFO memory used_memory`` delta on a fresh redis-server for: a SET of
40-char hex digests (what scrapy-redis stores), the exact ``set`` variant (64-bit integers in intset
buckets) and the ``bloom`` variant, both written by the real commit script.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from kubecrawl.backends.base import Outcome
from kubecrawl.backends.redis import Keys, RedisBackend
from kubecrawl.request import Request
from kubecrawl.status import read_status

from .server import StaticServer, free_port
from .site import generate_site
from .venv import BENCH_DIR

log = logging.getLogger(__name__)

SPIDER = str(BENCH_DIR / "contenders" / "kc_spider.py") + ":BenchSpider"
KUBECRAWL = str(Path(sys.executable).parent / "kubecrawl")


class RedisProc:
    """A throw-away redis-server on a free port (no persistence)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=False, capture_output=True)
            binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is needed: apt-get install redis-server")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis(port=self.port, socket_timeout=60)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cpu_s(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _spawn(cmd: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as fh:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, env=env)


def _wait_rusage(
    procs: list[subprocess.Popen[bytes]], timeout_s: float, exited_at: dict[int, float] | None = None
) -> list[tuple[int, float, float]]:
    """Wait for every child; (exit code, CPU s, peak RSS MB) of each, from wait4; exit times into ``exited_at``."""
    out: dict[int, tuple[int, float, float]] = {}
    deadline = time.monotonic() + timeout_s
    while len(out) < len(procs):
        for p in procs:
            if p.pid in out:
                continue
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                out[p.pid] = (os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024)
                if exited_at is not None:
                    exited_at[p.pid] = time.perf_counter()
        if time.monotonic() > deadline:
            for p in procs:
                if p.pid not in out:
                    p.kill()
            deadline = float("inf")
        time.sleep(0.02)
    return [out[p.pid] for p in procs]


#: ``--per-host``: concurrency_per_host of every crawl (None: = concurrency), shared by all slaves
PER_HOST: int | None = None


def crawl_args(concurrency: int) -> list[str]:
    per_host = PER_HOST or concurrency
    return ["-s", f"concurrency={concurrency}", "-s", f"concurrency_per_host={per_host}",
            "-s", "obey_robots=false", "-s", "progress=off", "-s", "log_format=text"]  # fmt: skip


def run_local(start: str, concurrency: int, workdir: Path, tag: str) -> dict[str, Any]:
    env = {**os.environ, "KC_BENCH_START": start, "KC_BENCH_RESULT": str(workdir / f"{tag}.json")}
    t0 = time.perf_counter()
    p = _spawn([KUBECRAWL, "crawl", SPIDER, *crawl_args(concurrency)], workdir / f"{tag}.log", env)
    ((code, cpu, rss),) = _wait_rusage([p], 3600)
    wall = time.perf_counter() - t0
    rep = json.loads((workdir / f"{tag}.json").read_text()) if (workdir / f"{tag}.json").exists() else {}
    pages = int(rep.get("pages", 0))
    cwall = float(rep.get("crawl_wall_s", wall))
    crawl_cpu = float(rep.get("crawl_cpu_s", cpu))
    return {"mode": "local", "exit": code, "pages": pages, "wall_s": cwall, "pages_per_s": pages / cwall,
            "slave_cpu_ms_per_page": crawl_cpu * 1000 / max(pages, 1), "process_cpu_s": cpu, "peak_rss_mb": rss,
            "pages_per_s_per_process": pages / cwall}  # fmt: skip


def run_distributed(start: str, slaves: int, concurrency: int, workdir: Path, tag: str) -> dict[str, Any]:
    r = RedisProc(workdir)
    try:
        crawl = f"bench-{tag}"
        base = [KUBECRAWL, "crawl", SPIDER, "--redis-url", r.url, "--crawl", crawl, *crawl_args(concurrency)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
        env["KC_BENCH_START"] = start
        redis_cpu0 = r.cpu_s()
        t0 = time.perf_counter()
        ps = [
            _spawn([*base, "--role", "slave", "--exit-when-idle", "--health-port", "0"], workdir / f"{tag}-s{i}.log",
                   {**env, "KC_BENCH_RESULT": str(workdir / f"{tag}-s{i}.json"), "KUBECRAWL_WORKER_ID": f"s{i}"})
            for i in range(slaves)
        ]  # fmt: skip
        master = _spawn([*base, "--role", "master"], workdir / f"{tag}-m.log",
                        {**env, "KC_BENCH_RESULT": str(workdir / f"{tag}-m.json")})  # fmt: skip
        exited: dict[int, float] = {}
        results = _wait_rusage([master, *ps], 3600, exited)
        wall = time.perf_counter() - t0
        # the crawl runs from the end of seeding (master exit) to the last slave's exit
        crawl_wall = max(exited[p.pid] for p in ps) - exited[master.pid]
        st = read_status(r.client, crawl)
        reports = [json.loads(f.read_text()) for f in sorted(workdir.glob(f"{tag}-s*.json"))]
        # crawl-phase CPU (after imports and set-up), as the local run reports it
        slave_cpu = sum(float(x["crawl_cpu_s"]) for x in reports)
        pages = st.pages
        return {
            "mode": f"{slaves} slave(s) + master", "exit": max(code for code, _c, _r in results), "pages": pages,
            "process_wall_s": wall,
            "items": st.items, "wall_s": crawl_wall, "pages_per_s": pages / crawl_wall,
            "pages_per_s_per_process": pages / crawl_wall / slaves,
            "slave_cpu_ms_per_page": slave_cpu * 1000 / max(pages, 1),
            "process_cpu_s": sum(c for _code, c, _rss in results[1:]),
            "master_cpu_s": results[0][1], "redis_cpu_ms_per_page": (r.cpu_s() - redis_cpu0) * 1000 / max(pages, 1),
            "round_trips": st.round_trips, "round_trips_per_page": st.round_trips_per_page,
            "peak_rss_mb": max(rss for _c, _cpu, rss in results[1:]),
        }  # fmt: skip
    finally:
        r.stop()


# -- fingerprint memory ----------------------------------------------------------------------------
def _fp_requests(n: int, offset: int = 0) -> list[Request]:
    return [Request(f"https://example.com/page/{i}") for i in range(offset, offset + n)]


def memory_hex_set(n: int, workdir: Path) -> float:
    r = RedisProc(workdir)
    try:
        before = r.used_memory()
        for start in range(0, n, 10_000):
            pipe = r.client.pipeline(transaction=False)
            members = [hashlib.sha1(f"https://example.com/page/{i}".encode()).hexdigest()
                       for i in range(start, min(n, start + 10_000))]  # fmt: skip
            pipe.sadd("scrapy:dupefilter", *members)
            pipe.execute()
        return (r.used_memory() - before) / n
    finally:
        r.stop()


async def _fill_with_commit(url: str, dedup: str, n: int, capacity: int, error_rate: float) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_timeout=600)
    b = RedisBackend(client, "mem", dedup=dedup, capacity=capacity, error_rate=error_rate)
    await b.open()
    for start in range(0, n, 5000):
        await b.commit([Outcome(None, requests=_fp_requests(min(5000, n - start), start))])
        # keep only the fingerprints: drop the queued requests as we go
        await b.r.delete(
            b.k.frontier,
            b.k.ready,
            b.k.requests,
            b.k.hosts,
            *[key async for key in b.r.scan_iter(b.k.host_queue_prefix + "*")],
        )
    await b.close()


def memory_variant(dedup: str, n: int, capacity: int, error_rate: float, workdir: Path) -> tuple[float, float]:
    """(used_memory delta, MEMORY USAGE of the fingerprint keys) per fingerprint, filled by the commit script.

    The delta also holds what the allocator keeps cached from the queued requests the fill created and
    dropped; MEMORY USAGE summed over ``seen:*`` is the structure itself (key, object and value).
    """
    r = RedisProc(workdir)
    try:
        r.client.config_set("set-max-intset-entries", 4096)
        before = r.used_memory()
        asyncio.run(_fill_with_commit(r.url, dedup, n, capacity, error_rate))
        k = Keys("mem")
        r.client.delete(
            k.frontier, k.ready, k.requests, k.hosts, k.meta, k.stats, *r.client.scan_iter(k.host_queue_prefix + "*")
        )
        delta = (r.used_memory() - before) / n
        usage = sum(int(r.client.memory_usage(key, samples=0) or 0) for key in r.client.scan_iter(k.prefix + "seen:*"))
        return delta, usage / n
    finally:
        r.stop()


def _frontier_requests(n: int, hosts: int, offset: int) -> list[Request]:
    # an ordinary crawl URL (~60 bytes): a path and a query, spread round-robin over ``hosts`` slots
    return [
        Request(f"https://www.site-{i % hosts}.example.com/articles/2026/12/{i}.html?ref=home")
        for i in range(offset, offset + n)
    ]


async def _fill_frontier(url: str, n: int, hosts: int) -> dict[str, int]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    b = RedisBackend(client, "mem", dedup="set", capacity=max(n, 1_000_000))
    await b.open()
    for start in range(0, n, 5000):
        await b.commit([Outcome(None, requests=_frontier_requests(min(5000, n - start), hosts, start))])
    k = b.k
    sizes = {"requests": await client.memory_usage(k.requests, samples=0) or 0}
    queues = 0
    async for key in client.scan_iter(k.host_queue_prefix + "*", count=1000):
        queues += await client.memory_usage(key, samples=0) or 0
    sizes["host queues"] = queues
    # the frontier hash (counts and times per slot), the ready slots, the slots with work (for the status)
    for name, key in (("frontier hash", k.frontier), ("ready", k.ready), ("hosts (status)", k.hosts)):
        sizes[name] = await client.memory_usage(key, samples=0) or 0
    seen = 0
    async for key in client.scan_iter(k.prefix + "seen:*", count=1000):
        seen += await client.memory_usage(key, samples=0) or 0
    sizes["fingerprints"] = seen
    sizes["payload bytes"] = sum([await client.hstrlen(k.requests, rid) for rid in await client.hkeys(k.requests)])
    await b.close()
    return sizes


def memory_frontier(n: int, hosts: int, workdir: Path) -> dict[str, float]:
    """Bytes per queued request in Redis, ``n`` requests over ``hosts`` slots, queued by the commit script.

    ``used_memory`` delta on a fresh redis-server (everything: payload, host queue entry, fingerprint,
    allocator overhead) and ``MEMORY USAGE`` of each kind of key, per request."""
    r = RedisProc(workdir)
    try:
        r.client.config_set("set-max-intset-entries", 4096)
        before = r.used_memory()
        sizes = asyncio.run(_fill_frontier(r.url, n, hosts))
        out = {"used_memory": (r.used_memory() - before) / n}
        out.update({name: v / n for name, v in sizes.items()})
        return out
    finally:
        r.stop()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench distributed")
    p.add_argument("--pages", type=int, default=20_000)
    p.add_argument("--page-kb", type=int, default=20)
    p.add_argument("--links", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--per-host", type=int, default=None,
                   help="concurrency_per_host, for the whole crawl (default: --concurrency)")  # fmt: skip
    p.add_argument("--repeat", type=int, default=1, help="runs per mode; medians are reported")
    p.add_argument("--fingerprints", type=int, default=1_000_000, help="for the memory figures (0: skip)")
    p.add_argument("--capacity", type=int, default=10_000_000, help="bloom_capacity (also sizes intset buckets)")
    p.add_argument("--error-rate", type=float, default=0.001)
    p.add_argument("--server", choices=["auto", "nginx", "aiohttp"], default="auto")
    p.add_argument("--memory-only", action="store_true", help="only the memory figures (fingerprints, frontier)")
    p.add_argument("--frontier", type=int, default=0,
                   help="bytes per queued request for this many requests (0: skip)")  # fmt: skip
    p.add_argument("--frontier-hosts", default="1,10000", help="comma-separated slot counts for --frontier")
    p.add_argument("--json", type=Path, default=None)
    return p


def _median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(rows[0])
    for key, v in rows[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = [float(r[key]) for r in rows if r.get(key) is not None]
            out[key] = statistics.median(vals) if vals else None
    return out


def _crawls(args: argparse.Namespace, site: Any, workdir: Path, result: dict[str, Any]) -> None:
    """Local mode, then master + 1 and + 2 slaves, ``--repeat`` times round-robin; medians into ``result``."""
    with StaticServer(site.root, kind=args.server) as server:
        start = server.base_url + site.start_path
        runs: dict[str, list[dict[str, Any]]] = {"local": [], "1": [], "2": []}
        for i in range(args.repeat):
            runs["local"].append(run_local(start, args.concurrency, workdir, f"local{i}"))
            log.info("local: %s", runs["local"][-1])
            for n in (1, 2):
                runs[str(n)].append(run_distributed(start, n, args.concurrency, workdir, f"d{n}-{i}"))
                log.info("%d slave(s): %s", n, runs[str(n)][-1])
    rows = [_median_row(v) for v in runs.values()]
    result["rows"] = rows
    local, one = rows[0], rows[1]
    result["slave_vs_local_per_process"] = one["pages_per_s_per_process"] / local["pages_per_s_per_process"]
    result["slave_vs_local_cpu_per_page"] = local["slave_cpu_ms_per_page"] / one["slave_cpu_ms_per_page"]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    global PER_HOST
    PER_HOST = args.per_host
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    site = generate_site(BENCH_DIR / ".cache" / f"site-{args.pages}-{args.page_kb}k-{args.links}l",
                         args.pages, args.page_kb, args.links)  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="kc-bench-dist-"))
    result: dict[str, Any] = {"date": dt.datetime.now().isoformat(timespec="seconds"),
                              "command": "python -m bench distributed " + " ".join(argv or sys.argv[2:]),
                              "site": {"pages": site.pages, "page_kb": site.page_kb, "links": site.links},
                              "concurrency": args.concurrency, "per_host": args.per_host or args.concurrency,
                              "cpus": os.cpu_count()}  # fmt: skip
    try:
        if not args.memory_only:
            _crawls(args, site, workdir, result)
        if args.fingerprints:
            n = args.fingerprints
            hexset = memory_hex_set(n, workdir)
            mem = {
                "hex SET (scrapy-redis)": (hexset, hexset),
                "set (64-bit intset buckets)": memory_variant("set", n, args.capacity, args.error_rate, workdir),
                f"bloom (capacity {args.capacity:,}, p={args.error_rate})":
                    memory_variant("bloom", n, args.capacity, args.error_rate, workdir),
                f"bloom sized for n (capacity {n:,}, p={args.error_rate})":
                    memory_variant("bloom", n, n, args.error_rate, workdir),
            }  # fmt: skip
            result["bytes_per_fingerprint"] = mem
        if args.frontier:
            result["frontier_requests"] = args.frontier
            result["bytes_per_queued_request"] = {
                h: memory_frontier(args.frontier, int(h), workdir) for h in args.frontier_hosts.split(",")
            }
        _print(result)
        out = args.json or BENCH_DIR / "results" / f"distributed-{dt.datetime.now():%Y%m%dT%H%M%S}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        log.info("results written to %s", out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(r["exit"] == 0 for r in result.get("rows", [])) else 1  # fmt: skip


def _print(res: dict[str, Any]) -> None:
    w = sys.stdout.write
    w(f"\n{res['command']}  ({res['site']['pages']} pages, concurrency {res['concurrency']}, {res['cpus']} CPUs)\n\n")
    if "rows" not in res:
        _print_memory(res)
        return
    w(
        "| mode | pages | pages/s | pages/s per slave | crawl CPU ms/page (slaves) | Redis CPU ms/page | round trips/page |\n"
    )
    w("|---|---|---|---|---|---|---|\n")
    for r in res["rows"]:
        rt = r.get("round_trips_per_page")
        rcpu = r.get("redis_cpu_ms_per_page")
        w(f"| {r['mode']} | {r['pages']:.0f} | {r['pages_per_s']:.0f} | {r['pages_per_s_per_process']:.0f} | "
          f"{r['slave_cpu_ms_per_page']:.2f} | {'-' if rcpu is None else f'{rcpu:.3f}'} | "
          f"{'-' if rt is None else f'{rt:.3f}'} |\n")  # fmt: skip
    w(f"\none slave vs local mode, per process: {res['slave_vs_local_per_process']:.2f}x pages/s, "
      f"{res['slave_vs_local_cpu_per_page']:.2f}x pages per CPU-s (target ≥ 0.85)\n")  # fmt: skip
    _print_memory(res)


def _print_memory(res: dict[str, Any]) -> None:
    w = sys.stdout.write
    if "bytes_per_queued_request" in res:
        per = res["bytes_per_queued_request"]
        names = list(next(iter(per.values())))
        w(f"\n{res['frontier_requests']:,} queued requests (set dedup), bytes per queued request:\n\n")
        w("| hosts | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n")
        for hosts, row in per.items():
            w(f"| {int(hosts):,} | " + " | ".join(f"{row[name]:.1f}" for name in names) + " |\n")
    if "bytes_per_fingerprint" in res:
        w("\n| fingerprint store | bytes per URL (used_memory delta) | bytes per URL (MEMORY USAGE of the keys) |\n")
        w("|---|---|---|\n")
        for name, (delta, usage) in res["bytes_per_fingerprint"].items():
            w(f"| {name} | {delta:.2f} | {usage:.2f} |\n")

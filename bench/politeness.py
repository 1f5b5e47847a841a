"""``python -m bench politeness``: does each host see the crawl's limits, however many slaves there are?

Two shapes, each crawled by master + 1, 2, 4 slaves (``--slaves``) against one real redis-server:
**A**, one host with ``download_delay`` d and ``concurrency_per_host`` 1; **B**, ``--hosts`` hosts
(default 50) with no delay. Every host is its own 127.0.0.x address (all of 127/8 is loopback) served
by bench/_witness_server.py, whose log (arrival and end of each request, in-flight count per address)
is the witness: peak concurrency, mean and minimum gap between arrivals per host, and pages/s over the
span the server was busy, never the crawler's stats. Redis round trips per page come from the crawl's
status (the client-side counter, as in ``python -m bench distributed``). Targets are printed as
PASS/MISS figures; nothing here asserts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from kubecrawl.backends.frontier import DELAY_SPREAD
from kubecrawl.backends.redis import Keys
from kubecrawl.status import read_status

from .distributed import KUBECRAWL, RedisProc, _spawn, _wait_rusage
from .venv import BENCH_DIR

log = logging.getLogger(__name__)

SPIDER = str(BENCH_DIR / "contenders" / "kc_hosts_spider.py") + ":HostsSpider"
REPO = BENCH_DIR.parent

#: the issue's targets: mean gap >= 0.9 d, no gap under 0.4 d, 2 slaves >= 1.8x one on many hosts
MEAN_GAP_MIN, GAP_MIN, SCALE_2_MIN = 0.9, 0.4, 1.8
#: round trips per page that ``python -m bench distributed`` measured before the frontier (one host, 64 places)
ROUND_TRIPS_REF = 0.04


class WitnessServer:
    """bench/_witness_server.py in its own process; ``stop()`` returns its log and CPU seconds."""

    def __init__(self, hosts: list[str], pages: int, latency_ms: float, page_kb: int, workdir: Path, tag: str):
        self.ready = workdir / f"{tag}-server.ready"
        self.log = workdir / f"{tag}-server.json"
        cmd = [sys.executable, "-m", "bench._witness_server", "--hosts", ",".join(hosts), "--pages", str(pages),
               "--latency-ms", str(latency_ms), "--page-kb", str(page_kb),
               "--ready", str(self.ready), "--log", str(self.log)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = _spawn(cmd, workdir / f"{tag}-server.log", env)
        deadline = time.monotonic() + 30
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise SystemExit(f"witness server did not start: {(workdir / f'{tag}-server.log').read_text()}")
            time.sleep(0.02)
        self.ports: dict[str, int] = json.loads(self.ready.read_text())["ports"]

    def start_urls(self) -> list[str]:
        return [f"http://{h}:{p}/p/0.html" for h, p in self.ports.items()]

    def stop(self) -> tuple[list[tuple[str, str, float, float, int, int]], float]:
        self.proc.send_signal(signal.SIGTERM)
        ((_code, cpu, _rss),) = _wait_rusage([self.proc], 60)
        records = [tuple(r) for r in json.loads(self.log.read_text())] if self.log.exists() else []
        return records, cpu  # type: ignore[return-value]


def host_figures(records: list[tuple[str, str, float, float, int, int]]) -> dict[str, dict[str, Any]]:
    """Per address: requests, distinct pages answered 200, others, peak in flight, mean and minimum gap between arrivals."""
    by_host: dict[str, list[tuple[str, float, float, int, int]]] = {}
    for host, path, start, end, n, status in records:
        if path != "/robots.txt":
            by_host.setdefault(host, []).append((path, start, end, n, status))
    out = {}
    for host, rows in sorted(by_host.items()):
        starts = sorted(r[1] for r in rows)
        gaps = [b - a for a, b in pairwise(starts)]
        out[host] = {
            "requests": len(rows),
            "distinct": len({r[0] for r in rows if r[4] == 200}),
            "not_200": sum(1 for r in rows if r[4] != 200),
            "peak": max(r[3] for r in rows),
            "mean_gap_s": statistics.fmean(gaps) if gaps else None,
            "min_gap_s": min(gaps) if gaps else None,
        }
    return out


def _wait_slaves_up(r: RedisProc, crawl: str, ps: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """Seed only once every slave has sent its first heartbeat, so start-up skew is not read as scaling."""
    key = Keys(crawl).workers
    deadline = time.monotonic() + timeout_s
    while int(r.client.zcard(key)) < len(ps):
        if any(p.poll() is not None for p in ps) or time.monotonic() > deadline:
            log.warning("only %d of %d slaves came up; seeding anyway", r.client.zcard(key), len(ps))
            return
        time.sleep(0.05)


def run_one(shape: str, slaves: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One crawl: witness server, redis-server, master + ``slaves`` slaves; the figures of the run."""
    tag = f"{shape}{slaves}"
    if shape == "A":
        hosts, pages, delay, per_host, latency = ["127.0.0.2"], args.pages, args.delay, 1, args.latency_a_ms
    else:
        hosts = [f"127.0.1.{i + 1}" for i in range(args.hosts)]
        pages, delay, per_host, latency = args.host_pages, 0.0, args.per_host, args.latency_ms
    server = WitnessServer(hosts, pages, latency, args.page_kb, workdir, tag)
    r = RedisProc(workdir)
    try:
        crawl = f"polite-{tag}"
        settings = {"concurrency": args.concurrency, "concurrency_per_host": per_host, "download_delay": delay,
                    "obey_robots": "false", "progress": "off", "log_format": "text",
                    **dict(kv.split("=", 1) for kv in args.set)}  # fmt: skip
        base = [KUBECRAWL, "crawl", SPIDER, "--redis-url", r.url, "--crawl", crawl]
        for k, v in settings.items():
            base += ["-s", f"{k}={v}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECRAWL_")}
        env["KC_BENCH_STARTS"] = json.dumps(server.start_urls())
        ps = [
            _spawn([*base, "--role", "slave", "--exit-when-idle", "--health-port", "0"], workdir / f"{tag}-s{i}.log",
                   {**env, "KC_BENCH_RESULT": str(workdir / f"{tag}-s{i}.json"), "KUBECRAWL_WORKER_ID": f"s{i}"})
            for i in range(slaves)
        ]  # fmt: skip
        _wait_slaves_up(r, crawl, ps, args.timeout)
        master = _spawn([*base, "--role", "master"], workdir / f"{tag}-m.log",
                        {**env, "KC_BENCH_RESULT": str(workdir / f"{tag}-m.json")})  # fmt: skip
        results = _wait_rusage([master, *ps], args.timeout)
        st = read_status(r.client, crawl)
    finally:
        r.stop()
        records, server_cpu = server.stop()
    reports = [
        json.loads(f.read_text()) if f.exists() else None for f in (workdir / f"{tag}-s{i}.json" for i in range(slaves))
    ]
    per_slave = [None if x is None else int(x["pages"]) for x in reports]
    # crawl-phase CPU (after imports and set-up), as ``bench distributed`` reports it
    slave_cpu = sum(float(x["crawl_cpu_s"]) for x in reports if x is not None)
    hosts_fig = host_figures(records)
    pages_served = sum(h["requests"] for h in hosts_fig.values())
    page_records = [x for x in records if x[1] != "/robots.txt"]
    span = (max(x[3] for x in page_records) - min(x[2] for x in page_records)) if page_records else 0.0
    mean_gaps = [h["mean_gap_s"] for h in hosts_fig.values() if h["mean_gap_s"] is not None]
    min_gaps = [h["min_gap_s"] for h in hosts_fig.values() if h["min_gap_s"] is not None]
    exits = [code for code, _cpu, _rss in results]
    row = {
        "shape": shape, "slaves": slaves, "hosts": len(hosts), "pages_per_host": pages, "latency_ms": latency,
        "download_delay": delay, "concurrency_per_host": per_host, "concurrency_per_slave": args.concurrency,
        "exit": max(exits), "expected_pages": len(hosts) * pages, "pages_served": pages_served,
        "distinct_pages": sum(h["distinct"] for h in hosts_fig.values()), "status_pages": st.pages,
        "pages_per_slave": per_slave, "server_span_s": span,
        "pages_per_s": pages_served / span if span > 0 else None,
        "peak_per_host": max((h["peak"] for h in hosts_fig.values()), default=0),
        "worst_mean_gap_s": min(mean_gaps, default=None), "median_mean_gap_s": statistics.median(mean_gaps) if mean_gaps else None,
        "min_gap_s": min(min_gaps, default=None),
        "round_trips": st.round_trips, "round_trips_per_page": st.round_trips_per_page,
        "slave_cpu_ms_per_page": slave_cpu * 1000 / max(pages_served, 1),
        "slave_process_cpu_s": sum(c for _e, c, _r in results[1:]),
        "server_cpu_ms_per_page": server_cpu * 1000 / max(pages_served, 1),
        "per_host": hosts_fig,
    }  # fmt: skip
    row["complete"] = row["exit"] == 0 and row["distinct_pages"] == row["expected_pages"]
    return row


def verdicts(rows: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for every run and the scaling ratios."""
    out: list[tuple[str, str, bool]] = []
    for r in rows:
        name = f"{r['shape']} {r['slaves']} slave(s)"
        lim = r["concurrency_per_host"]
        out.append((f"{name}: peak per host ≤ {lim}", f"{r['peak_per_host']}", r["peak_per_host"] <= lim))
        out.append((f"{name}: every page once", f"{r['distinct_pages']}/{r['expected_pages']} distinct, "
                    f"{r['pages_served']} served", r["complete"] and r["pages_served"] == r["expected_pages"]))  # fmt: skip
        d = r["download_delay"]
        if d > 0 and r["worst_mean_gap_s"] is not None and r["min_gap_s"] is not None:
            mean, low = r["worst_mean_gap_s"], r["min_gap_s"]
            out.append((f"{name}: mean gap ≥ {MEAN_GAP_MIN}×d = {MEAN_GAP_MIN * d:.3f} s",
                        f"{mean:.3f} s = {mean / d:.2f}×d", mean >= MEAN_GAP_MIN * d))  # fmt: skip
            out.append((f"{name}: no gap < {GAP_MIN}×d = {GAP_MIN * d:.3f} s",
                        f"min {low:.3f} s = {low / d:.2f}×d", low >= GAP_MIN * d))  # fmt: skip
    b = {r["slaves"]: r for r in rows if r["shape"] == "B" and r["pages_per_s"]}
    if 1 in b and 2 in b:
        ratio = b[2]["pages_per_s"] / b[1]["pages_per_s"]
        out.append((f"B: 2 slaves ≥ {SCALE_2_MIN}× the pages/s of 1", f"{ratio:.2f}×", ratio >= SCALE_2_MIN))
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench politeness", description=__doc__.split("\n\n")[0])
    p.add_argument("--slaves", default="1,2,4", help="slave counts, comma-separated")
    p.add_argument("--shapes", default="A,B", help="A: one host with a delay; B: many hosts, no delay")
    p.add_argument("--pages", type=int, default=100, help="shape A: pages of its one host")
    p.add_argument("--delay", type=float, default=0.1, help="shape A: download_delay d, seconds")
    p.add_argument("--hosts", type=int, default=50, help="shape B: hosts (127.0.1.1 ...)")
    p.add_argument("--host-pages", type=int, default=40, help="shape B: pages per host")
    p.add_argument("--per-host", type=int, default=2, help="shape B: concurrency_per_host")
    p.add_argument("--concurrency", type=int, default=8, help="concurrency of each slave")
    p.add_argument(
        "--latency-ms",
        type=float,
        default=50.0,
        help="shape B: time the server takes per response (a crawl of real sites waits on the network)",
    )
    p.add_argument(
        "--latency-a-ms",
        type=float,
        default=5.0,
        help="shape A: time per response; keep it well under 0.4 x d, or it alone would space the "
        "arrivals and the gap targets would say nothing about the delay",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="another crawl setting for every process (e.g. pop_batch=8); repeatable")  # fmt: skip
    p.add_argument("--page-kb", type=int, default=2)
    p.add_argument("--timeout", type=float, default=900, help="seconds before a run's processes are killed")
    p.add_argument("--json", type=Path, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 1 <= args.hosts <= 254:
        raise SystemExit("--hosts must be 1..254 (one 127.0.1.x address each)")
    if bad := [kv for kv in args.set if "=" not in kv]:
        raise SystemExit(f"--set takes KEY=VALUE, got {bad}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    slave_counts = [int(x) for x in args.slaves.split(",")]
    shapes = [s.strip().upper() for s in args.shapes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="kc-bench-polite-"))
    load0 = os.getloadavg()
    res: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "command": "python -m bench politeness " + " ".join(argv if argv is not None else sys.argv[2:]),
                           "cpus": os.cpu_count(), "delay_spread": DELAY_SPREAD,
                           "latency_ms": {"A": args.latency_a_ms, "B": args.latency_ms},
                           "load_before": load0, "rows": []}  # fmt: skip
    try:
        for shape in shapes:
            for n in slave_counts:
                row = run_one(shape, n, args, workdir)
                log.info("%s, %d slave(s): %d pages, %s pages/s, peak %d", shape, n, row["pages_served"],
                         f"{row['pages_per_s']:.0f}" if row["pages_per_s"] else "-", row["peak_per_host"])  # fmt: skip
                res["rows"].append(row)
        res["load_after"] = os.getloadavg()
        res["targets"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in verdicts(res["rows"])]
        _print(res)
        out = args.json or BENCH_DIR / "results" / f"politeness-{dt.datetime.now():%Y%m%dT%H%M%S}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2))
        log.info("results written to %s", out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(r["complete"] for r in res["rows"]) else 1


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _print(res: dict[str, Any]) -> None:
    w = sys.stdout.write
    la, lb = res["load_before"], res["load_after"]
    lat = res["latency_ms"]
    w(f"\n{res['command']}  ({res['cpus']} CPUs, server latency A {lat['A']:g} ms, B {lat['B']:g} ms, "
      f"load avg {la[0]:.1f} before, {lb[0]:.1f} after)\n\n")  # fmt: skip
    w(
        "| shape | slaves | hosts × pages | d s | per host limit | pages served | pages/s | pages per slave "
        "| peak per host | mean gap s (worst host) | min gap s | round trips/page | slave crawl CPU ms/page | server CPU ms/page |\n"
    )
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    for r in res["rows"]:
        w(f"| {r['shape']} | {r['slaves']} | {r['hosts']} × {r['pages_per_host']} | {r['download_delay']:g} | "
          f"{r['concurrency_per_host']} | {r['pages_served']} | {_f(r['pages_per_s'], '.0f')} | "
          f"{'/'.join('-' if p is None else str(p) for p in r['pages_per_slave'])} | {r['peak_per_host']} | "
          f"{_f(r['worst_mean_gap_s'], '.3f')} | {_f(r['min_gap_s'], '.3f')} | "
          f"{_f(r['round_trips_per_page'], '.3f')} | {r['slave_cpu_ms_per_page']:.2f} | "
          f"{r['server_cpu_ms_per_page']:.2f} |\n")  # fmt: skip
    b = {r["slaves"]: r["pages_per_s"] for r in res["rows"] if r["shape"] == "B" and r["pages_per_s"]}
    if 1 in b:
        w("\nshape B, pages/s against one slave: "
          + ", ".join(f"{n} slaves {v / b[1]:.2f}×" for n, v in sorted(b.items()) if n != 1) + "\n")  # fmt: skip
    w(
        f"round trips per page: reference ≈{ROUND_TRIPS_REF} (python -m bench distributed, one host with 64 places);"
        " a host paced by a delay hands out one request per pop, so shape A sits far above it\n\n"
    )
    for t in res["targets"]:
        w(f"{'PASS' if t['met'] else 'MISS'}  {t['target']}: {t['measured']}\n")

"""``python -m bench local``: crawl one generated site with kubecrawl, three raw loops and Scrapy.

Every contender runs in its own process against the same nginx-served site with the same concurrency,
``--repeat`` times round-robin; the medians and kubecrawl's ratios against each baseline are printed
and written as JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from .measure import Measured, run_measured
from .report import Summary, machine_info, print_report, summarise
from .server import StaticServer
from .site import SiteInfo, generate_site
from .venv import BENCH_DIR, ensure_bench_venv

log = logging.getLogger(__name__)

CONTENDERS_DIR = BENCH_DIR / "contenders"
ALL = ("kubecrawl", "raw-aiohttp", "raw-httpx-aiohttp", "raw-httpx", "scrapy")
RAW = ("raw-aiohttp", "raw-httpx-aiohttp", "raw-httpx")


class Contender(BaseModel):
    name: str
    cmd: list[str]
    env: dict[str, str] = {}


def kubecrawl_cmd(start: str, concurrency: int) -> Contender:
    exe = Path(sys.executable).parent / "kubecrawl"
    launcher = [str(exe)] if exe.exists() else [sys.executable, "-c", "from kubecrawl.cli import main; main()"]
    return Contender(
        name="kubecrawl",
        cmd=[
            *launcher,
            "crawl",
            f"{CONTENDERS_DIR / 'kc_spider.py'}:BenchSpider",
            "-s",
            f"concurrency={concurrency}",
            "-s",
            f"concurrency_per_host={concurrency}",
            "-s",
            "obey_robots=false",
        ],
        env={"KC_BENCH_START": start},
    )


def build_contenders(
    names: list[str], start: str, concurrency: int, result: Path, scrapy_python: Path | None
) -> list[Contender]:
    out = []
    for name in names:
        if name == "kubecrawl":
            out.append(kubecrawl_cmd(start, concurrency))
        elif name in RAW:
            client = name.removeprefix("raw-")
            out.append(
                Contender(
                    name=name,
                    cmd=[
                        sys.executable,
                        str(CONTENDERS_DIR / "raw_loop.py"),
                        client,
                        start,
                        str(concurrency),
                        str(result),
                    ],
                )
            )
        elif name == "scrapy":
            assert scrapy_python is not None
            out.append(
                Contender(
                    name=name,
                    cmd=[
                        str(scrapy_python),
                        str(CONTENDERS_DIR / "scrapy_run.py"),
                        start,
                        str(concurrency),
                        str(result),
                    ],
                )
            )
        else:
            raise SystemExit(f"unknown contender {name!r}; choose from {', '.join(ALL)}")
    return out


SLOW = ("raw-httpx", "scrapy")


def run_rounds(
    contenders: list[Contender],
    repeat: int,
    workdir: Path,
    on_run: Callable[[Measured], None] | None = None,
    repeat_slow: int | None = None,
) -> list[Measured]:
    """Round-robin: every contender once per round; the slow ones (``SLOW``) only in the first
    ``repeat_slow`` rounds when that is given."""
    runs: list[Measured] = []
    for r in range(max(repeat, repeat_slow or 0)):
        for c in contenders:
            n = repeat_slow if (repeat_slow is not None and c.name in SLOW) else repeat
            if r >= n:
                continue
            m = run_measured(c.name, c.cmd, workdir / "result.json", workdir / f"{c.name}-{r}.log", env=c.env)
            runs.append(m)
            if on_run:
                on_run(m)
    return runs


def parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="python -m bench local")
    p.add_argument("--pages", type=int, default=20_000, help="site size (default 20000)")
    p.add_argument("--page-kb", type=int, default=20)
    p.add_argument("--links", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3, help="runs per contender; medians are reported")
    p.add_argument(
        "--repeat-slow",
        type=int,
        default=None,
        help="runs of the slow baselines (raw-httpx, scrapy); default: --repeat",
    )
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--only", default=",".join(ALL), help=f"comma list of contenders (default: {','.join(ALL)})")
    p.add_argument("--site-dir", type=Path, default=None, help="where the site is generated (cached)")
    p.add_argument("--server", choices=["auto", "nginx", "aiohttp"], default="auto")
    p.add_argument("--json", type=Path, default=None, help="write results here (default bench/results/...)")
    p.add_argument(
        "--profile",
        choices=["none", "py-spy", "pyinstrument"],
        default="none",
        help="after the runs, profile one run of each --profile-target and print where its CPU goes",
    )
    p.add_argument("--profile-target", default="kubecrawl", help="comma list of contenders to profile")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # a bench started in the background has SIGINT ignored; make INT and TERM stop it cleanly
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    site_dir = args.site_dir or BENCH_DIR / ".cache" / f"site-{args.pages}-{args.page_kb}k-{args.links}l"
    site: SiteInfo = generate_site(site_dir, args.pages, args.page_kb, args.links)
    scrapy_python = ensure_bench_venv() if ("scrapy" in names or args.profile != "none") else None
    workdir = Path(tempfile.mkdtemp(prefix="kc-bench-"))
    try:
        with StaticServer(site.root, kind=args.server) as server:
            start = server.base_url + site.start_path
            contenders = build_contenders(names, start, args.concurrency, workdir / "result.json", scrapy_python)

            def progress(m: Measured) -> None:
                log.info(
                    "%-18s pages %6d  wall %7.2fs  cpu %7.2fs (crawl %7.2fs)  rss %6.1f MB  exit %d",
                    m.name,
                    m.pages,
                    m.crawl_wall_s or 0.0,
                    m.process_cpu_s,
                    m.crawl_cpu_s or 0.0,
                    m.peak_rss_mb,
                    m.exit_code,
                )

            load_before = os.getloadavg()
            machine = machine_info(server.server_name)  # before the runs: the commit they measure
            runs: list[Measured] = []
            interrupted = False

            def record(m: Measured) -> None:
                runs.append(m)
                progress(m)

            try:
                run_rounds(contenders, args.repeat, workdir, record, args.repeat_slow)
            except KeyboardInterrupt:
                # report what was measured so far: a long run stopped early is still worth its figures
                log.warning("interrupted after %d run(s): reporting those", len(runs))
                interrupted = True
            server_problems = server.problems()
            if server_problems:
                log.warning("the static server logged %d error(s), e.g. %s", len(server_problems), server_problems[0])
            summary: Summary = summarise(runs, site, args.concurrency, args.repeat)
            summary.machine["server_errors"] = len(server_problems)
            if interrupted:
                summary.machine["interrupted"] = True
            if args.repeat_slow is not None:
                summary.machine["repeat_slow"] = args.repeat_slow
            summary.machine = {**machine, **summary.machine}
            summary.machine["loadavg_before"] = [round(x, 2) for x in load_before]
            summary.machine["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            summary.command = "python -m bench local " + " ".join(argv if argv is not None else sys.argv[2:])
            print_report(summary)
            out = args.json or BENCH_DIR / "results" / f"local-{dt.datetime.now():%Y%m%dT%H%M%S}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(summary.model_dump_json(indent=2))
            log.info("results written to %s", out)
            if interrupted:
                return 130
            if args.profile != "none":
                from .profile import profile_contender

                targets = [n.strip() for n in args.profile_target.split(",") if n.strip()]
                for c in build_contenders(targets, start, args.concurrency, workdir / "result.json", scrapy_python):
                    profile_contender(c.name, args.profile, c.cmd, c.env, workdir)
    except KeyboardInterrupt:
        log.warning("interrupted: the contender that was running was stopped")
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if summary.complete else 1

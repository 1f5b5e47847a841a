"""The ``kubecrawl`` command: crawl, status, export, push, demo (see docs/contracts.md §1)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from ._version import __version__
from .errors import ConfigurationError, KubecrawlError
from .settings import Settings, build_settings, parse_kv

log = logging.getLogger("kubecrawl")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubecrawl", description="A Kubernetes-native distributed web crawler.")
    p.add_argument("--version", action="version", version=f"kubecrawl {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("crawl", help="run a spider (role none, master or slave)")
    c.add_argument(
        "spider",
        nargs="?",
        help="a spider name inside a Scrapy project (scrapy.cfg), pkg.module:Class, file.py[:Class] or spider.yaml "
        "(env KUBECRAWL_SPIDER)",
    )
    c.add_argument("--role", choices=["none", "master", "slave"])
    c.add_argument("--redis-url")
    c.add_argument("--crawl", help="crawl name (Redis key prefix); default: the spider's name")
    c.add_argument(
        "-o",
        "--output",
        action="append",
        metavar="FEED",
        help="append items to FEED (repeatable): FILE (.jsonl .json .csv .xml), FILE:FORMAT, - (stdout), "
        "postgresql://...; templates %%(name)s %%(time)s %%(round)s",
    )
    c.add_argument(
        "-O", "--overwrite-output", action="append", metavar="FEED", help="as -o, but overwrite FEED at the start"
    )
    c.add_argument("--state-dir", type=Path, help="persist queue, fingerprints and items here to resume")
    c.add_argument("--every", type=float, help="re-run the start requests every N seconds (incremental)")
    c.add_argument("--cron", help='re-run the start requests on a cron schedule, e.g. "*/5 * * * *"')
    c.add_argument("--max-rounds", type=int)
    c.add_argument(
        "--exit-when-idle", action="store_true", default=None, help="slave: exit 0 when the round is complete"
    )
    c.add_argument("--health-port", type=int)
    c.add_argument("--settings", dest="settings_file", type=Path, help="YAML settings file")
    c.add_argument("-s", "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument("-a", dest="spider_args", action="append", default=[], metavar="NAME=VALUE", help="spider argument")
    c.add_argument("-L", "--log-level", "--loglevel")
    c.add_argument("--logfile", type=Path, help="write the log to FILE (Scrapy's LOG_FILE)")

    st = sub.add_parser("status", help="show a distributed crawl's progress")
    st.add_argument("--redis-url", default=os.environ.get("KUBECRAWL_REDIS_URL", "redis://127.0.0.1:6379/0"))
    st.add_argument("--crawl", default=os.environ.get("KUBECRAWL_CRAWL"), required="KUBECRAWL_CRAWL" not in os.environ)
    st.add_argument("--json", action="store_true")

    ex = sub.add_parser(
        "export", help="write a crawl's items: from Redis (--redis-url, --crawl) or a --state-dir, not both"
    )
    ex.add_argument("--redis-url", help="default: env KUBECRAWL_REDIS_URL, unless --state-dir is given")
    ex.add_argument("--crawl", default=os.environ.get("KUBECRAWL_CRAWL"), help="with --redis-url (env KUBECRAWL_CRAWL)")
    ex.add_argument("--state-dir", type=Path, help="the --state-dir of a local crawl: every item it stored")
    ex.add_argument(
        "-o",
        "--output",
        required=True,
        help="FILE or FILE:FORMAT (.jsonl .json .csv .xml; rewritten, or appended with --since)",
    )
    ex.add_argument("--since", help="Redis only: stream id to start after (default: all)")

    pu = sub.add_parser(
        "push",
        help="queue URLs into a crawl (Redis or a --state-dir): arguments, or - for stdin (URL or JSON per line)",
    )
    pu.add_argument(
        "urls", nargs="+", metavar="URL", help="http(s) URLs; - reads one per line (or JSON lines) from stdin"
    )
    pu.add_argument("--redis-url", help="the crawl's Redis (default: env KUBECRAWL_REDIS_URL)")
    pu.add_argument("--crawl", default=os.environ.get("KUBECRAWL_CRAWL"), help="crawl name (env KUBECRAWL_CRAWL)")
    pu.add_argument("--state-dir", type=Path, help="the --state-dir of a local crawl (not while it runs)")
    pu.add_argument("--callback", help="spider method for these requests (default: parse)")
    pu.add_argument("--priority", type=int, help="priority of these requests (default 0; JSON lines may say)")

    from .commands import add_parsers

    add_parsers(sub)

    d = sub.add_parser("demo", help="serve a bundled example site on 127.0.0.1 and crawl it (no internet needed)")
    d.add_argument("-o", "--output", type=Path, default=Path("demo-items.jsonl"))
    d.add_argument("--site", choices=["books", "news"], default="books")
    return p


def _crawl_settings(args: argparse.Namespace, spider_settings: dict[str, Any], project: Any = None) -> Settings:
    cli: dict[str, Any] = {
        "role": args.role,
        "redis_url": args.redis_url,
        "crawl": args.crawl,
        "output": args.output,
        "overwrite_output": args.overwrite_output,
        "state_dir": args.state_dir,
        "every": args.every,
        "cron": args.cron,
        "max_rounds": args.max_rounds,
        "exit_when_idle": args.exit_when_idle,
        "health_port": args.health_port,
        "settings_file": args.settings_file,
        "log_level": args.log_level,
        "log_file": args.logfile,
    }
    cli.update(parse_kv(args.sets))
    if project is None:
        return build_settings(cli=cli, spider_settings=spider_settings)
    from .project import project_build_settings

    return project_build_settings(
        project, cli=cli, spider_settings=spider_settings, drop_feeds=bool(args.output or args.overwrite_output)
    )


def cmd_crawl(args: argparse.Namespace) -> int:
    from .project import find_project, spider_class
    from .runner import CrawlProcess

    ref = args.spider or os.environ.get("KUBECRAWL_SPIDER")
    if not ref:
        raise ConfigurationError("no spider given: pass SPIDER or set KUBECRAWL_SPIDER")
    project = find_project()
    spider_cls = spider_class(ref, project)
    settings = _crawl_settings(args, dict(spider_cls.custom_settings or {}), project)
    if (
        settings.role == "slave"
        and settings.health_port is None
        and os.environ.get("KUBERNETES_SERVICE_HOST")
        and "health_port" not in _explicit(args)
    ):
        settings.health_port = 8080  # the probes of the operator's pods; a laptop runs many slaves side by side
    _setup_logging(settings)
    if settings.role == "none" and not settings.feed_specs() and settings.state_dir is None:
        log.warning("no -o/--output given: items are counted but not written anywhere")
    if settings.role == "master" and settings.feed_specs():
        log.warning("role master: items go to the crawl's Redis stream; the slaves deliver them to their feeds")
    spider_args = {}
    for pair in args.spider_args:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigurationError(f"-a expects NAME=VALUE, got {pair!r}")
        spider_args[name.strip()] = value
    return asyncio.run(_run(CrawlProcess(spider_cls, settings, spider_args=spider_args), settings))


def _explicit(args: argparse.Namespace) -> set[str]:
    keys = {k.split("=", 1)[0].lower() for k in args.sets}
    if args.health_port is not None:
        keys.add("health_port")
    if os.environ.get("KUBECRAWL_HEALTH_PORT"):
        keys.add("health_port")
    return keys


def _setup_logging(settings: Settings) -> None:
    from .logs import setup_logging

    setup_logging(settings.log_level, settings.log_format, settings.log_file)


async def _run(proc: Any, settings: Settings) -> int:
    from .progress import Progress

    proc.install_signal_handlers()
    progress = Progress.for_settings(settings)
    proc.on_progress = progress.update
    with progress:
        code: int = await proc.run()
    progress.summary(proc.stats, settings, proc.rounds_run, proc.item_key, proc.fatal)
    return code


def cmd_status(args: argparse.Namespace) -> int:
    from .status import format_status, read_status, redis_client

    st = read_status(redis_client(args.redis_url), args.crawl)
    if args.json:
        sys.stdout.write(orjson.dumps(st.as_dict()).decode() + "\n")
    else:
        sys.stdout.write(format_status(st) + "\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    redis_url: str | None = args.redis_url or (None if args.state_dir else os.environ.get("KUBECRAWL_REDIS_URL"))
    if (redis_url is None) == (args.state_dir is None):
        raise ConfigurationError(
            "export needs exactly one source: --redis-url URL --crawl NAME (or env KUBECRAWL_REDIS_URL), "
            "or --state-dir DIR"
        )
    if args.state_dir is not None:
        from .backends.sqlite import export_state_items

        if args.since is not None:
            raise ConfigurationError("--since applies to a Redis crawl's item stream, not to --state-dir")
        n = export_state_items(args.state_dir, args.output)
    else:
        from .status import export_items, redis_client

        assert redis_url is not None
        if not args.crawl:
            raise ConfigurationError("export from Redis needs --crawl NAME (or env KUBECRAWL_CRAWL)")
        n = export_items(redis_client(redis_url), args.crawl, args.output, since=args.since or "0")
    sys.stderr.write(f"exported {n} item(s) to {args.output}\n")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from .push import entries, open_queue, push

    if args.callback is not None and (not args.callback.isidentifier() or args.callback.startswith("_")):
        raise ConfigurationError(f"--callback must name a public spider method, got {args.callback!r}")
    with open_queue(args.redis_url, args.state_dir, args.crawl) as q:
        summary = push(q, entries(args.urls, sys.stdin.buffer), callback=args.callback, priority=args.priority)
    sys.stdout.write(summary.line() + "\n")
    return 2 if summary.invalid else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.output, args.site)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from .commands import HANDLERS

        handlers = {
            "crawl": cmd_crawl,
            "status": cmd_status,
            "export": cmd_export,
            "demo": cmd_demo,
            "push": cmd_push,
            **HANDLERS,
        }
        handler = handlers[args.command]
        return handler(args)
    except ConfigurationError as exc:
        sys.stderr.write(f"kubecrawl: configuration error: {exc}\n")
        return 2
    except KubecrawlError as exc:
        sys.stderr.write(f"kubecrawl: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

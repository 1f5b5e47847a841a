"""Scrapy's project commands: ``list``, ``genspider``, ``shell`` and ``parse`` (docs/scrapy.md).

``crawl`` itself is in kubecrawl/cli.py; these add to it what a Scrapy user runs while writing a spider.
"""

from __future__ import annotations

import argparse
import importlib
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError, SpiderError

TEMPLATES = Path(__file__).parent / "templates"


def add_parsers(sub: Any) -> None:
    sub.add_parser("list", help="print the spiders of the Scrapy project around the current directory")

    g = sub.add_parser("genspider", help="write a new spider from a template (in a project: in NEWSPIDER_MODULE)")
    g.add_argument("name", nargs="?")
    g.add_argument("domain", nargs="?", help="a domain or a start URL")
    g.add_argument("-t", "--template", default="basic", help="basic (default), crawl, xmlfeed or csvfeed")
    g.add_argument("-l", "--list", action="store_true", help="list the templates")
    g.add_argument("-d", "--dump", metavar="TEMPLATE", help="print a template")
    g.add_argument("--force", action="store_true", help="overwrite an existing spider file")

    sh = sub.add_parser("shell", help="fetch a URL (or read a file) and open a Python shell with the response")
    sh.add_argument("url", nargs="?", help="a URL or a local file")
    sh.add_argument("-c", dest="code", help="evaluate CODE with response, request, fetch, view...; print it and exit")
    sh.add_argument("--spider", help="use this spider (name in the project, or a spider reference)")
    _common(sh)

    pa = sub.add_parser("parse", help="fetch a URL and print the items and requests a callback yields")
    pa.add_argument("url")
    pa.add_argument("--spider", help="spider name in the project, or a spider reference (default: by the URL's domain)")
    pa.add_argument("-c", "--callback", help="the spider method to parse the response with (default: parse)")
    pa.add_argument(
        "-r", "--rules", action="store_true", help="the callback of the first CrawlSpider rule matching URL"
    )
    pa.add_argument("-a", dest="spider_args", action="append", default=[], metavar="NAME=VALUE")
    pa.add_argument("-m", "--meta", help="JSON object: the request's meta")
    pa.add_argument("--cbkwargs", help="JSON object: the callback's keyword arguments")
    pa.add_argument("-d", "--depth", type=int, default=1, help="follow yielded requests this many levels (default 1)")
    pa.add_argument("--nolinks", action="store_true", help="do not print requests")
    pa.add_argument("--noitems", action="store_true", help="do not print items")
    pa.add_argument("--pipelines", action="store_true", help="run the items through the item pipelines")
    pa.add_argument("--json", action="store_true", help="one JSON object per level instead of Scrapy's layout")
    _common(pa)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-L", "--log-level", "--loglevel", dest="log_level")


def _project() -> Any:
    from ..project import find_project

    return find_project()


def command_settings(project: Any, spider_cls: type | None, args: argparse.Namespace) -> Any:
    """Settings for a one-off command: the project's, the spider's, ``-s``; role none, no progress display."""
    from ..settings import build_settings, parse_kv

    cli: dict[str, Any] = {"role": "none", "progress": "off", "log_level": args.log_level}
    cli.update(parse_kv(args.sets))
    spider_settings = dict(getattr(spider_cls, "custom_settings", None) or {})
    if project is None:
        return build_settings(cli=cli, spider_settings=spider_settings)
    from ..project import project_build_settings

    return project_build_settings(project, cli=cli, spider_settings=spider_settings)


def pick_spider(project: Any, ref: str | None, url: str | None, *, required: bool) -> type | None:
    """``--spider`` (a name or a reference), else the one project spider for the URL's domain."""
    from ..project import spider_class

    if ref:
        return spider_class(ref, project)
    if project is not None and url:
        found = project.spiders_for_url(url)
        if len(found) == 1:
            return found[0]
        if required:
            names = ", ".join(sorted(c.name for c in found))
            why = f"several spiders handle it ({names})" if found else "no spider of the project handles its domain"
            raise SpiderError(f"cannot choose a spider for {url}: {why}; name one with --spider")
    elif required:
        raise SpiderError("no spider: name one with --spider (outside a project: a .py file or module:Class)")
    return None


def cmd_list(args: argparse.Namespace) -> int:
    project = _project()
    if project is None:
        raise ConfigurationError("list: not inside a Scrapy project (no scrapy.cfg here or above)")
    for name in sorted(project.spiders()):
        sys.stdout.write(name + "\n")
    return 0


def _module_name(name: str) -> str:
    """Scrapy's module name for a spider name: ``-`` and ``.`` become ``_``, a leading non-letter gets ``a``."""
    module = name.replace("-", "_").replace(".", "_")
    if not module or module[0] not in string.ascii_letters:
        module = "a" + module
    return module


def _templates() -> list[str]:
    return sorted(p.stem for p in TEMPLATES.glob("*.tmpl"))


def _template(name: str) -> str:
    path = TEMPLATES / f"{name}.tmpl"
    if not path.is_file():
        raise ConfigurationError(f"unknown template {name!r} (templates: {', '.join(_templates())})")
    return path.read_text(encoding="utf-8")


def cmd_genspider(args: argparse.Namespace) -> int:
    if args.list:
        sys.stdout.write("Available templates:\n" + "".join(f"  {t}\n" for t in _templates()))
        return 0
    if args.dump:
        sys.stdout.write(_template(args.dump))
        return 0
    if not args.name or not args.domain:
        raise ConfigurationError("genspider needs NAME and DOMAIN (or a start URL)")
    tmpl = _template(args.template)
    url = args.domain if "://" in args.domain else f"https://{args.domain}"
    domain = urlsplit(url).netloc
    if not domain:
        raise ConfigurationError(f"genspider: no domain in {args.domain!r}")
    module = _module_name(args.name)
    classname = "".join(part.capitalize() for part in module.split("_")) + "Spider"
    project = _project()
    target_dir, where = Path.cwd(), None
    if project is not None:
        if args.name == project.settings.get("BOT_NAME"):
            raise ConfigurationError(f"a spider cannot have the project's name ({args.name!r}), as in Scrapy")
        if not args.force and args.name in project.spiders():
            cls = project.spiders()[args.name]
            raise ConfigurationError(f"spider {args.name!r} already exists in module {cls.__module__}")
        newmod = project.settings.get("NEWSPIDER_MODULE")
        if newmod:
            mod = importlib.import_module(newmod)
            target_dir = Path(mod.__path__[0]) if hasattr(mod, "__path__") else Path(mod.__file__ or ".").parent
            where = f"{newmod}.{module}"
    path = target_dir / f"{module}.py"
    if path.exists() and not args.force:
        raise ConfigurationError(f"{path} already exists (use --force to overwrite it)")
    text = string.Template(tmpl).substitute(name=args.name, domain=domain, url=url, classname=classname)
    path.write_text(text, encoding="utf-8")
    sys.stdout.write(
        f"Created spider {args.name!r} using template {args.template!r} "
        + (f"in module:\n  {where}\n" if where else f"in {path}\n")
    )
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    from .shell import run_shell

    return run_shell(args)


def cmd_parse(args: argparse.Namespace) -> int:
    from .parse import run_parse

    return run_parse(args)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list,
    "genspider": cmd_genspider,
    "shell": cmd_shell,
    "parse": cmd_parse,
}

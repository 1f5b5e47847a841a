"""Scrapy projects: ``scrapy.cfg`` + a settings module + spider modules, found as Scrapy finds them.

Inside a project ``kubecrawl crawl NAME``, ``list``, ``genspider``, ``shell`` and ``parse`` work as
Scrapy's commands do (docs/scrapy.md):

- the project is the closest ``scrapy.cfg`` walking up from the current directory; its directory is
  put on ``sys.path``; ``[settings] default = pkg.settings`` names the settings module (another key
  with ``SCRAPY_PROJECT``), and ``SCRAPY_SETTINGS_MODULE`` in the environment overrides it;
- the settings are the module's upper-case names (as Scrapy's ``Settings.setmodule`` reads them); they
  rank below a spider's ``custom_settings``, as Scrapy's "project" priority does, and unknown names are
  refused with every other unknown key at once (:func:`kubecrawl.settings.build_settings`);
- spiders are the classes with a ``name`` in the modules of ``SPIDER_MODULES`` (packages walked
  recursively), as Scrapy's ``SpiderLoader``; two classes with one name is an error naming both.

A spider is always found again by its name in its module (every process of a distributed crawl imports
the project itself); nothing about it is pickled.
"""

from __future__ import annotations

import configparser
import importlib
import inspect
import logging
import os
import pkgutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, SpiderError
from .spider import Spider

log = logging.getLogger(__name__)

SETTINGS_ENV = "SCRAPY_SETTINGS_MODULE"
#: where kubecrawl keeps project data (the HTTP cache), next to scrapy.cfg; Scrapy's is ``.scrapy``
DATA_DIR = ".kubecrawl"


def closest_cfg(start: Path | None = None) -> Path | None:
    """The closest ``scrapy.cfg`` in ``start`` (default: the current directory) or above it."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        cfg = d / "scrapy.cfg"
        if cfg.is_file():
            return cfg
    return None


def _declared_name(cls: type) -> str | None:
    """The spider's ``name`` if a user class declares one (kubecrawl's base class default does not count)."""
    for k in cls.__mro__:
        if "name" in vars(k):
            if k is Spider:
                return None
            value = vars(k)["name"]
            return value if isinstance(value, str) and value else None
    return None


def _walk_modules(path: str) -> Iterator[ModuleType]:
    """The module ``path`` and, for a package, every module under it (Scrapy's ``walk_modules``)."""
    try:
        mod = importlib.import_module(path)
    except ImportError as exc:
        raise SpiderError(f"cannot import spider module {path!r} (SPIDER_MODULES): {exc}") from exc
    yield mod
    if hasattr(mod, "__path__"):
        for info in pkgutil.iter_modules(mod.__path__):
            sub = f"{path}.{info.name}"
            if info.ispkg:
                yield from _walk_modules(sub)
            else:
                try:
                    yield importlib.import_module(sub)
                except Exception as exc:
                    raise SpiderError(f"importing spider module {sub!r} failed: {exc!r}") from exc


@dataclass
class Project:
    """One Scrapy project: its root (the directory of scrapy.cfg, if there is one) and settings module."""

    root: Path | None
    settings_module: str
    settings: dict[str, Any] = field(default_factory=dict)
    _spiders: dict[str, type[Spider]] | None = None

    @property
    def data_dir(self) -> Path:
        return (self.root or Path.cwd()) / DATA_DIR

    def spider_modules(self) -> list[str]:
        mods = self.settings.get("SPIDER_MODULES") or []
        return [mods] if isinstance(mods, str) else list(mods)

    def spiders(self) -> dict[str, type[Spider]]:
        """Every spider of ``SPIDER_MODULES`` by name."""
        if self._spiders is not None:
            return self._spiders
        found: dict[str, type[Spider]] = {}
        for path in self.spider_modules():
            for mod in _walk_modules(path):
                for obj in vars(mod).values():
                    if not (inspect.isclass(obj) and issubclass(obj, Spider) and obj.__module__ == mod.__name__):
                        continue
                    name = _declared_name(obj)
                    if name is None:
                        continue
                    other = found.get(name)
                    if other is not None and other is not obj:
                        raise SpiderError(
                            f"two spiders are named {name!r}: {other.__module__}.{other.__qualname__} and "
                            f"{obj.__module__}.{obj.__qualname__}; spider names must be unique in a project"
                        )
                    found[name] = obj
        self._spiders = found
        return found

    def spider(self, name: str) -> type[Spider]:
        spiders = self.spiders()
        cls = spiders.get(name)
        if cls is None:
            known = ", ".join(sorted(spiders)) or "none"
            raise SpiderError(f"spider not found: {name!r} (spiders of this project: {known})")
        return cls

    def spiders_for_url(self, url: str) -> list[type[Spider]]:
        """The project's spiders whose ``name`` or ``allowed_domains`` cover the URL's host (Scrapy's
        ``SpiderLoader.find_by_request``)."""
        host = (urlsplit(url).hostname or "").lower()
        out = []
        for cls in self.spiders().values():
            domains = [_declared_name(cls) or "", *(getattr(cls, "allowed_domains", None) or [])]
            if any(d and (host == d.lower() or host.endswith("." + d.lower())) for d in domains):
                out.append(cls)
        return out

    def crawl_settings(self, *, drop_feeds: bool = False) -> dict[str, Any]:
        """The settings module's settings for :func:`~kubecrawl.settings.build_settings`. ``drop_feeds``:
        ``-o``/``-O`` were given, which replace the project's ``FEEDS`` as in ``scrapy crawl``."""
        if drop_feeds:
            return {k: v for k, v in self.settings.items() if k != "FEEDS"}
        return dict(self.settings)


def module_settings(mod: ModuleType) -> dict[str, Any]:
    """A settings module's settings: its upper-case names, as Scrapy reads them."""
    return {k: getattr(mod, k) for k in dir(mod) if k.isupper()}


def find_project(start: Path | None = None, environ: dict[str, str] | None = None) -> Project | None:
    """The project around ``start`` (default: the current directory), or None outside one. Imports
    the settings module (raising :class:`ConfigurationError` if it cannot be imported)."""
    env = os.environ if environ is None else environ
    cfg = closest_cfg(start)
    root = cfg.parent if cfg is not None else None
    module = env.get(SETTINGS_ENV)
    if not module and cfg is not None:
        parser = configparser.ConfigParser()
        try:
            parser.read(cfg, encoding="utf-8")
        except configparser.Error as exc:
            raise ConfigurationError(f"cannot read {cfg}: {exc}") from None
        key = env.get("SCRAPY_PROJECT", "default")
        if parser.has_option("settings", key):
            module = parser.get("settings", key)
        elif "SCRAPY_PROJECT" in env:
            raise ConfigurationError(f"{cfg} has no [settings] {key} = <settings module> entry (SCRAPY_PROJECT)")
        else:  # as Scrapy: such a scrapy.cfg names no settings, so there is no project to read
            log.warning("%s has no [settings] default = <settings module>: not read as a Scrapy project", cfg)
            return None
    if not module:
        return None
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        mod = importlib.import_module(module)
    except Exception as exc:
        where = f" (from {cfg})" if cfg is not None and not env.get(SETTINGS_ENV) else f" ({SETTINGS_ENV})"
        raise ConfigurationError(f"cannot import the project's settings module {module!r}{where}: {exc!r}") from None
    return Project(root, module, module_settings(mod))


def is_spider_name(ref: str) -> bool:
    """A bare spider name (``quotes``), not a file, module:Class or declarative spider."""
    return ":" not in ref and "/" not in ref and not ref.endswith((".py", ".yaml", ".yml", ".json"))


def spider_class(ref: str, project: Project | None) -> type[Spider]:
    """The spider ``ref`` names: a project spider by name, else what :func:`kubecrawl.loader.load_spider_class`
    accepts (a file, ``module:Class`` or a declarative spider)."""
    if is_spider_name(ref):
        if project is None:
            raise SpiderError(
                f"spider {ref!r}: not inside a Scrapy project (no scrapy.cfg here or above, no {SETTINGS_ENV}); "
                "give a spider by name inside a project, or package.module:Class, a .py file or a .yaml spider"
            )
        return project.spider(ref)
    from .loader import load_spider_class

    return load_spider_class(ref)


def project_build_settings(
    project: Project,
    *,
    cli: dict[str, Any],
    spider_settings: dict[str, Any],
    drop_feeds: bool = False,
    environ: dict[str, str] | None = None,
) -> Any:
    """:func:`~kubecrawl.settings.build_settings` with the project's settings module as the lowest layer;
    a relative ``HTTPCACHE_DIR`` is placed under the project's ``.kubecrawl/``."""
    from .settings import build_settings

    settings = build_settings(
        cli=cli,
        spider_settings=spider_settings,
        environ=environ,
        project_settings=project.crawl_settings(drop_feeds=drop_feeds),
    )
    if not settings.http_cache_dir.is_absolute():
        settings.http_cache_dir = project.data_dir / settings.http_cache_dir
    return settings

"""Finding the spider a user names: ``pkg.module:Class``, ``path/to/file.py[:Class]`` or a YAML/JSON spider."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from .errors import SpiderError
from .spider import Spider


def _spider_classes(mod: ModuleType) -> list[type[Spider]]:
    return [
        obj
        for obj in vars(mod).values()
        if inspect.isclass(obj) and issubclass(obj, Spider) and obj.__module__ == mod.__name__
    ]


def _pick(mod: ModuleType, cls_name: str | None, ref: str) -> type[Spider]:
    if cls_name:
        cls = getattr(mod, cls_name, None)
        if not (inspect.isclass(cls) and issubclass(cls, Spider)):
            raise SpiderError(f"{ref}: {cls_name!r} is not a Spider subclass in {mod.__name__}")
        return cls
    found = _spider_classes(mod)
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise SpiderError(f"{ref}: expected exactly one Spider subclass, found {names}; name one as {ref}:Class")
    return found[0]


def load_spider_class(ref: str) -> type[Spider]:
    """Resolve a spider reference to a Spider class (declarative files become a generated class)."""
    path_part, _, cls_name = ref.partition(":") if not _is_windows_drive(ref) else (ref, "", "")
    path = Path(path_part)
    if path.suffix in (".yaml", ".yml", ".json"):
        if not path.is_file():
            raise SpiderError(f"spider file {path} does not exist")
        from .declarative import load_declarative_spider

        return load_declarative_spider(path)
    if path.suffix == ".py":
        if not path.is_file():
            raise SpiderError(f"spider file {path} does not exist")
        mod_name = f"kubecrawl_user_spider_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise SpiderError(f"cannot import {path}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = mod
        sys.path.insert(0, str(path.resolve().parent))
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:
            raise SpiderError(f"importing {path} failed: {exc!r}") from exc
        return _pick(mod, cls_name or None, ref)
    if not cls_name:
        raise SpiderError(f"spider {ref!r}: use package.module:Class, a .py file, or a .yaml spider")
    try:
        mod = importlib.import_module(path_part)
    except ImportError as exc:
        raise SpiderError(f"cannot import spider module {path_part!r}: {exc}") from None
    return _pick(mod, cls_name, ref)


def _is_windows_drive(ref: str) -> bool:
    return len(ref) > 2 and ref[1] == ":" and ref[2] in "\\/"

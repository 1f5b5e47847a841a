"""Scrapy's ``Item`` and ``Field``: a dict whose keys are the declared fields, nothing else.

An :class:`Item` is a ``dict`` subclass here (in Scrapy it is a ``MutableMapping``), so the engine,
the pipelines and the stores take it as they take any dict. Setting an undeclared field raises
``KeyError`` as in Scrapy. :mod:`itemadapter` is taught about it, so ``ItemAdapter(item)`` and
:class:`~kubecrawl.scrapy.loader.ItemLoader` see the fields and their metadata (``input_processor``...).
"""

from __future__ import annotations

from collections import deque
from collections.abc import KeysView
from copy import deepcopy
from types import MappingProxyType
from typing import Any, ClassVar, cast

from itemadapter import ItemAdapter
from itemadapter.adapter import DictAdapter


class Field(dict[str, Any]):
    """A field declaration; its keyword arguments are the field's metadata (``serializer``, processors...)."""


class ItemMeta(type):
    """Collects the :class:`Field` class attributes (inherited ones included) into ``fields``."""

    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> ItemMeta:
        fields: dict[str, Field] = {}
        for base in reversed(bases):
            fields.update(getattr(base, "fields", {}))
        own = {k: v for k, v in ns.items() if isinstance(v, Field)}
        for k in own:
            del ns[k]
        fields.update(own)
        ns["fields"] = fields
        return super().__new__(mcs, name, bases, ns)


class Item(dict[str, Any], metaclass=ItemMeta):
    """Subclass with ``name = scrapy.Field()`` attributes, then use it as a dict of those fields."""

    fields: ClassVar[dict[str, Field]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if args or kwargs:
            for k, v in dict(*args, **kwargs).items():
                self[k] = v

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.fields:
            raise KeyError(f"{type(self).__name__} does not support field: {key}")
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __getattr__(self, name: str) -> Any:
        if name in type(self).fields:
            raise AttributeError(f"Use item[{name!r}] to get field value")
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            raise AttributeError(f"Use item[{name!r}] = {value!r} to set field value")
        super().__setattr__(name, value)

    def copy(self) -> Item:  # type: ignore[override]
        return type(self)(self)

    def deepcopy(self) -> Item:
        return deepcopy(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


class _ItemAdapter(DictAdapter):
    """itemadapter support: the declared fields and their metadata, like Scrapy's own adapter."""

    @classmethod
    def is_item(cls, item: Any) -> bool:
        return isinstance(item, Item)

    @classmethod
    def is_item_class(cls, item_class: type) -> bool:
        return isinstance(item_class, type) and issubclass(item_class, Item)

    @classmethod
    def get_field_meta_from_class(cls, item_class: type, field_name: str) -> MappingProxyType[str, Any]:
        return MappingProxyType(item_class.fields[field_name])  # type: ignore[attr-defined]

    @classmethod
    def get_field_names_from_class(cls, item_class: type) -> list[str] | None:
        return list(item_class.fields)  # type: ignore[attr-defined]

    def field_names(self) -> KeysView[str]:
        return KeysView(self.item.fields)


_adapters = cast("deque[type[Any]]", ItemAdapter.ADAPTER_CLASSES)
if _ItemAdapter not in _adapters:
    _adapters.appendleft(_ItemAdapter)

"""Scrapy's ``Headers``: a case-insensitive mapping of header names to lists of ``bytes`` values."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import httpx


def _b(value: Any, encoding: str = "utf-8") -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode(encoding)
    return str(value).encode(encoding)


def _norm(key: Any) -> bytes:
    return _b(key).title()


class Headers(MutableMapping[bytes, bytes]):
    """``headers[b"Content-Type"]`` and ``headers.get("content-type")`` give the last value as ``bytes``;
    ``getlist`` gives every value. Keys are normalised as Scrapy does (``Content-Type``)."""

    def __init__(
        self, seq: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None, encoding: str = "utf-8"
    ) -> None:
        self.encoding = encoding
        self._d: dict[bytes, list[bytes]] = {}
        if seq is None:
            return
        if isinstance(seq, httpx.Headers):
            for k, v in seq.multi_items():
                self._d.setdefault(_norm(k), []).append(_b(v, "latin-1"))
            return
        items = seq.items() if isinstance(seq, Mapping) else seq
        for k, v in items:
            self[k] = v

    def _values(self, value: Any) -> list[bytes]:
        if value is None:
            return []
        if isinstance(value, list | tuple):
            return [_b(v, self.encoding) for v in value]
        return [_b(value, self.encoding)]

    def __getitem__(self, key: Any) -> bytes:
        values = self._d[_norm(key)]
        if not values:
            raise KeyError(key)
        return values[-1]

    def get(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        values = self._d.get(_norm(key))
        return values[-1] if values else default

    def getlist(self, key: Any, default: Any = None) -> list[bytes]:
        values = self._d.get(_norm(key))
        if values is not None:
            return list(values)
        return self._values(default) if default is not None else []

    def setlist(self, key: Any, values: Iterable[Any]) -> None:
        self._d[_norm(key)] = self._values(list(values))

    def appendlist(self, key: Any, value: Any) -> None:
        self._d.setdefault(_norm(key), []).extend(self._values(value))

    def setdefault(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        if _norm(key) not in self._d:
            self[key] = default
        return self.get(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._d[_norm(key)] = self._values(value)

    def __delitem__(self, key: Any) -> None:
        del self._d[_norm(key)]

    def __contains__(self, key: object) -> bool:
        return _norm(key) in self._d

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def items(self) -> list[tuple[bytes, list[bytes]]]:  # type: ignore[override]
        return [(k, list(v)) for k, v in self._d.items()]

    def values(self) -> list[bytes | None]:  # type: ignore[override]
        return [v[-1] if v else None for v in self._d.values()]

    def to_unicode_dict(self) -> dict[str, str]:
        return {k.decode(self.encoding): b",".join(v).decode(self.encoding) for k, v in self._d.items()}

    def to_string(self) -> bytes:
        return b"\r\n".join(k + b": " + v for k, vs in self._d.items() for v in vs)

    def copy(self) -> Headers:
        h = Headers(encoding=self.encoding)
        h._d = {k: list(v) for k, v in self._d.items()}
        return h

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self._d.items())}}}"

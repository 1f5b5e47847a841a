"""``crawler.signals``: Scrapy's ``SignalManager`` (``connect``, ``disconnect``, ``send_catch_log``...)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class SignalManager:
    """Receivers by signal; a receiver that raises is logged and counted, never stops the crawl."""

    def __init__(self, sender: Any = None) -> None:
        self.sender = sender
        self.receivers: dict[Any, list[Callable[..., Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats: Any = None  # kubecrawl Stats, to count failing receivers

    def connect(self, receiver: Callable[..., Any], signal: Any, **kwargs: Any) -> None:
        rs = self.receivers.setdefault(signal, [])
        if receiver not in rs:
            rs.append(receiver)

    def disconnect(self, receiver: Callable[..., Any], signal: Any, **kwargs: Any) -> None:
        rs = self.receivers.get(signal, [])
        if receiver in rs:
            rs.remove(receiver)

    def disconnect_all(self, signal: Any, **kwargs: Any) -> None:
        self.receivers.pop(signal, None)

    def has(self, signal: Any) -> bool:
        return bool(self.receivers.get(signal))

    def _call(self, receiver: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        params = _accepts(receiver)
        args = kwargs if params is None else {k: v for k, v in kwargs.items() if k in params}
        return receiver(**args)

    def _failed(self, receiver: Any, exc: BaseException) -> None:
        if self.stats is not None:
            self.stats.error(f"signal:{type(exc).__name__}")
        log.error("signal handler %r failed: %r", receiver, exc, exc_info=exc)

    def send_catch_log(self, signal: Any, **kwargs: Any) -> list[tuple[Any, Any]]:
        """Call every receiver; a coroutine one is run as a task (its failure is logged)."""
        out = []
        kwargs = {"signal": signal, "sender": self.sender, **kwargs}
        for r in list(self.receivers.get(signal, ())):
            try:
                res = self._call(r, kwargs)
            except Exception as exc:
                self._failed(r, exc)
                out.append((r, exc))
                continue
            if inspect.isawaitable(res):
                task = asyncio.ensure_future(res)
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._done, receiver=r))
            out.append((r, res))
        return out

    def _done(self, task: asyncio.Task[Any], receiver: Any) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failed(receiver, task.exception())  # type: ignore[arg-type]

    async def send_catch_log_async(self, signal: Any, **kwargs: Any) -> list[tuple[Any, Any]]:
        """Call every receiver and await the coroutine ones (Scrapy 2.13's name)."""
        out = []
        kwargs = {"signal": signal, "sender": self.sender, **kwargs}
        for r in list(self.receivers.get(signal, ())):
            try:
                res = self._call(r, kwargs)
                if inspect.isawaitable(res):
                    res = await res
            except Exception as exc:
                self._failed(r, exc)
                res = exc
            out.append((r, res))
        return out

    send_catch_log_deferred = send_catch_log_async

    async def drain(self) -> None:
        """Wait for coroutine receivers started by :meth:`send_catch_log`."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _accepts(fn: Callable[..., Any]) -> set[str] | None:
    """The keyword names ``fn`` takes; None if it takes ``**kwargs`` (then it gets every argument)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}

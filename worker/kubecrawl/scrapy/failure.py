"""What a Scrapy-style errback (one argument) receives: the few parts of Twisted's ``Failure`` spiders use."""

from __future__ import annotations

import traceback
from typing import Any


class Failure:
    """``value`` (the exception), ``type``, ``request`` (the request that failed), ``check(*types)``,
    ``trap(*types)``, ``getErrorMessage()``, ``getTraceback()``, ``raiseException()``."""

    def __init__(self, value: BaseException, request: Any = None) -> None:
        self.value = value
        self.type = type(value)
        self.request = request

    def check(self, *types: type[BaseException] | str) -> type[BaseException] | str | None:
        for t in types:
            if isinstance(t, str):
                if any(f"{c.__module__}.{c.__qualname__}" == t or c.__name__ == t for c in self.type.__mro__):
                    return t
            elif isinstance(self.value, t):
                return t
        return None

    def trap(self, *types: type[BaseException]) -> type[BaseException]:
        found = self.check(*types)
        if found is None:
            raise self.value
        return found  # type: ignore[return-value]

    def getErrorMessage(self) -> str:
        return str(self.value)

    def getTraceback(self) -> str:
        return "".join(traceback.format_exception(self.value))

    def raiseException(self) -> None:
        raise self.value

    def __repr__(self) -> str:
        return f"<Failure {self.type.__name__}: {self.value}>"

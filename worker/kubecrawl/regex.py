"""Regular expressions from declarative spiders, run by RE2: time linear in the text, whatever the pattern.

A declarative spider comes from a YAML file or a Crawl resource, written by whoever may create Crawls,
and runs over pages strangers wrote. Python's ``re`` backtracks: ``(a+)+$`` on 27 characters takes
seconds and blocks the event loop (and ``/healthz``). RE2 (the ``google-re2`` binding) guarantees
linear time; what it cannot do in linear time (backreferences such as ``\\1``, lookahead ``(?=``,
``(?!``, lookbehind ``(?<=``, ``(?<!``) is refused when the spider is loaded, with the reason.

Python's ``\\w``, ``\\d`` and ``\\s`` match any Unicode letter, digit and space (``\\w+`` matches ``新闻``);
RE2's only ASCII ones. They are translated to Unicode classes first so a pattern means what it means
in Python. ``\\b`` stays RE2's (ASCII word boundaries).
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["RegexError", "compile_linear"]

# Python's Unicode classes as RE2 classes: (outside a [...] class, inside one)
_WORD = r"\p{L}\p{N}\p{Mn}_"
_SPACE = r"\s\v\x{85}\p{Z}"
_CLASSES = {
    "w": (f"[{_WORD}]", _WORD),
    "W": (f"[^{_WORD}]", None),
    "d": (r"\p{Nd}", r"\p{Nd}"),
    "D": (r"\P{Nd}", r"\P{Nd}"),
    "s": (f"[{_SPACE}]", _SPACE),
    "S": (f"[^{_SPACE}]", None),
}


class RegexError(ValueError):
    """A pattern RE2 cannot compile; the message says why and what to do."""


def unicode_classes(pattern: str) -> str:
    """``pattern`` with ``\\w \\W \\d \\D \\s \\S`` made Unicode-aware, as in Python's ``re``. Inside a
    ``[...]`` class, ``\\W`` and ``\\S`` (a negation within a class) keep RE2's ASCII meaning."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            forms = _CLASSES.get(nxt)
            if forms is not None:
                replacement = forms[1] if in_class else forms[0]
                out.append(replacement if replacement is not None else c + nxt)
            else:
                out.append(c + nxt)
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
            out.append(c)
            i += 1
            # a ']' right after '[' or '[^' is a literal, not the end of the class
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("]")
                i += 1
            continue
        if c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def compile_linear(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (an object with ``search``, ``finditer``, ``sub``, ``groups`` as
    ``re.Pattern``). Raises :class:`RegexError` for a pattern RE2 refuses."""
    import re2

    options = re2.Options()
    options.log_errors = False  # the error is raised with its reason; no C++ log line on stderr
    try:
        return re2.compile(unicode_classes(pattern), options=options)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        hint = ""
        if any(op in pattern for op in ("(?=", "(?!", "(?<=", "(?<!")) or _has_backreference(pattern):
            hint = (
                "; backreferences and lookaround cannot run in linear time, so declarative spiders do not"
                " support them: match more and narrow it with another step, or write the spider in Python"
            )
        raise RegexError(f"invalid regular expression {pattern!r}: {reason}{hint}") from None


def _has_backreference(pattern: str) -> bool:
    return re.search(r"\\[1-9]|\(\?P=", pattern) is not None

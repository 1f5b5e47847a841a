"""Logging set-up: human-friendly on a terminal, one JSON object per line otherwise (containers)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def setup_logging(level: str = "INFO", fmt: str = "auto", log_file: Path | None = None) -> None:
    """``log_file`` (Scrapy's ``LOG_FILE``): the log is appended to that file instead of standard error,
    as text unless ``fmt`` is ``json``."""
    tty = sys.stderr.isatty() and log_file is None
    handler: logging.Handler
    if log_file is not None:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(
            JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    elif fmt == "json" or (fmt == "auto" and not tty):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif tty:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

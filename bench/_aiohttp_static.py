"""Fallback static server when nginx is unavailable: ``python -m bench._aiohttp_static ROOT PORT``."""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web


def make_app(root: Path) -> web.Application:
    app = web.Application()
    app.router.add_static("/", root, show_index=False, follow_symlinks=False)
    return app


def main() -> None:
    root, port = Path(sys.argv[1]), int(sys.argv[2])
    web.run_app(make_app(root), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()

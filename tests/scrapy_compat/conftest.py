"""Fixtures for the Scrapy-compatibility tests: the local quotes site and the real Scrapy to compare with."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.httpserver import TestHTTPServer

from .quotes_site import serve_quotes_site

ROOT = Path(__file__).resolve().parents[2]
#: made by scripts/setup.sh (a separate venv, like bench's): Scrapy is never a kubecrawl dependency
SCRAPY_VENV = ROOT / ".venv-scrapy"


@pytest.fixture
def quotes_site() -> Iterator[TestHTTPServer]:
    server = serve_quotes_site(TestHTTPServer()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def scrapy_python() -> Path:
    """Real Scrapy's interpreter: ``KUBECRAWL_SCRAPY_PYTHON`` or ``.venv-scrapy`` from scripts/setup.sh."""
    py = Path(os.environ.get("KUBECRAWL_SCRAPY_PYTHON") or SCRAPY_VENV / "bin" / "python")
    if not py.exists():
        pytest.fail(f"real Scrapy is not installed ({py}): run scripts/setup.sh to compare against it", pytrace=False)
    return py

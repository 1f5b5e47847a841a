"""Fixtures for the chart tests: the real Helm binary (built from its Go module if missing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helm import Helm, find_helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary: Path = find_helm()
    return Helm(binary=binary, home=tmp_path_factory.mktemp("helm-home"))

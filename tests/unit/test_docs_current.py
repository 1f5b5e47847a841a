"""Generated docs stay in step with the code they describe."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_settings_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_settings_doc", ROOT / "scripts" / "gen_settings_doc.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    current = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert current == mod.render(), "docs/settings.md is stale: run scripts/gen_settings_doc.py"

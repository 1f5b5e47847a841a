"""Write docs/settings.md from kubecrawl.settings.Settings (the one place defaults live).

Run: .venv/bin/python scripts/gen_settings_doc.py   (tests/unit/test_docs_current.py fails when stale)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kubecrawl.settings import ENV_PREFIX, SCRAPY_ALIASES, SCRAPY_INERT, Settings

HEADER = """# Settings reference

Generated from `kubecrawl.settings.Settings` by `scripts/gen_settings_doc.py`; do not edit by hand.

Precedence, highest first: CLI flags and `-s KEY=VALUE` > environment `KUBECRAWL_<KEY>` > settings file
(`--settings FILE`, YAML) > the spider's `custom_settings` > the defaults below. Keys are case-insensitive;
lists may be given as comma lists (`-s item_key=title,source`). Unknown keys or an invalid value stop
the crawl at start-up with exit code 2 and a message naming every unknown key with the closest known name.
That includes the environment: a `KUBECRAWL_*` variable that is not a setting is an error, except the
variables other programs own (`kubecrawl.settings.NOT_SETTINGS`): `KUBECRAWL_WORKER_ID` (the worker's
name in Redis), `KUBECRAWL_OPERATOR_*` and `KUBECRAWL_WORKER_IMAGE` (the operator), `KUBECRAWL_E2E_*`,
`KUBECRAWL_TEST_*`, `KUBECRAWL_IMAGE(S)_*`, `KUBECRAWL_BUILD_*`, `KUBECRAWL_SETUP_*`, `KUBECRAWL_HELM`,
`KUBECRAWL_SCRAPY_PYTHON` (build and test tooling) and the service links Kubernetes injects for a Service
named `kubecrawl` (`KUBECRAWL_SERVICE_*`, `KUBECRAWL_PORT*`; crawl pods have them turned off).

| setting | environment | default | meaning |
|---|---|---|---|
"""


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if hasattr(default, "get_secret_value"):
            default = "***"
        shown = "—" if default is None else f"`{json.dumps(default, default=str, ensure_ascii=False)}`"
        desc = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | {shown} | {desc} |")
    aliases = [f"| `{name}` | `{field}` |" for name, (field, _) in SCRAPY_ALIASES.items()]
    scrapy = (
        "\n\n## Scrapy names\n\n"
        "Scrapy's names for these settings are accepted in every source (`custom_settings`, the settings file, "
        "`-s`, `KUBECRAWL_<NAME>`), as aliases (see [scrapy.md](scrapy.md)):\n\n"
        "| Scrapy setting | kubecrawl setting |\n|---|---|\n" + "\n".join(aliases) + "\n\n"
        "Accepted and without effect (logged once at start-up; `settings.get()` returns them): "
        + ", ".join(f"`{n}`" for n in sorted(SCRAPY_INERT))
        + ".\n"
    )
    return HEADER + "\n".join(rows) + scrapy


def main() -> int:
    target = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
    target.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Finding a Scrapy project and its spiders (kubecrawl/project.py), and how its settings rank."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubecrawl.errors import ConfigurationError, SpiderError
from kubecrawl.project import closest_cfg, find_project, project_build_settings, spider_class


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


SPIDER = "import kubecrawl.scrapy as scrapy\n\n\nclass {cls}(scrapy.Spider):\n    name = {name!r}\n{extra}"


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A project whose package name is unique to the test (modules are imported into this process)."""
    pkg = f"proj_{request.node.name.replace('[', '_').replace(']', '_').replace('-', '_')}"
    _write(
        tmp_path,
        {
            "scrapy.cfg": f"[settings]\ndefault = {pkg}.settings\nother = {pkg}.other_settings\n",
            f"{pkg}/__init__.py": "",
            f"{pkg}/settings.py": f'BOT_NAME = "x"\nSPIDER_MODULES = ["{pkg}.spiders"]\nDOWNLOAD_DELAY = 2\n'
            "CONCURRENT_REQUESTS = 5\nlowercase_is_not_a_setting = 1\n",
            f"{pkg}/other_settings.py": f'SPIDER_MODULES = ["{pkg}.spiders"]\nDOWNLOAD_DELAY = 7\n',
            f"{pkg}/spiders/__init__.py": "",
            f"{pkg}/spiders/a.py": SPIDER.format(
                cls="A",
                name="alpha",
                extra='    allowed_domains = ["example.com"]\n    custom_settings = {"DOWNLOAD_DELAY": 3}\n',
            ),
            f"{pkg}/spiders/deeper/__init__.py": "",
            f"{pkg}/spiders/deeper/b.py": SPIDER.format(cls="B", name="beta", extra="")
            + "\n\nclass Helper(scrapy.Spider):\n    pass\n",  # no name of its own: not a spider of the project
        },
    )
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith(pkg)]:
        del sys.modules[mod]
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_found_walking_up_with_its_spiders(project: Path) -> None:
    deep = project / next(p.name for p in project.iterdir() if p.is_dir()) / "spiders" / "deeper"
    assert closest_cfg(deep) == project / "scrapy.cfg"
    proj = find_project(deep, environ={})
    assert proj is not None and proj.root == project
    assert sorted(proj.spiders()) == ["alpha", "beta"]  # packages walked; nameless classes left out
    assert [c.name for c in proj.spiders_for_url("https://www.example.com/x")] == ["alpha"]
    assert proj.spiders_for_url("https://beta/") == [proj.spider("beta")]  # a name is a domain too
    with pytest.raises(SpiderError, match="spiders of this project: alpha, beta"):
        proj.spider("gamma")
    assert spider_class("alpha", proj) is proj.spider("alpha")
    assert closest_cfg(project.parent) is None
    assert find_project(project.parent, environ={}) is None


def test_settings_rank_below_custom_settings_and_above_defaults(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proj = find_project(project, environ={})
    assert proj is not None and "lowercase_is_not_a_setting" not in proj.settings
    cls = proj.spider("alpha")
    with caplog.at_level(logging.INFO):
        s = project_build_settings(proj, cli={}, spider_settings=dict(cls.custom_settings), environ={})
    assert s.download_delay == 3  # custom_settings beat settings.py, as in Scrapy
    assert s.concurrency == 5  # settings.py beats the default
    assert s.get("BOT_NAME") == "x"
    assert "BOT_NAME" not in caplog.text  # used by the project loader: not "no effect"
    s = project_build_settings(proj, cli={"DOWNLOAD_DELAY": "4"}, spider_settings={}, environ={})
    assert s.download_delay == 4
    assert s.http_cache_dir == project / ".kubecrawl" / "httpcache"


def test_scrapy_project_key_and_settings_module_env(project: Path) -> None:
    proj = find_project(project, environ={"SCRAPY_PROJECT": "other"})
    assert proj is not None and proj.settings["DOWNLOAD_DELAY"] == 7
    pkg = proj.settings_module.split(".")[0]
    proj = find_project(project, environ={"SCRAPY_SETTINGS_MODULE": f"{pkg}.other_settings"})
    assert proj is not None and proj.settings["DOWNLOAD_DELAY"] == 7
    with pytest.raises(ConfigurationError, match="no \\[settings\\] nope"):
        find_project(project, environ={"SCRAPY_PROJECT": "nope"})
    bare = project / "bare"
    _write(bare, {"scrapy.cfg": "[deploy]\nproject = x\n"})
    assert find_project(bare, environ={}) is None  # names no settings module: not a project, as in Scrapy
    with pytest.raises(ConfigurationError, match="cannot import the project's settings module"):
        find_project(project, environ={"SCRAPY_SETTINGS_MODULE": f"{pkg}.missing"})


def test_two_spiders_with_one_name_are_an_error(project: Path) -> None:
    pkg = next(p.name for p in project.iterdir() if p.is_dir())
    _write(project, {f"{pkg}/spiders/c.py": SPIDER.format(cls="C", name="alpha", extra="")})
    proj = find_project(project, environ={})
    assert proj is not None
    with pytest.raises(SpiderError, match="two spiders are named 'alpha'"):
        proj.spiders()


def test_addons_only_empty(project: Path) -> None:
    proj = find_project(project, environ={})
    assert proj is not None
    proj.settings["ADDONS"] = {}
    project_build_settings(proj, cli={}, spider_settings={}, environ={})
    proj.settings["ADDONS"] = {"some.Addon": 100}
    with pytest.raises(ConfigurationError, match="add-ons are not supported"):
        project_build_settings(proj, cli={}, spider_settings={}, environ={})

"""The distributions' metadata agree: one version per package, the same licence and Python floor,
integrations pinned to the core's current minor series and their framework below its next major."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import reasonrank_plugins

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "pyproject.toml"
INTEGRATIONS = {
    "integrations/llama-index-postprocessor-reasonrank-rerank": "llama-index-core",
    "integrations/langchain-reasonrank": "langchain-core",
    "integrations/reasonrank-haystack": "haystack-ai",
}
DISTRIBUTIONS = [ROOT, *(ROOT / d for d in INTEGRATIONS), ROOT / "training"]


def project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def declared_version(folder: Path) -> str:
    """The version the build reads: the ``__version__`` literal that [tool.setuptools.dynamic] names."""
    data = project(folder)
    assert data["project"]["dynamic"] == ["version"] and "version" not in data["project"]
    module = data["tool"]["setuptools"]["dynamic"]["version"]["attr"].rsplit(".", 1)[0]
    where = data["tool"]["setuptools"]["packages"]["find"].get("where", ["."])[0]
    init = folder / where / module.replace(".", "/") / "__init__.py"
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{init} defines no __version__")


def requirements(folder: Path) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in project(folder)["project"]["dependencies"]]
    return {r.name: r for r in reqs}


def test_core_version_is_read_from_the_package():
    assert declared_version(ROOT) == reasonrank_plugins.__version__
    Version(reasonrank_plugins.__version__)  # a valid PEP 440 version


def test_server_openapi_reports_the_package_version():
    pytest.importorskip("fastapi")
    from reasonrank_plugins import ReasonRanker
    from reasonrank_plugins.server.app import create_app

    with ReasonRanker("identity", backend="scripted") as ranker:
        assert create_app(ranker).openapi()["info"]["version"] == reasonrank_plugins.__version__


@pytest.mark.parametrize("folder", DISTRIBUTIONS, ids=lambda p: p.name)
def test_licence_and_python_floor_are_the_same_everywhere(folder):
    meta = project(folder)["project"]
    assert meta["license"] == "Apache-2.0"
    assert meta["license-files"] == ["LICENSE"]
    assert (folder / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert (folder / "LICENSE").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert meta["requires-python"] == project(ROOT)["project"]["requires-python"]
    build = [Requirement(r) for r in project(folder)["build-system"]["requires"]]
    assert any(r.name == "setuptools" and not r.specifier.contains("76.99") for r in build), (
        "SPDX license expressions need setuptools>=77"
    )
    assert {"Homepage", "Repository", "Issues", "Changelog"} <= set(meta["urls"])


@pytest.mark.parametrize("folder", [*INTEGRATIONS, "training"])
def test_dependents_pin_the_core_minor_series(folder):
    core = Version(reasonrank_plugins.__version__)
    pin = requirements(ROOT / folder)["reasonrank-plugins"].specifier
    assert pin.contains(str(core)), f"{folder} excludes the core's own version {core}"
    assert not pin.contains(f"{core.major}.{core.minor + 1}.0"), f"{folder}: no upper bound on the core"
    assert declared_version(ROOT / folder) == str(core), f"{folder} is not released with the core"


@pytest.mark.parametrize(("folder", "framework"), INTEGRATIONS.items())
def test_frameworks_are_bounded_below_their_next_major(folder, framework):
    spec = requirements(ROOT / folder)[framework].specifier
    uppers = [Version(s.version) for s in spec if s.operator == "<"]
    lowers = [Version(s.version) for s in spec if s.operator == ">="]
    assert len(uppers) == 1 and len(lowers) == 1, f"{framework}: want >=X,<Y, got {spec}"
    (low,), (high,) = lowers, uppers
    # next major; for 0.x, whose minor releases break, the next minor
    expected = Version(f"0.{low.minor + 1}") if low.major == 0 else Version(f"{low.major + 1}")
    assert high == expected, f"{framework}: upper bound {high}, expected {expected}"


@pytest.mark.parametrize("folder", DISTRIBUTIONS, ids=lambda p: p.name)
def test_readme_links_work_on_an_index_page(folder):
    """An index shows the README alone: a relative link there points nowhere (anchors are fine)."""
    links = re.findall(r"\]\(([^)\s]+)", (folder / "README.md").read_text())
    relative = [t for t in links if not re.match(r"(https?://|mailto:|#)", t)]
    assert not relative, f"{folder.name}/README.md links {relative}"

"""The layout's rules hold: the core imports no trainer or benchmark, and every subpackage is installed."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser as a package
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

ROOT = Path(__file__).resolve().parents[1]
CORE = ("agemem_gym", "envs")  # the env package and its suites (agemem_gym.envs)
OUTSIDE_THE_CORE = ("agemem_gym.trainers", "benchmarks", "examples", "tests")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function (absolute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_import_rule_sees_imports(tmp_path: Path) -> None:
    """The check below reads function-level and from-imports (so it could fail)."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from agemem_gym.trainers import grpo\n    import benchmarks.report\n")
    found = _imports(probe)
    assert {"agemem_gym.trainers", "agemem_gym.trainers.grpo", "benchmarks.report"} <= found


@pytest.mark.parametrize("folder", CORE)
def test_core_imports_no_trainer_or_benchmark(folder: str) -> None:
    """DESIGN.md §1: nothing in the core imports a trainer, a benchmark, an example or a test (trainers find the
    core; the core finds trainer-provided policies through entry points)."""
    offending = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in _imports(path):
            if any(name == banned or name.startswith(banned + ".") for banned in OUTSIDE_THE_CORE):
                offending.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offending, offending


def test_every_subpackage_is_installed() -> None:
    """Each folder with an ``__init__.py`` under a mapped source folder is in pyproject's ``packages`` list (it is
    written by hand because of the package-dir mapping; a missing entry installs a wheel without that folder)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for package, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found - listed == set(), f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), f"{sorted(listed - found)} are listed but have no __init__.py"

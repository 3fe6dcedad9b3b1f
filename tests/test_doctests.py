"""Every ``>>>`` example in agemem_gym/, envs/ and trainers/ runs in the default test run, one test per module.

The examples are collected with :mod:`doctest` from the installed modules (``agemem_gym.envs`` and
``agemem_gym.trainers`` included) rather than with pytest's ``--doctest-modules``, which would import envs/ and
trainers/ a second time under top-level names that the package mapping exists to avoid (DESIGN.md §1).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

PACKAGES = ("agemem_gym", "agemem_gym.envs", "agemem_gym.trainers")
_EXAMPLE = re.compile(r"^\s*>>> ", re.M)


def _module_names() -> list[str]:
    names: set[str] = set()
    for package in PACKAGES:
        names.add(package)
        root = importlib.import_module(package)
        names.update(m.name for m in pkgutil.walk_packages(root.__path__, package + "."))
    return sorted(names)


def _examples_in_source(name: str) -> int:
    """How many ``>>>`` lines the module's file has, read without importing it (some imports take seconds)."""
    spec = importlib.util.find_spec(name)
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    return len(_EXAMPLE.findall(origin.read_text(encoding="utf-8"))) if origin and origin.suffix == ".py" else 0


ALL_MODULES = _module_names()
MODULES = [name for name in ALL_MODULES if _examples_in_source(name)]


def _import(name: str) -> ModuleType:
    """The module, or a skip when it needs an optional library that is not installed (the adapters say which)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "agemem_gym":
            raise  # one of our own modules is missing: a bug, not an optional dependency
        pytest.skip(f"an optional library is missing: {exc}")


def test_every_package_module_is_collected() -> None:
    """The walk finds the modules of all three source folders, and the modules with examples among them."""
    assert {"agemem_gym.memory", "agemem_gym.envs.hotpotqa", "agemem_gym.trainers.grpo"} <= set(ALL_MODULES)
    assert {"agemem_gym.memory", "agemem_gym.envs.hotpotqa", "agemem_gym.evaluation.recorder"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    """Each ``>>>`` line of the module's source is an example doctest finds, and every example passes."""
    module = _import(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, name)
    found = sum(len(t.examples) for t in tests)
    assert found == _examples_in_source(name), (
        f"{name}: {_examples_in_source(name)} '>>>' lines in the source but doctest finds {found} examples; "
        "an example outside a module, class or function docstring (or in one of a re-exported object) never runs"
    )
    for test in sorted(tests, key=lambda t: t.name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"

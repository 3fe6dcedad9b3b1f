"""Fixtures of the pytest-benchmark suites (``bench_*.py``); their settings and how to run them are in
:mod:`benchmarks.suite`."""

from __future__ import annotations

import pytest

from benchmarks.common import Corpus, load_corpus
from benchmarks.suite import ENV_SIZES, SIZES


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    """The benchmark corpus, large enough for every size asked for."""
    return load_corpus(max([*SIZES, *ENV_SIZES, 1]))

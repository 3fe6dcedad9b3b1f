"""Fixtures of the pytest-benchmark suites (``bench_*.py``); their settings and how to run them are in
:mod:`benchmarks.suite`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.corpus import Corpus, load_corpus
from benchmarks.suite import ENV_SIZES, SIZES
from benchmarks.timing import blas_threads


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread, as in the report (see :func:`benchmarks.timing.blas_threads`)."""
    with blas_threads(1):
        yield


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    """The benchmark corpus, large enough for every size asked for."""
    return load_corpus(max([*SIZES, *ENV_SIZES, 1]))

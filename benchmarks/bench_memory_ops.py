"""pytest-benchmark suite of the memory operations: each op through the tool API and its raw baselines (see
:mod:`benchmarks.memory_ops`), per embedder and store size, grouped so that they compare in one table."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.corpus import Corpus
from benchmarks.memory_ops import Embedded, OpsConfig, SizeBench, embed_corpus
from benchmarks.suite import EMBEDDERS, ROUNDS, SIZES, VECTOR_CACHE, WARMUP, pedantic
from benchmarks.timing import Log

OPS = ["RETRIEVE@3", "RETRIEVE@5", "RETRIEVE@10", "SUMMARY", "SUMMARY_auto", "FILTER", "UPDATE", "ADD", "DELETE"]


@pytest.fixture(scope="module", params=EMBEDDERS)
def embedded(request: Any, corpus: Corpus) -> Embedded:
    cache = VECTOR_CACHE if request.param == "minilm" else None
    return embed_corpus(request.param, corpus, max(SIZES), cache_dir=cache, log=Log(quiet=True))


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"N{n}")
def bench(request: Any, embedded: Embedded, corpus: Corpus) -> SizeBench:
    config = OpsConfig(calls=ROUNDS, burn_in=WARMUP, recall_queries=min(1000, 10 * ROUNDS), batch_calls=ROUNDS)
    return SizeBench(embedded, corpus, request.param, config)


def test_recall(benchmark: Any, bench: SizeBench) -> None:
    """recall@k of the store and of raw hnswlib against exact search (timed: one batched pass over the queries)."""
    benchmark.group = f"{bench.emb.name} N={bench.n} recall"
    recall = benchmark.pedantic(bench.recall, rounds=1, iterations=1)
    benchmark.extra_info.update(recall)


@pytest.mark.parametrize("series", ["api", "raw", "exact", "embed"])
@pytest.mark.parametrize("op", OPS)
def test_op(benchmark: Any, bench: SizeBench, op: str, series: str) -> None:
    """One series (the API or a baseline) of one operation."""
    all_series = bench.series(op)
    if series not in all_series:
        pytest.skip(f"{op} has no {series!r} baseline")
    benchmark.group = f"{bench.emb.name} N={bench.n} {op}"
    benchmark.extra_info.update({"embedder": bench.emb.embedder_name, "items": bench.n, "op": op})
    pedantic(benchmark, all_series[series], rounds=ROUNDS, warmup=WARMUP)


@pytest.mark.parametrize("series", ["store_batch", "store_loop", "raw_batch", "raw_loop", "embed_batch", "embed_loop"])
@pytest.mark.parametrize("kind", ["search", "add"])
def test_batched(benchmark: Any, bench: SizeBench, kind: str, series: str) -> None:
    """Batched store calls against one at a time (each round handles ``batch`` items)."""
    all_series, per = bench.batched_series(kind)
    benchmark.group = f"{bench.emb.name} N={bench.n} batched {kind} x{per}"
    benchmark.extra_info.update({"items_per_round": per})
    pedantic(benchmark, all_series[series], rounds=ROUNDS, warmup=WARMUP)

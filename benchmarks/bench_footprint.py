"""pytest-benchmark suite of building a store of N items against a bare hnswlib index of the same vectors, with the
bytes per item of each (see :mod:`benchmarks.footprint`)."""

from __future__ import annotations

from typing import Any

import hnswlib
import numpy as np
import pytest

from agemem_gym.memory import MemoryStore, StoreConfig
from benchmarks import footprint
from benchmarks.corpus import BenchEmbedder, Corpus, embed_cached, make_inner_embedder
from benchmarks.suite import SIZES


@pytest.fixture(scope="module")
def vectors(corpus: Corpus) -> np.ndarray:
    return embed_cached("hash", corpus.items[: max(SIZES)], cache_dir=None, log=lambda _m: None)


@pytest.mark.parametrize("kind", ["store", "raw"])
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"N{n}")
def test_build(benchmark: Any, corpus: Corpus, vectors: np.ndarray, n: int, kind: str) -> None:
    """``MemoryStore.add_many`` of N texts (vectors precomputed) against ``hnswlib.Index.add_items`` of them."""
    config = StoreConfig(num_threads=2)

    def store() -> MemoryStore:
        embedder = BenchEmbedder(make_inner_embedder("hash"))
        s = MemoryStore(embedder, config=config)
        with embedder.preloaded(corpus.items[:n], vectors[:n]):
            s.add_many(corpus.items[:n])
        return s

    def raw() -> hnswlib.Index:
        index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
        index.init_index(max_elements=n, ef_construction=config.ef_construction, M=config.M)
        index.add_items(vectors[:n], np.arange(n), num_threads=2)
        return index

    build = store if kind == "store" else raw
    benchmark.group = f"build N={n}"
    benchmark.pedantic(build, rounds=1, iterations=1)
    _, measured = footprint.measure(build, trace=kind == "store")  # built again: tracing would slow the timed one
    benchmark.extra_info.update({"items": n, **{f"{k}_per_item": v / n for k, v in measured.items() if "bytes" in k}})

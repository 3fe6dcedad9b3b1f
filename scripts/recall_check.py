"""Recall and latency of the memory store on real HotpotQA sentences, next to raw hnswlib in the same run.

For each embedder (MiniLM and hashing) and each store size N (1k and 10k by default) this script

1. embeds N distinct context sentences of the HotpotQA dev sample and a set of its questions (as queries),
2. builds a :class:`~agemem_gym.memory.MemoryStore` with ``add_many`` and reports recall@5 of its search against
   exact numpy search (items tied with the exact 5th score count as hits), before and after save/load, plus the
   recall of a raw hnswlib index at several ``ef`` values (why the store's default ``ef_search`` is what it is),
3. times single calls of store ``add`` / ``update`` / ``delete`` / ``search`` and of the raw hnswlib calls they wrap
   (``add_items`` / ``add_items`` on an existing label / ``mark_deleted`` / ``knn_query``) and of exact numpy search,
   on the same vectors, with a burn-in and the median of ``--calls`` calls each. Texts are embedded (and cached)
   beforehand, so the store timings show the store's own cost; embedding throughput is reported separately.

Run (from the repository root)::

    .venv/bin/python scripts/recall_check.py
    .venv/bin/python scripts/recall_check.py --embedders hash --sizes 1000 --json-out runs/recall.json

It prints a table, never asserts on timings, and writes the figures as JSON when ``--json-out`` is given.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hnswlib  # the raw baseline; inside the package only agemem_gym.memory imports it
import numpy as np
import tyro

from agemem_gym.embedders import HashingEmbedder, MiniLMEmbedder, minilm_available
from agemem_gym.memory import MemoryStore, StoreConfig

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "hotpotqa"
    / "hotpot_dev_distractor_sample1000.json.gz"
)


@dataclass
class Args:
    data: Path = DEFAULT_DATA
    """HotpotQA file in the official schema (.json or .json.gz)."""
    sizes: tuple[int, ...] = (1000, 10000)
    """Store sizes N to measure."""
    embedders: tuple[str, ...] = ("minilm", "hash")
    """Embedders to measure: 'minilm' and/or 'hash'."""
    queries: int = 1000
    """How many HotpotQA questions to use as recall queries."""
    k: int = 5
    """k of recall@k."""
    calls: int = 250
    """Timed calls per operation (the median is reported)."""
    burn_in: int = 25
    """Untimed calls before each timed series."""
    ef_sweep: tuple[int, ...] = (64, 128, 256, 384)
    """ef values at which the raw hnswlib index's recall is also reported."""
    json_out: Path | None = None
    """Where to write the figures as JSON (optional)."""


def load_text(path: Path, n_queries: int) -> tuple[list[str], list[str]]:
    """Distinct non-empty context sentences in file order, and the first ``n_queries`` questions."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        records = json.load(fh)
    seen: dict[str, None] = {}
    for record in records:
        for _title, sentences in record["context"]:
            for sentence in sentences:
                if sentence.strip():
                    seen.setdefault(sentence.strip(), None)
    return list(seen), [r["question"] for r in records[:n_queries]]


def recall_at_k(found: list[list[int]], queries: np.ndarray, vectors: np.ndarray, k: int) -> float:
    """Share of returned rows whose exact score reaches the exact k-th best (ties with the k-th count)."""
    exact = queries @ vectors.T  # (Q, N)
    kth = np.sort(exact, axis=1)[:, -k]  # (Q,)
    hits = sum(int((exact[i, rows] >= kth[i] - 1e-6).sum()) for i, rows in enumerate(found))
    return hits / (k * len(queries))


def median_us(fn: Callable[[int], Any], calls: int, burn_in: int) -> float:
    """Median wall time of ``fn(i)`` in microseconds, over ``calls`` calls after ``burn_in`` untimed ones."""
    for i in range(burn_in):
        fn(i)
    times = []
    for i in range(burn_in, burn_in + calls):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def raw_index(vectors: np.ndarray, config: StoreConfig, capacity: int) -> hnswlib.Index:
    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.init_index(
        max_elements=capacity, ef_construction=config.ef_construction, M=config.M, random_seed=config.random_seed
    )
    index.add_items(vectors, np.arange(len(vectors)), num_threads=config.num_threads)
    return index


def measure(name: str, embedder: Any, sentences: list[str], questions: list[str], n: int, args: Args) -> dict[str, Any]:
    """Recall and latencies for one embedder at one store size."""
    spare = args.burn_in + args.calls  # texts for the add and update series
    texts = sentences[: n + 2 * spare]
    if len(texts) < n + 2 * spare:
        raise SystemExit(f"the data has {len(sentences)} distinct sentences; N={n} needs {n + 2 * spare}")
    start = time.perf_counter()
    all_vecs = embedder(texts)  # (n + 2*spare, dim); also fills the embedder's cache
    embed_s = time.perf_counter() - start
    q_vecs = embedder(questions)
    vectors = all_vecs[:n]
    config = StoreConfig()
    result: dict[str, Any] = {"embedder": embedder.name, "n": n, "embed_ms_per_text": 1e3 * embed_s / len(texts)}

    # -- build and recall ---------------------------------------------------------------------------------------
    store = MemoryStore(embedder, config=config)
    start = time.perf_counter()
    store.add_many(texts[:n])
    result["store_build_s"] = time.perf_counter() - start
    start = time.perf_counter()
    raw = raw_index(vectors, config, capacity=n + 2 * spare)
    result["raw_build_s"] = time.perf_counter() - start

    def store_recall(s: MemoryStore) -> float:
        pos = {mid: i for i, mid in enumerate(s.ids()[:n])}
        rows = [[pos[h.item.id] for h in hits] for hits in s.search_vectors(q_vecs, top_k=args.k)]
        return recall_at_k(rows, q_vecs, vectors, args.k)

    result["recall_store"] = store_recall(store)
    with tempfile.TemporaryDirectory() as tmp:
        store.save(tmp)
        result["recall_store_after_load"] = store_recall(MemoryStore.load(tmp, embedder=embedder))
    result["exact_fallbacks"] = store.stats()["exact_fallbacks"]
    sweep = {}
    for ef in args.ef_sweep:
        raw.set_ef(max(ef, args.k))
        labels, _ = raw.knn_query(q_vecs, k=args.k)
        sweep[ef] = recall_at_k(labels.astype(np.int64).tolist(), q_vecs, vectors, args.k)
    result["recall_raw_by_ef"] = sweep

    # -- latency: the same vectors through the store and through raw hnswlib ------------------------------------
    ef_used = max(config.ef_search, args.k + 16)  # what the store sets for a top-5 query
    raw.set_ef(ef_used)
    add_texts, upd_texts = texts[n : n + spare], texts[n + spare : n + 2 * spare]
    add_vecs, upd_vecs = all_vecs[n : n + spare], all_vecs[n + spare : n + 2 * spare]
    ids = store.ids()
    lat: dict[str, dict[str, float]] = {}
    lat["search"] = {
        "store": median_us(
            lambda i: store.search(questions[i % len(questions)], top_k=args.k), args.calls, args.burn_in
        ),
        "raw": median_us(lambda i: raw.knn_query(q_vecs[i % len(q_vecs)], k=args.k), args.calls, args.burn_in),
        "exact_numpy": median_us(
            lambda i: np.argpartition(-(vectors @ q_vecs[i % len(q_vecs)]), args.k)[: args.k], args.calls, args.burn_in
        ),
    }
    lat["add"] = {
        "store": median_us(lambda i: store.add(add_texts[i]), args.calls, args.burn_in),
        "raw": median_us(
            lambda i: raw.add_items(add_vecs[i : i + 1], [n + i], num_threads=1), args.calls, args.burn_in
        ),
    }
    lat["update"] = {
        "store": median_us(lambda i: store.update(ids[i], upd_texts[i]), args.calls, args.burn_in),
        "raw": median_us(lambda i: raw.add_items(upd_vecs[i : i + 1], [i], num_threads=1), args.calls, args.burn_in),
    }
    lat["delete"] = {
        "store": median_us(lambda i: store.delete(ids[spare + i]), args.calls, args.burn_in),
        "raw": median_us(lambda i: raw.mark_deleted(spare + i), args.calls, args.burn_in),
    }
    result["latency_us"] = lat
    result["ef_search"] = ef_used
    result["rebuilds_during_timing"] = store.stats()["rebuilds"]
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    print("\nrecall@k against exact numpy search (HotpotQA questions as queries)")
    print(f"{'embedder':<14}{'N':>7}{'store':>9}{'after load':>12}  raw hnswlib by ef")
    for r in results:
        sweep = "  ".join(f"ef {ef}: {v:.4f}" for ef, v in r["recall_raw_by_ef"].items())
        print(f"{r['embedder']:<14}{r['n']:>7}{r['recall_store']:>9.4f}{r['recall_store_after_load']:>12.4f}  {sweep}")
    print("\nmedian latency per call, microseconds (store vs raw hnswlib on the same vectors; ratio = store / raw)")
    print(f"{'embedder':<14}{'N':>7}  {'op':<8}{'store':>10}{'raw':>10}{'ratio':>8}{'exact numpy':>13}")
    for r in results:
        for op, row in r["latency_us"].items():
            exact = f"{row['exact_numpy']:>13.1f}" if "exact_numpy" in row else ""
            ratio = row["store"] / row["raw"] if row["raw"] > 0 else float("nan")
            print(
                f"{r['embedder']:<14}{r['n']:>7}  {op:<8}{row['store']:>10.1f}{row['raw']:>10.1f}{ratio:>8.2f}{exact}"
            )
    print("\nbuild (add_many of N) and embedding cost")
    for r in results:
        print(
            f"{r['embedder']:<14}{r['n']:>7}  store build {r['store_build_s']:.2f} s, raw build {r['raw_build_s']:.2f} s,"
            f" embedding {r['embed_ms_per_text']:.3f} ms/text (batched), exact fallbacks {r['exact_fallbacks']}"
        )


def main(args: Args) -> list[dict[str, Any]]:
    sentences, questions = load_text(args.data, args.queries)
    results = []
    for name in args.embedders:
        if name == "minilm":
            if not minilm_available():
                print("MiniLM is not installed; skipping it", file=sys.stderr)
                continue
            embedder: Any = MiniLMEmbedder(cache_size=max(args.sizes) + 4 * (args.burn_in + args.calls) + args.queries)
        elif name == "hash":
            embedder = HashingEmbedder(cache_size=max(args.sizes) + 4 * (args.burn_in + args.calls) + args.queries)
        else:
            raise SystemExit(f"unknown embedder {name!r}; choose from 'minilm', 'hash'")
        for n in args.sizes:
            print(f"measuring {embedder.name} at N={n} ...", file=sys.stderr, flush=True)
            results.append(measure(name, embedder, sentences, questions, n, args))
    print_table(results)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, hnswlib {importlib.metadata.version('hnswlib')}"
    print(f"\nmachine: {machine}; {args.calls} timed calls after {args.burn_in} burn-in per operation")
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))

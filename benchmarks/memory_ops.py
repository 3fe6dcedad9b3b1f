"""The six memory tools through the tool API, each beside the library call it wraps, at several store sizes.

For one embedder and one store size N, :class:`SizeBench` seeds a :class:`~agemem_gym.memory.MemoryStore` with N
corpus texts (their vectors precomputed, so seeding costs no embedding) and prepares, for every operation, series
of calls that :func:`~benchmarks.timing.interleaved` times call by call:

| op | ``api``: one agent turn, parsed, validated, dispatched, rendered | baselines on the same texts and vectors |
|---|---|---|
| ``RETRIEVE@k`` | ``Retrieve_memory`` (top_k = k) | ``raw``: hnswlib ``knn_query`` on a copy of the store's own graph (``MemoryStore.copy_index``), same ef; ``exact``: numpy over the N vectors; ``embed``: the embedder alone on the query |
| ``ADD`` | ``Add_memory`` | ``raw``: ``add_items`` of the same vector; ``embed`` |
| ``UPDATE`` | ``Update_memory`` | ``raw``: ``add_items`` on the existing label (hnswlib's in-place update); ``embed`` |
| ``DELETE`` | ``Delete_memory`` | ``raw``: ``mark_deleted`` |
| ``SUMMARY`` | ``Summary_context`` with the agent's own summary | ``raw``: ``Context.summarize`` called directly |
| ``SUMMARY_auto`` | ``Summary_context`` without one (the extractive summariser runs) | ``raw``: the summariser alone |
| ``FILTER`` | ``Filter_context`` | ``raw``: the similarity on precomputed vectors (cosine and keyword containment); ``embed`` |

The API's embedder is the library default (with its LRU cache) and every timed text is new to it, as an agent's
new content and queries are; the context messages FILTER compares against are cached after the first call, as in
the env. The ``embed`` baseline is a second instance of the same embedder (its own cache) given the same texts.
Each API call also records the seconds spent inside its embedder, so ``api_excl_embed`` is measured, not derived.

Mutating operations never move a store far from N: when a series needs more than ``replica_share`` of N
additions or deletions, it is spread over fresh replicas of the N-item store (each paired with a copy of its
graph for the raw series), so that ADD at "100 items" stays within 100-120 items and DELETE never triggers the
store's tombstone rebuild. :meth:`SizeBench.recall` measures recall@k against exact search and
:meth:`SizeBench.batched_series` the batched store calls (``add_many``, ``search_many``) against one at a time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from agemem_gym.context import Context, hybrid_similarity
from agemem_gym.context.summarizers import make_summarizer
from agemem_gym.evaluation.agents import tool_call
from agemem_gym.memory import MemoryStore, StoreConfig, format_memory_id
from agemem_gym.memory.items import id_number
from agemem_gym.prompts import system_prompt
from agemem_gym.protocol import parse_action
from agemem_gym.tools import ToolRuntime, execute, render_results, tool_schemas
from benchmarks import footprint, profiles
from benchmarks.corpus import BenchEmbedder, Corpus, embed_cached, make_inner_embedder
from benchmarks.records import Record
from benchmarks.timing import Log, Timed, interleaved, latency, recall_at_k

__all__ = ["LTM_OPS", "OPS", "STM_OPS", "Embedded", "OpsConfig", "SizeBench", "embed_corpus", "run"]

STM_OPS = ("SUMMARY", "SUMMARY_auto", "FILTER")
LTM_OPS = ("ADD", "UPDATE", "DELETE")  # RETRIEVE@k are added per k
OPS = ("RETRIEVE", *LTM_OPS, *STM_OPS)
_SUMMARY = "The user shared background paragraphs about several people, places and works; none is needed now."
Series = Callable[[int], Any] | Timed


@dataclass(frozen=True)
class OpsConfig:
    """How much to measure at each store size (see the module docstring)."""

    ks: tuple[int, ...] = (3, 5, 10)
    calls: int = 300
    burn_in: int = 30
    recall_queries: int = 1000
    ef_sweep: tuple[int, ...] = (64, 128, 256, 384)
    batch: int = 32
    batch_calls: int = 10
    batch_burn_in: int = 2
    context_messages: int = 16
    replica_share: float = 0.2
    build_threads: int = 2

    @property
    def total(self) -> int:
        return self.burn_in + self.calls

    @property
    def batch_total(self) -> int:
        return self.batch_burn_in + self.batch_calls


@dataclass
class Embedded:
    """The corpus embedded once by one embedder: store texts, fresh texts and queries (rows match the texts)."""

    name: str
    embedder_name: str
    dim: int
    items: np.ndarray  # (n_items, dim)
    fresh: np.ndarray  # (n_fresh, dim)
    queries: np.ndarray  # (n_queries, dim)
    seconds: float


def embed_corpus(name: str, corpus: Corpus, n_items: int, *, cache_dir: Path | None, log: Log) -> Embedded:
    """Embed ``corpus.items[:n_items]``, the fresh texts and the queries with embedder ``name`` (cached on disk)."""
    start = time.perf_counter()
    items, fresh, queries = (
        embed_cached(name, texts, cache_dir=cache_dir, log=log)
        for texts in (corpus.items[:n_items], corpus.fresh, corpus.queries)
    )
    inner = make_inner_embedder(name, cache_size=0)
    return Embedded(name, inner.name, int(inner.dim), items, fresh, queries, seconds=time.perf_counter() - start)


def _plan(n: int, total_calls: int, items_per_call: int, share: float) -> tuple[int, int]:
    """(replicas, calls per replica) so that no store gains or loses more than ``share`` of its n items."""
    per = max(1, int(share * n) // items_per_call)
    return math.ceil(total_calls / per), per


@dataclass
class _Replica:
    store: MemoryStore
    runtime: ToolRuntime
    raw: hnswlib.Index
    next_label: int  # the raw copy's next free label


@dataclass
class SizeBench:
    """Everything needed to time the operations at one store size: stores, raw copies, texts and vectors.

    Args:
        emb: The corpus vectors of this embedder.
        corpus: The texts the vectors belong to.
        n: The store size.
        config: Call counts and limits.
    """

    emb: Embedded
    corpus: Corpus
    n: int
    config: OpsConfig = field(default_factory=OpsConfig)

    def __post_init__(self) -> None:
        if self.n > len(self.emb.items):
            raise ValueError(f"store size {self.n} needs {self.n} embedded texts, got {len(self.emb.items)}")
        self.api_emb = BenchEmbedder(make_inner_embedder(self.emb.name))  # the library default, with its cache
        self.base_emb = make_inner_embedder(self.emb.name)  # the embedder-alone baseline: same config, own cache
        self.store_config = StoreConfig(num_threads=self.config.build_threads)
        self.embed_log: list[float] = []  # seconds inside the API's embedder, per API call of the last series
        self.errors = 0
        self._fresh_next = 0
        self.store, self.build = footprint.measure(self._new_store, trace=True)
        # The raw baseline runs on a copy of the store's own graph: the very same vectors, links and ef.
        self.raw_query, self.raw_build = footprint.measure(self.store.copy_index)
        self.runtime = self._runtime(self.store)
        self.vectors = np.ascontiguousarray(self.emb.items[: self.n])  # (n, dim) for exact search
        self._raw_mut: hnswlib.Index | None = None

    # -- building blocks ------------------------------------------------------------------------------------------

    def _new_store(self) -> MemoryStore:
        store = MemoryStore(self.api_emb, config=self.store_config)
        texts = self.corpus.items[: self.n]
        with self.api_emb.preloaded(texts, self.emb.items[: self.n]):
            store.add_many(texts)
        return store

    def _runtime(self, store: MemoryStore) -> ToolRuntime:
        return ToolRuntime(store=store, context=self._context())

    def _context(self) -> Context:
        prompt = system_prompt("paper", tool_schemas(), 8192)
        ctx = Context(prompt, similarity=hybrid_similarity(self.api_emb))
        for text in self.context_texts:
            ctx.append("user", text, kind="material", stage=2)
        return ctx

    @property
    def context_texts(self) -> list[str]:
        """The context's messages: runs of three corpus texts from the end of the corpus."""
        tail = self.corpus.items[-3 * self.config.context_messages :]
        return [" ".join(tail[i : i + 3]) for i in range(0, len(tail), 3)]

    def api(self, runtime: ToolRuntime) -> Callable[[str], None]:
        """One agent turn through the tool API: parse, validate and dispatch every call, render the tool message."""
        emb, log = self.api_emb, self.embed_log

        def call(text: str) -> None:
            before = emb.seconds
            action = parse_action(text)
            results = [execute(c, runtime) for c in action.tool_calls]
            render_results(results)
            log.append(emb.seconds - before)
            if not action.ok or not all(r.ok for r in results):
                self.errors += 1

        return call

    def _fresh(self, count: int) -> np.ndarray:
        """Indices of ``count`` fresh texts not used by an earlier series of this size (wrapping if exhausted)."""
        idx = np.arange(self._fresh_next, self._fresh_next + count) % len(self.corpus.fresh)
        self._fresh_next += count
        return idx

    def _raw_mutable(self) -> hnswlib.Index:
        """A copy of the main store's graph for the raw UPDATE / ADD / DELETE series on the main store."""
        if self._raw_mut is None:
            extra = self.config.total + 2 * self.config.batch * self.config.batch_total
            self._raw_mut = self.store.copy_index(self.n + extra)
        return self._raw_mut

    def _replicas(self, items_per_call: int, total_calls: int) -> tuple[list[_Replica], int]:
        """Stores of n items (the main one when one suffices) for a mutating series, and calls per replica."""
        count, per = _plan(self.n, total_calls, items_per_call, self.config.replica_share)
        if count == 1:
            return [_Replica(self.store, self.runtime, self._raw_mutable(), len(self.store))], total_calls
        replicas = []
        for _ in range(count):
            store = self._new_store()
            raw = store.copy_index(self.n + per * items_per_call)
            replicas.append(_Replica(store, self._runtime(store), raw, self.n))
        return replicas, per

    # -- the series -------------------------------------------------------------------------------------------------

    def series(self, op: str, *, fresh_queries: bool = False) -> dict[str, Series]:
        """The interleaved series of one operation (``"RETRIEVE@5"``, ``"ADD"``, ...), ``"api"`` first.

        RETRIEVE asks HotpotQA questions (each k its own); ``fresh_queries`` asks unused corpus sentences instead,
        for a second pass at the same size that must not hit the embedder's cache (the profile).
        """
        self.embed_log.clear()
        if op.startswith("RETRIEVE@"):
            return self._retrieve(int(op.split("@", 1)[1]), fresh_queries=fresh_queries)
        makers: dict[str, Callable[[], dict[str, Series]]] = {
            "ADD": self._add,
            "UPDATE": self._update,
            "DELETE": self._delete,
            "SUMMARY": lambda: self._summary(agent=True),
            "SUMMARY_auto": lambda: self._summary(agent=False),
            "FILTER": self._filter,
        }
        if op not in makers:
            raise ValueError(f"unknown op {op!r}; expected RETRIEVE@k or one of {sorted(makers)}")
        return makers[op]()

    def _retrieve(self, k: int, *, fresh_queries: bool = False) -> dict[str, Series]:
        if fresh_queries:
            queries, qv = self.corpus.fresh, self.emb.fresh
            rows = self._fresh(self.config.total).tolist()
        else:
            queries, qv = self.corpus.queries, self.emb.queries
            # Each k gets its own queries, so that none is in the API embedder's cache from an earlier series.
            offset = self.config.ks.index(k) * self.config.total if k in self.config.ks else 0
            rows = [(offset + i) % len(queries) for i in range(self.config.total)]
        texts = [tool_call(("Retrieve_memory", {"query": queries[j], "top_k": k})) for j in rows]
        api, raw, base, vecs = self.api(self.runtime), self.raw_query, self.base_emb, self.vectors
        raw.set_ef(max(self.store_config.ef_search, k + 16))  # what the store sets for a top-k query
        kk = min(k, self.n)

        def exact(i: int) -> np.ndarray:
            scores = vecs @ qv[rows[i]]  # (n,)
            top = np.argpartition(-scores, kk - 1)[:kk]
            return top[np.argsort(-scores[top])]

        return {
            "api": lambda i: api(texts[i]),
            "raw": lambda i: raw.knn_query(qv[rows[i]], k=kk),
            "exact": exact,
            "embed": lambda i: base([queries[rows[i]]]),
        }

    def _add(self) -> dict[str, Series]:
        idx = self._fresh(self.config.total)
        texts = [self.corpus.fresh[j] for j in idx]
        calls = [tool_call(("Add_memory", {"content": t})) for t in texts]
        vecs = self.emb.fresh[idx]
        replicas, per = self._replicas(1, self.config.total)
        apis = [self.api(r.runtime) for r in replicas]

        def raw(i: int) -> None:
            r = replicas[i // per]
            r.raw.add_items(vecs[i : i + 1], [r.next_label], num_threads=1)
            r.next_label += 1

        return {
            "api": lambda i: apis[i // per](calls[i]),
            "raw": raw,
            "embed": lambda i: self.base_emb([texts[i]]),
        }

    def _update(self) -> dict[str, Series]:
        idx = self._fresh(self.config.total)
        texts = [self.corpus.fresh[j] for j in idx]
        calls = [
            tool_call(("Update_memory", {"memory_id": format_memory_id(i % self.n + 1), "content": t}))
            for i, t in enumerate(texts)
        ]
        vecs, raw, api = self.emb.fresh[idx], self._raw_mutable(), self.api(self.runtime)
        return {
            "api": lambda i: api(calls[i]),
            "raw": lambda i: raw.add_items(vecs[i : i + 1], [i % self.n], num_threads=1),
            "embed": lambda i: self.base_emb([texts[i]]),
        }

    def _delete(self) -> dict[str, Series]:
        replicas, per = self._replicas(1, self.config.total)
        apis = [self.api(r.runtime) for r in replicas]
        calls = [
            tool_call(("Delete_memory", {"memory_id": format_memory_id(i % per + 1), "confirmation": True}))
            for i in range(self.config.total)
        ]
        return {
            "api": lambda i: apis[i // per](calls[i]),
            "raw": lambda i: replicas[i // per].raw.mark_deleted(i % per),
        }

    def _summary(self, *, agent: bool) -> dict[str, Series]:
        ctx = self.runtime.context
        snap = ctx.snapshot()
        args: dict[str, Any] = {"span": "all", "summary": _SUMMARY} if agent else {"span": "all"}
        text = tool_call(("Summary_context", args))
        api = self.api(self.runtime)
        api_series = Timed(run=lambda i: api(text), setup=lambda i: ctx.restore(snap))
        if agent:
            direct = self._context()
            direct_snap = direct.snapshot()
            return {
                "api": api_series,
                "raw": Timed(
                    run=lambda i: direct.summarize("all", _SUMMARY), setup=lambda i: direct.restore(direct_snap)
                ),
            }
        summarizer = make_summarizer()
        dicts = [m.to_dict() for m in snap[1:]]
        return {"api": api_series, "raw": lambda i: summarizer(dicts)}

    def _filter(self) -> dict[str, Series]:
        ctx = self.runtime.context
        snap = ctx.snapshot()
        messages = self.context_texts
        # Criteria like the oracle's (a few words of one message, so that it is removed), different on every call
        # so that no criterion is in an embedder's cache: words j..j+3 of message i mod L, j = i div L.
        criteria = []
        for i in range(self.config.total):
            words = messages[i % len(messages)].split()
            j = (i // len(messages)) % max(1, len(words) - 3)
            criteria.append(" ".join(words[j : j + 4]))
        calls = [tool_call(("Filter_context", {"criteria": c})) for c in criteria]
        api = self.api(self.runtime)
        # The raw series: the same similarity, given vectors embedded beforehand (so it costs no embedding).
        pre_c = embed_cached(self.emb.name, criteria, cache_dir=None, log=lambda _m: None)  # (calls, dim)
        pre_m = embed_cached(self.emb.name, messages, cache_dir=None, log=lambda _m: None)  # (messages, dim)
        current = [0]
        similarity = hybrid_similarity(lambda _texts: np.vstack([pre_c[current[0] : current[0] + 1], pre_m]))

        def set_current(i: int) -> None:
            current[0] = i

        return {
            "api": Timed(run=lambda i: api(calls[i]), setup=lambda i: ctx.restore(snap)),
            "raw": Timed(run=lambda i: similarity(criteria[i], messages), setup=set_current),
            "embed": lambda i: self.base_emb([criteria[i], *messages]),
        }

    def batched_series(self, kind: str) -> tuple[dict[str, Series], int]:
        """``search`` or ``add`` in batches of ``config.batch`` against the same work one item at a time.

        Returns the series (``store_batch`` / ``store_loop`` / ``raw_batch`` / ``raw_loop`` / ``embed_batch`` /
        ``embed_loop``, each call handling ``batch`` items) and the batch size.
        """
        b, total = self.config.batch, self.config.batch_total
        batch_idx = self._fresh(b * total).reshape(total, b)
        loop_idx = self._fresh(b * total).reshape(total, b)
        fresh, fv, base = self.corpus.fresh, self.emb.fresh, self.base_emb
        tb = [[fresh[j] for j in row] for row in batch_idx]
        tl = [[fresh[j] for j in row] for row in loop_idx]
        out: dict[str, Series]
        if kind == "search":
            store, raw, k = self.store, self.raw_query, min(5, self.n)
            raw.set_ef(max(self.store_config.ef_search, k + 16))
            out = {
                "store_batch": lambda i: store.search_many(tb[i], top_k=k),
                "store_loop": lambda i: [store.search(t, top_k=k) for t in tl[i]],
                "raw_batch": lambda i: raw.knn_query(fv[batch_idx[i]], k=k),
                "raw_loop": lambda i: [raw.knn_query(fv[j], k=k) for j in loop_idx[i]],
            }
        elif kind == "add":
            replicas, per = self._replicas(2 * b, total)

            def raw_add(i: int, rows: np.ndarray, one_by_one: bool) -> None:
                r = replicas[i // per]
                if one_by_one:
                    for j in rows:
                        r.raw.add_items(fv[j : j + 1], [r.next_label], num_threads=1)
                        r.next_label += 1
                else:
                    r.raw.add_items(fv[rows], np.arange(r.next_label, r.next_label + len(rows)))
                    r.next_label += len(rows)

            def store_loop(i: int) -> None:
                store = replicas[i // per].store
                for t in tl[i]:
                    store.add(t)

            out = {
                "store_batch": lambda i: replicas[i // per].store.add_many(tb[i]),
                "store_loop": store_loop,
                "raw_batch": lambda i: raw_add(i, batch_idx[i], False),
                "raw_loop": lambda i: raw_add(i, loop_idx[i], True),
            }
        else:
            raise ValueError(f"unknown batched kind {kind!r}; expected 'search' or 'add'")
        out["embed_batch"] = lambda i: base(tb[i])
        out["embed_loop"] = lambda i: [base([t]) for t in tl[i]]
        return out, b

    # -- recall -----------------------------------------------------------------------------------------------------

    def recall(self) -> dict[str, Any]:
        """recall@k of the store's search and of raw hnswlib (same graph, same ef) against exact numpy search."""
        q = self.emb.queries[: self.config.recall_queries]
        out: dict[str, Any] = {"queries": len(q), "store": {}, "raw": {}, "raw_by_ef": {}}
        for k in self.config.ks:
            hits = self.store.search_vectors(q, top_k=k)
            rows = [[id_number(h.item.id) - 1 for h in row] for row in hits]  # ids m_0001.. are rows 0..
            out["store"][str(k)] = recall_at_k(rows, q, self.vectors, k)
            ef = max(self.store_config.ef_search, k + 16)
            self.raw_query.set_ef(ef)
            labels, _ = self.raw_query.knn_query(q, k=min(k, self.n))
            out["raw"][str(k)] = recall_at_k(labels.tolist(), q, self.vectors, k)
        k = max(self.config.ks)
        for ef in self.config.ef_sweep:
            self.raw_query.set_ef(max(ef, k))
            labels, _ = self.raw_query.knn_query(q, k=min(k, self.n))
            out["raw_by_ef"][str(ef)] = recall_at_k(labels.tolist(), q, self.vectors, k)
        out["sweep_k"] = k
        out["ef_store"] = max(self.store_config.ef_search, k + 16)
        out["exact_fallbacks"] = self.store.stats()["exact_fallbacks"]
        return out


def summarise(
    benchmark: str,
    times: dict[str, list[float]],
    config: dict[str, Any],
    *,
    baselines: dict[str, str],
    embed_log: Sequence[float] = (),
    per: int = 1,
) -> list[Record]:
    """One latency record per series (per item when ``per`` > 1), each against its entry in ``baselines``; with an
    ``embed_log``, also the API's seconds inside its embedder and the API without them (measured, not derived)."""
    series = dict(times)
    if "api" in times:
        log = list(embed_log)[-len(times["api"]) :] if embed_log else []
        if len(log) == len(times["api"]):
            series["api_embed"] = log
            series["api_excl_embed"] = [t - e for t, e in zip(times["api"], log)]
    out = []
    for name, seconds in series.items():
        base = baselines.get(name)
        baseline = (base, series[base]) if base in series else None
        out.append(latency(benchmark, seconds, {**config, "series": name}, baseline=baseline, per=per))
    return out


_VS_RAW = {"api": "raw", "api_excl_embed": "raw"}
_VS_LOOP = {"store_batch": "store_loop", "raw_batch": "raw_loop", "embed_batch": "embed_loop"}


def _recall_records(recall: dict[str, Any], config: dict[str, Any]) -> list[Record]:
    q = recall["queries"]
    out = [
        Record("recall", "recall", v, "", {**config, "index": "store", "k": int(k)}, repeats=q)
        for k, v in recall["store"].items()
    ]
    out += [
        Record("recall", "recall", v, "", {**config, "index": "raw", "k": int(k)}, repeats=q)
        for k, v in recall["raw"].items()
    ]
    out += [
        Record("recall", "recall", v, "", {**config, "index": "raw", "k": recall["sweep_k"], "ef": int(ef)}, repeats=q)
        for ef, v in recall["raw_by_ef"].items()
    ]
    out.append(Record("recall", "exact_fallbacks", recall["exact_fallbacks"], "calls", {**config, "index": "store"}))
    return out


def measure_size(bench: SizeBench, log: Log, *, profile_ops: Sequence[str] = ()) -> list[Record]:
    """Every measurement at one size, in an order that lets the mutating series come last; then, for each op in
    ``profile_ops``, a cProfile of ``config.calls`` more API calls (see :mod:`benchmarks.profiles`)."""
    cfg = bench.config
    at = {"embedder": bench.emb.name, "size": bench.n}
    fp = footprint.per_item(bench.n, bench.build, bench.raw_build, bench.store, bench.raw_query)
    records = [*footprint.records(fp, at), *_recall_records(bench.recall(), at)]
    order = [f"RETRIEVE@{k}" for k in cfg.ks] + ["SUMMARY", "SUMMARY_auto", "FILTER", "UPDATE", "ADD", "DELETE"]
    rebuilds_before = bench.store.stats()["rebuilds"]
    for op in order:
        if op == "UPDATE":  # batched search before the store is changed
            series, per = bench.batched_series("search")
            times = interleaved(series, calls=cfg.batch_calls, burn_in=cfg.batch_burn_in)
            records += summarise("batched", times, {**at, "call": "search", "batch": per}, baselines=_VS_LOOP, per=per)
        if op == "DELETE":
            series, per = bench.batched_series("add")
            times = interleaved(series, calls=cfg.batch_calls, burn_in=cfg.batch_burn_in)
            records += summarise("batched", times, {**at, "call": "add", "batch": per}, baselines=_VS_LOOP, per=per)
        bench.errors = 0
        series_ = bench.series(op)
        times = interleaved(series_, calls=cfg.calls, burn_in=cfg.burn_in)
        rows = summarise("memory_ops", times, {**at, "op": op}, baselines=_VS_RAW, embed_log=bench.embed_log)
        records += [*rows, Record("memory_ops", "errors", bench.errors, "calls", {**at, "op": op, "series": "api"})]
        log(f"  {bench.emb.name} N={bench.n} {op}: " + ", ".join(f"{r['series']} {r.value:.1f} us" for r in rows[:2]))
    rebuilds = bench.store.stats()["rebuilds"] - rebuilds_before
    records.append(Record("memory_ops", "rebuilds_while_timing", rebuilds, "rebuilds", at))
    for op in profile_ops:
        log(f"  {bench.emb.name} N={bench.n} {op}: profiling {cfg.total} API calls")
        api = bench.series(op, fresh_queries=True)["api"]  # new texts: the embedder's cache must not answer
        summary = profiles.profile_calls(api, cfg.total, root=("benchmarks/memory_ops.py", "call"))
        records += profiles.records(summary, f"API {op}, {bench.emb.name}, {bench.n:,} items")
    return records


def run(
    emb: Embedded,
    corpus: Corpus,
    sizes: Sequence[int],
    config: OpsConfig,
    log: Log,
    *,
    profile_at: int | None = None,
    profile_ops: Sequence[str] = ("RETRIEVE@5", "ADD"),
) -> list[Record]:
    """Measure every size for one embedder (profiling ``profile_ops`` at size ``profile_at``): the embedder's
    record (its model, dimension, call counts and the seconds embedding the corpus took), then each size's."""
    head = {"embedder": emb.name, "model": emb.embedder_name, "dim": emb.dim, "calls": config.calls}
    records = [Record("embedders", "embed_corpus", emb.seconds, "s", {**head, "burn_in": config.burn_in})]
    for n in sizes:
        log(f"memory ops: {emb.name} at N={n}: building the store")
        bench = SizeBench(emb, corpus, n, config)
        records += measure_size(bench, log, profile_ops=profile_ops if n == profile_at else ())
        del bench
    return records

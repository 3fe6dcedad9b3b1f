"""Shared pieces of the benchmarks: the text corpus, an instrumented embedder, interleaved timing, statistics,
the vector cache and a description of the machine.

Timing follows nanoGPT's ``bench.py``: untimed burn-in calls first, then timed calls. On a shared, noisy machine the
series being compared (the tool API and its raw baselines) are *interleaved* call by call, so that a burst of
load from another process hits all of them alike and their ratio stays meaningful.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import hashlib
import importlib.metadata
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
CACHE_DIR = RESULTS_DIR / "cache"
HOTPOTQA_SAMPLE = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpot_dev_distractor_sample1000.json.gz"
PACKAGES = (
    "agemem-gym", "numpy", "hnswlib", "gymnasium", "torch", "transformers", "rapidfuzz", "pytest-benchmark",
    "matplotlib",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# The corpus: real text for realistic embeddings
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """Distinct texts for the benchmarks.

    Attributes:
        items: Texts that seed stores: ``items[:n]`` is the store of size n.
        fresh: Texts never in ``items``, for ADD / UPDATE / the embedder-alone baseline (sentences).
        queries: Retrieval queries (HotpotQA questions).
        source: ``"hotpotqa"`` or ``"synthetic"``.
        note: How the texts were made, for the report.
    """

    items: tuple[str, ...]
    fresh: tuple[str, ...]
    queries: tuple[str, ...]
    source: str
    note: str

    @property
    def digest(self) -> str:
        """A short hash of every text, naming vector-cache files."""
        h = hashlib.sha256()
        for part in (self.items, self.fresh, self.queries):
            for text in part:
                h.update(text.encode("utf-8", "surrogatepass"))
                h.update(b"\x00")
        return h.hexdigest()[:12]


def _windows(paragraphs: Sequence[Sequence[str]], width: int) -> Iterator[str]:
    """Runs of ``width`` consecutive sentences of each paragraph (real text, longer than one sentence)."""
    for sentences in paragraphs:
        for i in range(len(sentences) - width + 1):
            yield " ".join(sentences[i : i + width])


def _from_paragraphs(paragraphs: list[list[str]], n_items: int, n_fresh: int) -> tuple[list[str], list[str], str]:
    sentences: dict[str, None] = {}
    for sentences_of in paragraphs:
        for s in sentences_of:
            sentences.setdefault(s, None)
    distinct = list(sentences)
    fresh = distinct[-n_fresh:] if len(distinct) > n_fresh else []
    items: dict[str, None] = dict.fromkeys(distinct[: len(distinct) - len(fresh)])
    made = [f"{len(items)} sentences"]
    for width in (2, 3, 4, 5):
        if len(items) >= n_items:
            break
        before = len(items)
        for text in _windows(paragraphs, width):
            if text not in sentences:
                items.setdefault(text, None)
        made.append(f"{len(items) - before} runs of {width} consecutive sentences")
    if len(items) < n_items:
        before = len(items)
        for sentences_of in paragraphs:
            items.setdefault(" ".join(sentences_of), None)
        made.append(f"{len(items) - before} whole paragraphs")
    return list(items), fresh, ", ".join(made)


def load_corpus(n_items: int, *, n_fresh: int = 3000, data_path: Path | None = HOTPOTQA_SAMPLE) -> Corpus:
    """At least ``n_items`` distinct store texts (when the data holds them), ``n_fresh`` fresh ones, and queries.

    Real HotpotQA text when the shared sample is present: its distinct context sentences, then runs of 2-5
    consecutive sentences of a paragraph, then whole paragraphs (the 1000-question sample has about 40k
    sentences). Without the sample, the synthetic suite's paragraphs and questions (several seeds), said so in
    ``note``.
    """
    if data_path is not None and Path(data_path).is_file():
        from agemem_gym.envs.hotpotqa import load_hotpotqa

        suite = load_hotpotqa(data_path)
        tasks = [suite.get(tid) for tid in suite.task_ids]
        paragraphs = [[s.strip() for s in p.sentences if s.strip()] for t in tasks for p in t.paragraphs]
        questions = [t.question for t in tasks]
        items, fresh, made = _from_paragraphs(paragraphs, n_items, n_fresh)
        note = f"HotpotQA dev sample ({len(tasks)} questions): {made}; fresh texts: {len(fresh)} held-out sentences"
        source = "hotpotqa"
    else:
        from agemem_gym.envs.synthetic import make_synthetic_suite

        paragraphs, questions, seed = [], [], 0
        while True:
            suite = make_synthetic_suite(1000, seed=seed)
            tasks = [suite.get(tid) for tid in suite.task_ids]
            paragraphs += [[s.strip() for s in p.sentences if s.strip()] for t in tasks for p in t.paragraphs]
            questions += [t.question for t in tasks]
            seed += 1
            if len({s for p in paragraphs for s in p}) >= n_items + n_fresh or seed >= 20:
                break
        items, fresh, made = _from_paragraphs(paragraphs, n_items, n_fresh)
        note = (
            f"SYNTHETIC text (the HotpotQA sample was not found at {relative(data_path) if data_path else None}): "
            f"the synthetic suite, {seed} seeds: "
            f"{made}; embeddings of synthetic text are less varied than real text"
        )
        source = "synthetic"
    queries = list(dict.fromkeys(questions))
    return Corpus(tuple(items), tuple(fresh), tuple(queries), source, note)


# ---------------------------------------------------------------------------------------------------------------
# An instrumented embedder
# ---------------------------------------------------------------------------------------------------------------


class BenchEmbedder:
    """Wraps a real embedder: counts the time spent inside it and can answer from precomputed vectors.

    While ``table`` is set (text -> row of ``table_vectors``), a batch whose texts are all in it is answered by
    lookup, so seeding a 100k-item store costs no embedding; otherwise (and always once :meth:`unload` ran) the
    inner embedder runs and its time is added to ``seconds``. The wrapper costs two ``perf_counter`` calls.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.dim: int = int(inner.dim)
        self.seconds = 0.0
        self.calls = 0
        self.texts = 0
        self._table: dict[str, int] | None = None
        self._vectors: np.ndarray | None = None

    def load(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Answer these texts from ``vectors`` (row i for text i) until :meth:`unload`."""
        self._table = {t: i for i, t in enumerate(texts)}
        self._vectors = vectors

    def unload(self) -> None:
        """Embed everything with the inner embedder from now on."""
        self._table, self._vectors = None, None

    @contextlib.contextmanager
    def preloaded(self, texts: Sequence[str], vectors: np.ndarray) -> Iterator[BenchEmbedder]:
        """:meth:`load` for the duration of the block (e.g. while seeding a store), then :meth:`unload`."""
        self.load(texts, vectors)
        try:
            yield self
        finally:
            self.unload()

    def reset_counters(self) -> None:
        self.seconds, self.calls, self.texts = 0.0, 0, 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self._table is not None and self._vectors is not None:
            try:
                rows = [self._table[t] for t in texts]
            except KeyError:
                pass
            else:
                return self._vectors[rows]
        start = time.perf_counter()
        out = self.inner(texts)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.texts += len(texts)
        return np.asarray(out)


def make_inner_embedder(name: str, *, cache_size: int = 4096) -> Any:
    """A fresh (cold-cache) embedder by name: ``"hash"`` or ``"minilm"``."""
    from agemem_gym.memory.embedders import HashingEmbedder, MiniLMEmbedder

    if name == "hash":
        return HashingEmbedder(cache_size=cache_size)
    if name == "minilm":
        return MiniLMEmbedder(cache_size=cache_size)
    raise ValueError(f"unknown embedder {name!r}; expected 'hash' or 'minilm'")


def embed_cached(
    name: str, texts: Sequence[str], *, cache_dir: Path | None, chunk: int = 1024, log: Callable[[str], None] = print
) -> np.ndarray:
    """Embed ``texts`` with a fresh embedder ``name``, in chunks cached as ``.npy`` files under ``cache_dir``.

    Chunks are keyed by their texts, so a longer corpus reuses the chunks of a shorter one and an interrupted run
    resumes where it stopped. ``cache_dir=None`` disables the cache (the hashing embedder is fast enough).
    """
    embedder = make_inner_embedder(name, cache_size=0)
    out = np.empty((len(texts), int(embedder.dim)), dtype=np.float32)
    start = time.perf_counter()
    computed = 0
    for lo in range(0, len(texts), chunk):
        part = list(texts[lo : lo + chunk])
        path = None
        if cache_dir is not None:
            key = hashlib.sha256("\x00".join(part).encode("utf-8", "surrogatepass")).hexdigest()[:16]
            path = cache_dir / f"vectors-{embedder.name}-{key}.npy"
            if path.is_file():
                vecs = np.load(path)
                if vecs.shape == (len(part), out.shape[1]):
                    out[lo : lo + len(part)] = vecs
                    continue
        out[lo : lo + len(part)] = embedder(part)
        computed += len(part)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, out[lo : lo + len(part)])
            os.replace(tmp, path)
        if computed and (lo // chunk) % 8 == 7:
            rate = computed / (time.perf_counter() - start)
            log(f"  {embedder.name}: embedded {lo + len(part)}/{len(texts)} texts ({rate:.0f} texts/s)")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Timing and statistics
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """A series whose ``setup(i)`` runs untimed before each timed ``run(i)`` (e.g. restoring a context to edit)."""

    run: Callable[[int], Any]
    setup: Callable[[int], Any] | None = None


def interleaved(
    series: Mapping[str, Callable[[int], Any] | Timed],
    *,
    calls: int,
    burn_in: int,
    alternate: bool = True,
) -> dict[str, list[float]]:
    """Time each ``series[name](i)`` for i in ``range(burn_in + calls)``, all series call by call.

    Iteration i runs every series once (in the given order, or reversed on odd i when ``alternate``); the first
    ``burn_in`` iterations are not recorded. A :class:`Timed` series runs its ``setup(i)`` untimed first. Returns
    seconds per call, per series.
    """
    names = list(series)
    plans = {n: s if isinstance(s, Timed) else Timed(s) for n, s in series.items()}
    out: dict[str, list[float]] = {n: [] for n in names}
    gc.collect()
    clock = time.perf_counter
    for i in range(burn_in + calls):
        order = names[::-1] if alternate and i % 2 else names
        for name in order:
            plan = plans[name]
            if plan.setup is not None:
                plan.setup(i)
            run = plan.run
            start = clock()
            run(i)
            elapsed = clock() - start
            if i >= burn_in:
                out[name].append(elapsed)
    return out


def stats(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p99, mean (microseconds), and ops/s (calls over their total time) of a series."""
    if not seconds:
        return {"n": 0, "median_us": float("nan"), "p99_us": float("nan"), "mean_us": float("nan"), "ops_per_s": 0.0}
    arr = np.asarray(seconds, dtype=np.float64)
    return {
        "n": len(arr),
        "median_us": float(np.median(arr) * 1e6),
        "p99_us": float(np.percentile(arr, 99) * 1e6),
        "mean_us": float(arr.mean() * 1e6),
        "ops_per_s": float(len(arr) / arr.sum()) if arr.sum() > 0 else float("inf"),
    }


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is not positive."""
    return a / b if b > 0 else float("nan")


def recall_at_k(found: Sequence[Sequence[int]], queries: np.ndarray, vectors: np.ndarray, k: int) -> float:
    """Share of returned rows whose exact score reaches the exact k-th best (rows tied with the k-th count).

    ``found[i]`` are row indices into ``vectors`` returned for ``queries[i]``; the denominator is ``k`` per query
    (or the number of vectors when fewer), so returning fewer than k rows lowers recall.
    """
    if not len(found):
        return float("nan")
    exact = queries @ vectors.T  # (Q, N)
    kk = min(k, vectors.shape[0])
    kth = np.partition(exact, exact.shape[1] - kk, axis=1)[:, exact.shape[1] - kk]  # (Q,)
    hits = sum(int((exact[i, list(rows)] >= kth[i] - 1e-5).sum()) for i, rows in enumerate(found) if len(rows))
    return hits / (kk * len(found))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (no-op for None or without torch)."""
    if n is None:
        yield
        return
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _openblas() -> tuple[Any, Any] | None:
    """numpy's OpenBLAS thread getter and setter (found the way threadpoolctl finds them), or None."""
    import ctypes

    import numpy  # noqa: F401  (loads the library)

    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    for path in sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype = ctypes.c_int
                    return get, set_
    return None


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[int | None]:
    """Run the block with numpy's OpenBLAS limited to ``n`` threads; yields the previous count (None: not found).

    hnswlib answers one query on one thread. numpy's multi-threaded matrix-vector product (the exact-search
    baseline) on a shared 2-core machine leaves its worker threads spinning after each call, which slowed the calls
    interleaved with it several-fold; one thread keeps the series independent.
    """
    found = _openblas()
    if found is None:
        yield None
        return
    get, set_ = found
    before = int(get())
    set_(n)
    try:
        yield before
    finally:
        set_(before)


# ---------------------------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty_files": len(git("status", "--porcelain").splitlines())}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other processes compete for the cores), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def pressure() -> dict[str, float] | None:
    """Linux pressure-stall figures: the share of the last 60 s in which some task waited for CPU, memory or I/O."""
    out: dict[str, float] = {}
    for resource in ("cpu", "memory", "io"):
        try:
            first = Path(f"/proc/pressure/{resource}").read_text().splitlines()[0]
        except (OSError, IndexError):
            continue
        fields = dict(part.split("=", 1) for part in first.split()[1:] if "=" in part)
        if "avg60" in fields:
            out[f"{resource}_some_avg60"] = float(fields["avg60"])
    return out or None


def machine_info() -> dict[str, Any]:
    """Versions, CPU, core count, Python, commit and date: what a reader needs to compare two runs."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        import psutil

        memory_gib: float | None = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        memory_gib = None
    torch_threads_default = None
    with contextlib.suppress(ImportError):
        import torch

        torch_threads_default = torch.get_num_threads()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **_commit(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory_gib,
        "torch_threads_default": torch_threads_default,
        "load_average_start": load_average(),
        "pressure_start": pressure(),
        "packages": versions,
        "argv": sys.argv[1:],
    }


def rss_bytes() -> int:
    """This process's resident set size."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover - psutil is in the dev environment
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Log:
    """Progress lines on stderr, with the elapsed time since the start."""

    quiet: bool = False
    start: float = field(default_factory=time.perf_counter)

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:7.1f}s] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return float(statistics.median(values)) if values else float("nan")


def loglog_slope(sizes: Sequence[float], values: Sequence[float]) -> float:
    """The least-squares slope of log(value) against log(size): ~0 flat, ~1 linear in the store size."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(sizes, values) if x > 0 and y > 0 and math.isfinite(y)]
    if len(pairs) < 2:
        return float("nan")
    xs, ys = np.array(pairs).T
    if np.ptp(xs) == 0:
        return float("nan")
    return float(np.polyfit(xs, ys, 1)[0])


def relative(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the repository root (results and reports never name this machine's paths)."""
    return os.path.relpath(Path(path).resolve(), REPO)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars made Python, tuples made lists, paths made relative to the repository, and
    NaN / infinity made None (strict JSON)."""
    if isinstance(value, Path):
        return relative(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value

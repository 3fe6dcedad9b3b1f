"""pytest-benchmark suite of the env step (excluding the policy), single and vectorised (see
:mod:`benchmarks.env_steps`)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.corpus import BenchEmbedder, Corpus, embed_cached, make_inner_embedder
from benchmarks.env_steps import Stepper, make_driver, make_env, prefill_snapshot
from benchmarks.suite import CONTEXTS, ENV_SIZES, ROUNDS, VARIANTS, WARMUP


@pytest.fixture(scope="module", params=ENV_SIZES, ids=lambda n: f"N{n}")
def snapshot(request: Any, corpus: Corpus) -> tuple[int, dict[str, Any] | None]:
    n = request.param
    if n == 0:
        return n, None
    vectors = embed_cached("hash", corpus.items[:n], cache_dir=None, log=lambda _m: None)
    return n, prefill_snapshot(n, BenchEmbedder(make_inner_embedder("hash")), corpus, vectors)


@pytest.mark.parametrize("context", CONTEXTS)
def test_env_step(benchmark: Any, snapshot: tuple[int, dict[str, Any] | None], context: str) -> None:
    """``env.step`` of the oracle's next action with the store pre-filled to N items (policy and resets untimed)."""
    n, snap = snapshot
    embedder = BenchEmbedder(make_inner_embedder("hash"))
    stepper = Stepper(make_env(context, embedder), snap)
    benchmark.group = f"env step {context}"
    benchmark.extra_info.update({"items": n, "context": context})
    benchmark.pedantic(
        stepper.step, setup=lambda: ((stepper.next_action(),), {}), rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1
    )
    benchmark.extra_info["embedder_s"] = embedder.seconds
    stepper.env.close()


@pytest.mark.parametrize("variant", VARIANTS)
def test_vector_step(benchmark: Any, variant: str) -> None:
    """One ``step`` of one env or of ``gym.make_vec`` (num_envs transitions per round; policies untimed)."""
    driver = make_driver(variant)
    benchmark.group = "make_vec step"
    benchmark.extra_info["num_envs"] = driver.n
    try:
        benchmark.pedantic(
            driver.step, setup=lambda: ((driver.actions(),), {}), rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1
        )
    finally:
        driver.env.close()
    benchmark.extra_info["transitions"] = driver.transitions

"""pytest-benchmark suite of one GRPO update per model on CPU, with its tokens/s (see
:mod:`benchmarks.trainer_perf`)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.suite import MODELS, QUICK
from benchmarks.timing import Log
from benchmarks.trainer_perf import TrainerConfig, run_model

_QUICK = {"groups_per_update": 1, "group_size": 2, "max_new_tokens": 4, "max_prompt_tokens": 128}


@pytest.mark.parametrize("model", MODELS)
def test_grpo_update(benchmark: Any, model: str) -> None:
    """One GRPO update (rollout + learning) of ``model``; tokens/s and the baselines go to extra_info."""
    config = TrainerConfig(models=(model,), overrides=_QUICK if QUICK else {}, baselines=not QUICK)
    benchmark.group = "grpo update"
    result = benchmark.pedantic(lambda: run_model(model, 1, config, Log(quiet=True)), rounds=1, iterations=1)
    benchmark.extra_info.update({k: v for k, v in result.items() if k != "per_update"})

"""SFT then GRPO on the real synthetic env: the trained policy's R(τ) is clearly above the warm start's (slow)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agemem_gym.trainers.learning_demo import DemoArgs, main

from .grpo_fakes import torch_threads


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and do not stall when other jobs share the cores."""
    with torch_threads(1):
        yield


@pytest.mark.slow
@pytest.mark.xfail(
    reason="measured after the reward rewrite (issue 11): seed 1 gains +0.026 (-0.220 -> -0.195), below the 0.12 "
    "margin set under the old reward; issue 12 replaces this demo with one that teaches memory use",
    strict=False,
)
def test_sft_warm_start_then_grpo_raises_the_reward(tmp_path: Path) -> None:
    """Seeded: 24 GRPO updates after an SFT warm start raise mean R(τ) on 64 held-out tasks well above the start."""
    result = main(DemoArgs(seed=1, output_dir=str(tmp_path), progress=False))
    # Mean R(τ) on 64 held-out tasks (sampled at T = 0.7 from a seeded RNG), warm start -> after 24 updates, seeds
    # 1-4: -0.389 -> -0.107 (+0.282), -0.429 -> +0.081 (+0.510), -0.278 -> -0.042 (+0.236), -0.279 -> +0.031
    # (+0.311); truncated episodes 21 -> 11, 22 -> 4, 17 -> 9, 17 -> 6. The margin is half the smallest gain seen,
    # so it fails on a broken update or loss, not on seed or platform noise (the eval's standard error is ~0.1).
    assert result["gain"] > 0.12, result
    assert result["trained/truncated_episodes"] < result["warm_start/truncated_episodes"], result
    rows = [json.loads(line) for line in (tmp_path / "learn__1" / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["update"] == 0 and rows[-1]["update"] == 24
    assert (tmp_path / "learn__1" / "grpo" / "curves.png").stat().st_size > 0

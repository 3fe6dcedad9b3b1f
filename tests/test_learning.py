"""The learning demo (slow): SFT on the behaviour mixture, then GRPO, on recall tasks, evaluated on a held-out world.

What it must show (issue 12) is memory management learned by RL: memory quality, retrieval before answering and
the task score rising, and the trained policy beating ``no_memory``. With the default tiny byte-level model it
does not yet (measured below), so that test is an expected failure that reports the figures; the other test pins
what the demo does achieve, so that a broken update or loss still fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agemem_gym.trainers.learning_demo import REPORTED, DemoArgs, main

from .grpo_fakes import torch_threads


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and do not stall when other jobs share the cores."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("learn")
    with torch_threads(1):
        return out, main(DemoArgs(seed=1, output_dir=str(out), progress=False))


@pytest.mark.slow
def test_demo_reports_held_out_memory_metrics_and_grpo_cuts_failed_turns(demo: tuple[Path, dict[str, Any]]) -> None:
    """Measured, seeds 1-4: truncated episodes 16 -> 3, 19 -> 2, 11 -> 1, 11 -> 2 of 64; R gains +0.336, +0.450,
    +0.276, +0.243 (seed 1: -0.305 -> +0.031, action errors 0.099 -> 0.027 per turn). The R margin is half the
    smallest gain. The memory metrics of every row and the no_memory baseline are reported."""
    out, result = demo
    for row in ("warm_start", "trained", "no_memory"):
        assert set(result[row]) == set(REPORTED), result[row]
    assert result["trained"]["truncated_episodes"] < result["warm_start"]["truncated_episodes"], result
    assert result["trained"]["action_error_rate"] < result["warm_start"]["action_error_rate"], result
    assert result["gain"]["R"] > 0.12, result
    assert result["no_memory"]["MQ_f1"] == 0.0 and result["no_memory"]["retrieve_before_answer"] == 0.0
    assert sorted(result["curve"]) == [0, 8, 16, 24]
    for png in ("curves.png", "memory.png"):
        assert (out / "learn__1" / "grpo" / png).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.xfail(
    reason="measured (seed 1, tiny-128): MQ-F1 0.000 -> 0.000, retrieval before answering 0.281 -> 0.141, task "
    "-0.229 -> -0.036, R -0.305 -> +0.031 against no_memory's +0.108. The byte-level model learns the formats but "
    "not to copy names it has not seen (it writes plausible names of its own), so a stored memory never holds the "
    "fact and GRPO learns to avoid the tools; issue 12 stays open",
    strict=False,
)
def test_grpo_teaches_when_memory_pays_off(demo: tuple[Path, dict[str, Any]]) -> None:
    """What the demo is for: memory quality, retrieval before answering and the task score rise under GRPO, and
    the trained policy beats no_memory on the same held-out tasks."""
    _, result = demo
    gain = result["gain"]
    assert gain["MQ_f1"] > 0.1 and gain["retrieve_before_answer"] > 0.1 and gain["task_score"] > 0.1, result
    assert result["trained"]["R"] > result["no_memory"]["R"], result

"""Tests of the trainer-vs-TRL comparison script: task draws, summaries, the table, and (slow) a real run."""

from __future__ import annotations

import importlib.util
import json
import random
import re
from pathlib import Path

import pytest

from benchmarks.compare_trl import Args, RunResult, _table, check_args, main, task_draws


def test_task_draws_follow_the_trainers_rule() -> None:
    """Each update's B tasks are drawn with random.Random(f"{seed}-{update}") over the suite, as the trainer does."""
    args = Args(num_updates=3, groups_per_update=2, seed=5)
    draws = task_draws("AgeMem-Synthetic-v0", {"n_tasks": 30}, args)
    ids = [f"syn-medium-s0-{i:06d}" for i in range(30)]
    for update, drawn in enumerate(draws):
        rng = random.Random(f"5-{update}")
        assert drawn == [ids[rng.randrange(30)] for _ in range(2)]


def test_summary_and_table() -> None:
    """The summary takes medians and token rates over the updates, and the table has one line per run."""
    run = RunResult("ours", "tiny", "synthetic", wall_s=[2.0, 4.0], gen_s=[1.0, 1.0], gen_tokens=[100, 300])
    run.prompt_tokens, run.reward, run.turns_per_episode = [10, 30], [-1.0, 0.5], [3.0, 3.0]
    s = run.summary()
    assert s["wall_s_per_update"] == 3.0 and s["tokens_per_s"] == pytest.approx(400 / 6)
    assert s["gen_tokens_per_s_in_generation"] == 200.0 and (s["reward_first"], s["reward_last"]) == (-1.0, 0.5)
    table = _table([{"model": "tiny", "suite": "synthetic", "trainer": "ours", **s}])
    assert len(table.splitlines()) == 3 and "+0.500" in table


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trl_micro_batch_size": 3}, "'trl_micro_batch_size' must divide groups_per_update * group_size (8)"),
        ({"suites": ("synthetic", "gsm8k")}, "unknown suite 'gsm8k'"),
        ({"trainers": ("ours", "verl")}, "'trainers' must be 'ours' and/or 'trl', got ['verl']"),
    ],
)
def test_bad_settings_fail_before_any_run(change: dict, message: str) -> None:
    """Settings that cannot run raise before the first trainer starts, naming the rule and the value."""
    args = Args(groups_per_update=2, group_size=4, **change)
    with pytest.raises(ValueError, match=re.escape(message)):
        check_args(args)
    with pytest.raises(ValueError, match=re.escape(message)):
        main(args)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("trl") is None, reason="TRL is not installed: pip install 'agemem-gym[trl]'"
)
def test_real_trl_one_update_of_each_trainer(tmp_path: Path) -> None:
    """One update of each trainer on the tiny model writes a JSON with both runs."""
    out = tmp_path / "cmp.json"
    args = Args(models=("tiny",), suites=("synthetic",), num_updates=1, group_size=2, groups_per_update=1)
    args.trl_max_completion_length, args.max_new_tokens, args.out = 16, 8, str(out)
    rows = main(args)
    assert [r["trainer"] for r in rows] == ["ours", "trl"]
    assert len(json.loads(out.read_text())["runs"]) == 2

"""A trained model as an agemem-eval policy: checkpoints and model names through the ``model`` policy plugin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.errors import ConfigError
from agemem_gym.evaluation.agents import make_policy
from agemem_gym.evaluation.cli import EvalArgs, render_table, run_eval
from agemem_gym.trainers.eval_policy import ModelPolicy
from agemem_gym.trainers.grpo import main, preset

from .grpo_fakes import torch_threads

SHORT = {
    "episode": {"stage1_distractors": 0, "paragraphs_per_turn": 1, "stage2_paragraphs": 1, "max_tool_rounds": 1},
    "prompt_style": "compact",
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One GRPO update of the tiny model on the real synthetic env: a checkpoint.pt to evaluate."""
    out = tmp_path_factory.mktemp("grpo")
    main(
        preset(
            "tiny",
            env_kwargs=json.dumps(SHORT),
            output_dir=str(out),
            run_name="run",
            num_updates=1,
            groups_per_update=1,
            group_size=2,
            max_new_tokens=8,
            max_prompt_tokens=512,
            progress=False,
            plot=False,
        )
    )
    return out / "run" / "checkpoint.pt"


def test_agemem_eval_scores_a_checkpoint_beside_scripted_policies(checkpoint: Path) -> None:
    """``model:<checkpoint.pt>`` runs through the evaluation command on the same tasks, with the same table."""
    args = EvalArgs(
        policies=("no_memory", f"model:{checkpoint}"), episodes=2, env_kwargs=json.dumps(SHORT), progress=False
    )
    results = run_eval(args)
    model = results[f"model:{checkpoint}"]
    assert len(model.rows) == 2 and model.task_ids == results["no_memory"].task_ids
    assert model.summary["R"] < results["no_memory"].summary["R"]  # one random update does not beat a baseline
    table = render_table(results)
    assert f"| model:{checkpoint} |" in table
    # A local model counts its tokens exactly (prompt ids fed, ids generated); a scripted policy has none: n/a.
    for row in model.rows:
        assert row["prompt_tokens_per_turn"] > 0 and 1 <= row["completion_tokens_per_turn"] <= 8
        assert row["prompt_tokens"] == row["prompt_tokens_per_turn"] * row["steps"]
    assert all(row["prompt_tokens"] is None for row in results["no_memory"].rows)
    assert "prompt_tokens_per_turn" not in results["no_memory"].summary
    assert next(line for line in table.splitlines() if line.startswith("| no_memory |")).count("| n/a ") == 2
    again = run_eval(args)[f"model:{checkpoint}"]
    drop_time = [{k: v for k, v in row.items() if k != "steps_per_s"} for row in (*model.rows, *again.rows)]
    assert drop_time[:2] == drop_time[2:]  # greedy: the same checkpoint plays the same episodes twice


def test_checkpoint_brings_its_generation_settings_and_options_override_them(checkpoint: Path) -> None:
    """The policy restores the run's max_new_tokens / max_prompt_tokens; ``?option=value`` overrides them."""
    saved = make_policy(f"model:{checkpoint}")
    assert isinstance(saved, ModelPolicy)
    assert saved.sampling.greedy and saved.sampling.max_new_tokens == 8 and saved.max_prompt_tokens == 512
    trained = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    loaded = saved.model.state_dict()
    assert trained.keys() == loaded.keys() and all(torch.equal(trained[k], loaded[k]) for k in trained)
    fresh = make_policy("model:tiny")
    assert isinstance(fresh, ModelPolicy)
    assert not all(torch.equal(trained[k], fresh.model.state_dict()[k]) for k in trained)  # the update moved them
    tuned = make_policy(f"model:{checkpoint}?sample=1&temperature=0.5&max_new_tokens=4", seed=3)
    assert isinstance(tuned, ModelPolicy)
    assert not tuned.sampling.greedy and tuned.sampling.temperature == 0.5 and tuned.sampling.max_new_tokens == 4


def test_sampled_model_policy_is_seeded_per_episode() -> None:
    """Sampling reseeds at every reset: two policies with the same seed write the same turns on the same task."""
    env = gym.make("AgeMem-Synthetic-v0", **SHORT)
    turns = []
    for _ in range(2):
        policy = make_policy("model:tiny?sample=1&max_new_tokens=6&max_prompt_tokens=256", seed=7)
        obs, info = env.reset(seed=0, options={"task_id": "syn-medium-s0-000002"})
        policy.reset(info)
        turns.append(policy.act(obs, info))
    assert isinstance(turns[0], str) and turns[0] == turns[1]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("model:", "needs a checkpoint or model"),
        ("model:missing/checkpoint.pt", "does not exist"),
        ("model:tiny?colour=red", "unknown model-policy option 'colour'"),
        ("model:tiny?temperature=hot", "'temperature' must be float"),
        ("nope:anything", "unknown policy plugin 'nope'"),
    ],
)
def test_bad_policy_specs_raise_config_errors(name: str, message: str) -> None:
    """Specs that cannot work raise ConfigError naming the problem (before any model is loaded)."""
    with pytest.raises(ConfigError, match=message):
        make_policy(name)

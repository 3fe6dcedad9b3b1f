"""Tests of the SkyRL-gym adapter against skyrl-gym itself: make, init, step outputs, rewards and metrics."""

from __future__ import annotations

import math
from typing import Any

import pytest

skyrl_gym = pytest.importorskip("skyrl_gym", reason="skyrl-gym is not installed: pip install 'agemem-gym[skyrl]'")

from agemem_gym.adapters.skyrl import AgeMemSkyRLEnv, register_skyrl, skyrl_rows  # noqa: E402
from agemem_gym.errors import ConfigError  # noqa: E402

CONFIG: dict[str, Any] = {
    "env_kwargs": {"n_tasks": 8, "episode": {"stage1_distractors": 0, "stage2_paragraphs": 1, "max_tool_rounds": 3}}
}
TASK = "syn-medium-s0-000004"


def test_real_skyrl_make_init_step_follow_base_text_env() -> None:
    """skyrl_gym.make builds the env from a dataset row, and an oracle episode yields SkyRL-shaped step outputs
    whose turn rewards sum to R(τ)."""
    import gymnasium as gym
    from omegaconf import OmegaConf
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

    from agemem_gym.evaluation.agents import OraclePolicy

    register_skyrl()
    register_skyrl()  # idempotent
    row = skyrl_rows(task_ids=[TASK], env_kwargs=CONFIG["env_kwargs"])[0]
    extras = {k: v for k, v in row.items() if k != "prompt"} | {"max_turns": 64}
    env = skyrl_gym.make(row["env_class"], env_config=OmegaConf.create(CONFIG), extras=extras)
    assert isinstance(env, BaseTextEnv) and isinstance(env, AgeMemSkyRLEnv)
    chat, meta = env.init(row["prompt"])
    assert chat == row["prompt"] and meta == {"task_id": TASK, "stage": 1}

    # The oracle reads the env's task: drive a twin env in lockstep to get its actions.
    twin = gym.make("AgeMem-Synthetic-v0", **CONFIG["env_kwargs"])
    obs, info = twin.reset(options={"task_id": TASK})
    oracle = OraclePolicy(twin.unwrapped)
    oracle.reset(info)
    rewards, done = [], False
    while not done:
        action = oracle.act(obs, info)
        obs, _, term, trunc, info = twin.step(action)
        out = env.step(action)
        assert set(out) >= set(BaseTextEnvStepOutput.__annotations__) - {"postprocessed_action"}
        assert all(set(m) == {"role", "content"} for m in out["observations"])
        assert isinstance(out["reward"], float) and isinstance(out["done"], bool)
        chat = chat + [{"role": "assistant", "content": action}] + out["observations"]  # what SkyRL appends
        rewards.append(out["reward"])
        done = out["done"]
        assert done == (term or trunc)
    assert out["observations"] == [] and out["metadata"]["episode"]["task_score"] == 1.0
    assert math.fsum(rewards) == pytest.approx(out["metadata"]["episode"]["R"])
    metrics = env.get_metrics()
    assert metrics["finished"] == 1 and metrics["R"] == pytest.approx(math.fsum(rewards))
    assert AgeMemSkyRLEnv.aggregate_metrics([metrics, metrics])["R"] == pytest.approx(metrics["R"])
    env.close()


def test_real_skyrl_observations_are_the_envs_new_messages() -> None:
    """After a tool call the observation is the tool result; after an answer it is the next user message."""
    env = AgeMemSkyRLEnv(env_config=CONFIG, extras={"extra_info": {"task_id": TASK}})
    env.init([])
    out = env.step('<tool_call>{"name": "Retrieve_memory", "arguments": {"query": "x"}}</tool_call>')
    assert [m["role"] for m in out["observations"]] == ["tool"] and "Retrieve_memory" in out["observations"][0][
        "content"
    ]
    out = env.step("<answer>Thanks!</answer>")
    assert [m["role"] for m in out["observations"]] == ["user"]
    out = env.step("no tags at all")
    assert out["metadata"]["action_error"] == "no_action" and out["reward"] < 0


def test_real_skyrl_turn_cap_and_missing_task() -> None:
    """SkyRL's max_turns ends the episode through the env, which scores it as truncated (that turn's reward carries
    P_rounds and w_task·P_no-answer); a row without a task id is a programmer error."""
    import gymnasium as gym

    env = AgeMemSkyRLEnv(env_config=CONFIG, extras={"task_id": TASK, "max_turns": 1})
    env.init([])
    out = env.step("<answer>hi</answer>")
    metrics = env.get_metrics()
    assert out["done"] and {k: metrics[k] for k in ("turns", "finished")} == {"turns": 1, "finished": 0}
    assert out["metadata"]["episode"]["truncation_reason"] == "turn_cap"
    assert metrics["R"] == pytest.approx(out["reward"]) and metrics["task_score"] == -1.0
    twin = gym.make("AgeMem-Synthetic-v0", **CONFIG["env_kwargs"])
    twin.reset(options={"task_id": TASK})
    first = float(twin.step("<answer>hi</answer>")[1])
    assert out["reward"] == pytest.approx(first - 1.0 - 1 / 3)
    assert math.fsum(out["metadata"]["reward_components"].values()) == pytest.approx(out["reward"])
    with pytest.raises(ConfigError, match="extras must name the task"):
        AgeMemSkyRLEnv(env_config=CONFIG, extras={})

"""Tests of the TRL adapter: the environment contract TRL 1.16 reads, tool schemas, rewards, and a real GRPO step."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from agemem_gym.adapters.trl import AgeMemTRLEnv, environment_factory
from agemem_gym.errors import ConfigError

KW: dict[str, Any] = {
    "n_tasks": 8,
    "episode": {"stage1_distractors": 0, "stage2_paragraphs": 1, "max_tool_rounds": 2},
}
TASK = "syn-medium-s0-000002"
TOOLS = {
    "Add_memory",
    "Update_memory",
    "Delete_memory",
    "Retrieve_memory",
    "Summary_context",
    "Filter_context",
    "answer",
}
requires_trl = pytest.mark.skipif(
    importlib.util.find_spec("trl") is None or importlib.util.find_spec("datasets") is None,
    reason="TRL is not installed: pip install 'agemem-gym[trl]'",
)


def public_functions(obj: Any) -> set[str]:
    """What TRL 1.16 lists as tools: the class's public functions other than reset and get_reward."""
    return {
        n
        for n, _ in inspect.getmembers(type(obj), predicate=inspect.isfunction)
        if not n.startswith("_") and n not in ("reset", "get_reward")
    }


def test_public_methods_are_exactly_the_tools() -> None:
    """TRL turns every public method into a tool, so only the seven tools (plus reset, get_reward) are public."""
    env = environment_factory(**KW)()
    assert public_functions(env) == TOOLS
    for name in TOOLS:
        doc = inspect.getdoc(getattr(env, name)) or ""
        params = [p for p in inspect.signature(getattr(env, name)).parameters]
        assert "Args:" in doc and all(f"{p}:" in doc for p in params), name
        assert inspect.signature(getattr(env, name)).return_annotation in (str, "str")


def test_oracle_episode_through_the_tools_scores_like_the_env() -> None:
    """Playing the oracle's calls through the tool methods gives the env's R(τ) from get_reward."""
    import gymnasium as gym

    from agemem_gym.agents import OraclePolicy
    from agemem_gym.protocol import parse_action

    kw = {**KW, "episode": {**KW["episode"], "max_tool_rounds": 8}}  # one env step per call, and the oracle batches
    ref = gym.make("AgeMem-Synthetic-v0", **kw)
    obs, info = ref.reset(options={"task_id": TASK})
    oracle = OraclePolicy(ref.unwrapped)
    oracle.reset(info)
    env = environment_factory(**kw)()
    first = env.reset(task_id=TASK)
    assert first == info["messages"][-1]["content"]
    done = False
    while not done:
        text = oracle.act(obs, info)
        obs, _, term, trunc, info = ref.step(text)
        done = term or trunc
        action = parse_action(text)
        if action.kind == "answer":
            out = env.answer(action.answer or "")
        else:
            for call in action.tool_calls:  # the adapter runs one call per env step; the oracle batches them
                out = getattr(env, call.name)(**call.arguments)
        assert isinstance(out, str)
    assert out == "Your answer was recorded; the conversation is over."
    assert env.episode is not None and env.episode["task_score"] == 1.0
    assert env.get_reward() == pytest.approx(env.episode["R"])
    with pytest.raises(RuntimeError, match="conversation is over"):
        env.answer("again")


def test_invalid_calls_raise_with_the_envs_message() -> None:
    """An invalid call raises (TRL reports it as a tool failure) with the env's feedback, and is still penalised."""
    env = environment_factory(**KW)()
    env.reset(task_id=TASK)
    with pytest.raises(ValueError, match="unknown_memory_id"):
        env.Delete_memory(memory_id="m_9999", confirmation=True)
    with pytest.raises(ValueError, match="bad_arguments"):
        env.Retrieve_memory(query="x", top_k=99)
    assert env.get_reward() < -1.0  # two format penalties plus the unfinished-episode score


def test_unfinished_rollout_is_scored_as_a_truncated_episode() -> None:
    """A rollout that stops without the final answer gets R so far + P_rounds + w_task·P_no-answer: get_reward ends
    the episode through the env, which reports it as truncated; asking again gives the same R."""
    env = environment_factory(**KW)()
    env.reset(task_id=TASK)
    assert env.get_reward() == pytest.approx(-1.0 + (1 / 3) * -1.0)
    assert env.episode is not None and env.episode["truncation_reason"] == "rollout_stopped"
    assert env.episode["R"] == env.get_reward() and env.episode["task_score"] == -1.0
    with pytest.raises(RuntimeError, match="conversation is over"):
        env.Retrieve_memory(query="anything")
    env.reset(task_id=TASK)  # the env's own tool-round limit, for comparison
    with pytest.raises(RuntimeError, match="cut off"):
        for _ in range(4):
            env.Retrieve_memory(query="anything")


def test_reset_contract() -> None:
    """reset needs a task_id, returns None when the prompt already ends with the first message, and warns on a
    mismatch."""
    env = AgeMemTRLEnv(env_kwargs=KW)
    with pytest.raises(ConfigError, match="'task_id' column"):
        env.reset(prompt=[])
    with pytest.raises(RuntimeError, match="reset"):
        AgeMemTRLEnv(env_kwargs=KW).answer("hi")
    first = env.reset(task_id=TASK)
    assert isinstance(first, str)
    assert env.reset(task_id=TASK, prompt=[{"role": "user", "content": first}]) is None
    with pytest.warns(UserWarning, match="does not end with"):
        assert env.reset(task_id=TASK, prompt=[{"role": "user", "content": "other"}]) == first


@requires_trl
def test_real_trl_dataset_rows_start_their_episode() -> None:
    """build_dataset gives one conversational row per task whose prompt ends with the episode's first message."""
    from agemem_gym.adapters.trl import build_dataset

    ds = build_dataset(n_tasks=3, env_kwargs=KW)
    assert ds.column_names == ["prompt", "task_id", "material_seed"] and len(ds) == 3
    env = environment_factory(**KW)()
    for row in ds:
        assert row["prompt"][0]["role"] == "system" and "{budget}" not in row["prompt"][0]["content"]
        assert env.reset(**row) is None


@requires_trl
def test_real_trl_schemas_and_tool_call_parsing() -> None:
    """transformers renders each tool's schema from its signature, and TRL's parser turns a Qwen-style call into
    arguments the tool method accepts."""
    from transformers.utils import get_json_schema
    from trl.chat_template_utils import add_response_schema, parse_response

    from agemem_gym.adapters.trl import tool_calling_tokenizer
    from agemem_gym.trainers.models import tiny_tokenizer

    env = environment_factory(**KW)()
    schema = get_json_schema(env.Delete_memory)["function"]
    assert schema["parameters"]["required"] == ["memory_id", "confirmation"]
    assert schema["parameters"]["properties"]["confirmation"]["type"] == "boolean"
    tok = add_response_schema(tool_calling_tokenizer(tiny_tokenizer()))
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tools=[getattr(env, n) for n in sorted(TOOLS)], tokenize=False
    )
    assert all(name in rendered for name in TOOLS)
    text = '<tool_call>\n{"name": "Add_memory", "arguments": {"content": "Orvel opened in 1841."}}\n</tool_call>'
    prefix = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    parsed = parse_response(tok, tok(text + "<|im_end|>", add_special_tokens=False).input_ids, prefix=prefix)
    call = parsed["tool_calls"][0]["function"]
    env.reset(task_id=TASK)
    assert getattr(env, call["name"])(**call["arguments"]) == "[Add_memory] added m_0001"


@requires_trl
def test_real_trl_grpo_step_on_cpu(tmp_path: Path) -> None:
    """TRL's GRPOTrainer runs one update with the adapter's factory and dataset on the tiny random Qwen2."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOConfig, GRPOTrainer

    from agemem_gym.adapters.trl import build_dataset, tool_calling_tokenizer
    from agemem_gym.trainers.models import tiny_model, tiny_tokenizer

    dataset = build_dataset(n_tasks=2, env_kwargs=KW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 renames gradient_checkpointing
        args = GRPOConfig(
            output_dir=str(tmp_path),
            use_cpu=True,
            per_device_train_batch_size=2,
            num_generations=2,
            max_completion_length=8,
            max_steps=1,
            report_to="none",
            save_strategy="no",
            bf16=False,
            gradient_checkpointing=False,
            beta=0.0,
            seed=0,
            max_tool_calling_iterations=2,
            disable_tqdm=True,
        )
        trainer = GRPOTrainer(
            model=tiny_model(seed=0),
            processing_class=tool_calling_tokenizer(tiny_tokenizer()),
            args=args,
            train_dataset=dataset,
            environment_factory=environment_factory(**KW),
        )
        trainer.train()
    logs = [h for h in trainer.state.log_history if "rewards/AgeMemTRLEnv/mean" in h]
    assert logs and trainer.state.global_step == 1
    # A random model never answers: every rollout is scored as an unfinished episode (or worse, with format errors).
    assert logs[0]["rewards/AgeMemTRLEnv/mean"] <= -1.0 - 1 / 3 + 1e-6
    pools = trainer._environment_pool[None]
    assert all(isinstance(e, AgeMemTRLEnv) for e in pools) and len(pools) == 2
    json.dumps(logs)  # the logged metrics are plain numbers

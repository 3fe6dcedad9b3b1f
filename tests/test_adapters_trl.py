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

    from agemem_gym.evaluation.agents import OraclePolicy
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


def scripted_calls(env_kwargs: dict[str, Any], task_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The oracle's episode on ``task_id`` as single tool calls (``answer`` for its replies), as TRL would make them
    through the adapter: one call per env step."""
    import gymnasium as gym

    from agemem_gym.evaluation.agents import OraclePolicy
    from agemem_gym.protocol import parse_action

    env = gym.make("AgeMem-Synthetic-v0", **env_kwargs)
    obs, info = env.reset(options={"task_id": task_id})
    oracle = OraclePolicy(env.unwrapped)
    oracle.reset(info)
    calls: list[tuple[str, dict[str, Any]]] = []
    while True:
        action = parse_action(text := oracle.act(obs, info))
        if action.kind == "answer":
            calls.append(("answer", {"text": action.answer}))
        else:
            calls += [(c.name, dict(c.arguments)) for c in action.tool_calls]
        obs, _, terminated, truncated, info = env.step(text)
        if terminated or truncated:
            return calls


def in_process_episode(env_kwargs: dict[str, Any], task_id: str, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """The same calls stepped on a plain in-process env, one per step, as protocol text: the step rewards and the
    episode summary."""
    import gymnasium as gym

    env = gym.make("AgeMem-Synthetic-v0", **env_kwargs)
    env.reset(options={"task_id": task_id})
    rewards = []
    for name, arguments in calls:
        text = (
            f"<answer>{arguments['text']}</answer>"
            if name == "answer"
            else f"<tool_call>{json.dumps([{'name': name, 'arguments': arguments}], ensure_ascii=False)}</tool_call>"
        )
        _, reward, terminated, truncated, info = env.step(text)
        rewards.append(float(reward))
        if terminated or truncated:
            return rewards, info["episode"]
    raise AssertionError("the calls did not end the episode")


@requires_trl
def test_real_trl_grpo_update_drives_whole_episodes_through_the_env(tmp_path: Path) -> None:
    """One GRPOTrainer update over 2 tasks × 2 generations whose model writes the oracle's tool calls: TRL parses
    them, runs them through the adapter (one env step each) until the final answer, and each rollout's reward is the
    R(τ) of the same calls on an in-process env, episode summary and tool counts included."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from agemem_gym.adapters.trl import build_dataset, tool_calling_tokenizer
    from agemem_gym.trainers.models import tiny_model, tiny_tokenizer

    kw = {**KW, "episode": {**KW["episode"], "max_tool_rounds": 8}}  # the oracle's batched calls, one per step
    tasks = ["syn-medium-s0-000002", "syn-medium-s0-000003"]
    dataset = build_dataset(task_ids=tasks, env_kwargs=kw)
    calls = {t: scripted_calls(kw, t) for t in tasks}
    expected = {t: in_process_episode(kw, t, calls[t]) for t in tasks}
    firsts = {row["prompt"][-1]["content"]: row["task_id"] for row in dataset}
    tokenizer = tool_calling_tokenizer(tiny_tokenizer())
    generated: list[str] = []

    def script(prompt: str) -> str:
        """The next turn of the episode this prompt belongs to: its next oracle call, then a closing message."""
        (first, task_id), *_ = [(f, t) for f, t in firsts.items() if f in prompt]
        done = prompt[prompt.index(first) :].count("<tool_response>")  # one tool result per call made so far
        if done == len(calls[task_id]):
            return "Done."
        name, arguments = calls[task_id][done]
        return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"

    class ScriptedQwen2(Qwen2ForCausalLM):
        """A random tiny Qwen2 for TRL's forward and backward passes whose generate() writes scripted turns."""

        def generate(self, input_ids: Any = None, attention_mask: Any = None, **kwargs: Any) -> Any:
            replies = []
            for ids, mask in zip(input_ids, attention_mask):
                generated.append(text := script(tokenizer.decode(ids[mask.bool()])))
                replies.append([*tokenizer(text, add_special_tokens=False).input_ids, tokenizer.eos_token_id])
            out = torch.full((len(replies), max(map(len, replies))), tokenizer.pad_token_id, dtype=input_ids.dtype)
            for i, reply in enumerate(replies):
                out[i, : len(reply)] = torch.tensor(reply)
            return torch.cat([input_ids, out], dim=1)

    base = tiny_model(seed=0)
    # TRL stops calling tools once prompt + completion reach max_position_embeddings (8192 for the tiny model), which
    # the tools' schemas (~5,400 byte tokens) and a whole episode pass.
    model = ScriptedQwen2(Qwen2Config(**{**base.config.to_dict(), "max_position_embeddings": 16384}))
    model.load_state_dict(base.state_dict())
    model.generation_config = base.generation_config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 renames gradient_checkpointing
        args = GRPOConfig(
            output_dir=str(tmp_path),
            use_cpu=True,
            per_device_train_batch_size=4,
            num_generations=2,
            max_completion_length=4096,  # a whole episode (~1,300 byte tokens): the calls and the tool results
            max_tool_calling_iterations=16,
            max_steps=1,
            report_to="none",
            save_strategy="no",
            bf16=False,
            gradient_checkpointing=False,
            beta=0.0,
            seed=0,
            disable_tqdm=True,
            logging_steps=1,
        )
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            args=args,
            train_dataset=dataset,
            environment_factory=environment_factory(**kw),
        )
        trainer.train()
    assert trainer.state.global_step == 1
    (log,) = [h for h in trainer.state.log_history if "rewards/AgeMemTRLEnv/mean" in h]
    envs = trainer._environment_pool[None]
    assert len(envs) == 4 and all(isinstance(e, AgeMemTRLEnv) for e in envs)
    played = sorted(e._env.unwrapped.task.task_id for e in envs)
    assert played == sorted(tasks * 2)  # each task played by its 2 generations
    for env in envs:
        rewards, episode = expected[env._env.unwrapped.task.task_id]
        assert env.episode == episode  # R(τ), its terms, memory quality and tool counts: the in-process env's
        assert env._reward_sum == pytest.approx(sum(rewards)) and env.get_reward() == episode["R"]
        assert episode["task_score"] == 1.0 and episode["tool_counts"]["Update_memory"] == 1
    assert log["rewards/AgeMemTRLEnv/mean"] == pytest.approx(sum(expected[t][1]["R"] for t in tasks) / 2)
    n_calls = sum(len(calls[t]) for t in tasks) * 2
    assert generated.count("Done.") == 4 and len(generated) == n_calls + 4  # every call, then one closing message
    assert log["tools/failure_frequency"] == 0.0 and log["tools/call_frequency"] == n_calls / 4  # per rollout
    json.dumps(log)  # the logged metrics are plain numbers

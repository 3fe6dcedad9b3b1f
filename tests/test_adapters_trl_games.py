"""The TRL adapter on the text-game ids: the six memory tools and ``act`` (the game action), one env step each, and
get_reward = the episode's R (each id's test skips where its game library is not installed)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from agemem_gym.adapters.trl import AgeMemTRLGameEnv, environment_factory

GAMES = [
    ("AgeMem-BabyAI-v0", "minigrid", {}, "BabyAI-GoToRedBall-v0:3", "turn left"),
    (
        "AgeMem-TextWorld-v0",
        "textworld",
        {"challenge": "tw-treasure_hunter", "level": 5, "n_games": 2},
        "tw-treasure_hunter:5:0",
        "look",
    ),
    ("AgeMem-ScienceWorld-v0", "scienceworld", {"tasks": ["boil"]}, "boil:0", "look around"),
]


@pytest.mark.parametrize(("env_id", "library", "kwargs", "task_id", "command"), GAMES, ids=[g[0] for g in GAMES])
def test_text_game_through_the_trl_tools(
    env_id: str,
    library: str,
    kwargs: dict[str, Any],
    task_id: str,
    command: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A text-game id gets the game env (tools: the six memory tools and act, no answer); reset starts the row's
    game; act steps it and returns the game's reply; an unfinished rollout's get_reward ends it with P_rounds and
    equals the sum of its step rewards."""
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    if library == "scienceworld":
        import shutil

        if shutil.which("java") is None:
            pytest.skip("ScienceWorld needs a Java runtime (no `java` on PATH)")
    if library == "textworld":
        cache: Path = request.getfixturevalue("textworld_cache")
        monkeypatch.setenv("AGEMEM_CACHE_DIR", str(cache))
    env = environment_factory(env_id, **kwargs)()
    assert isinstance(env, AgeMemTRLGameEnv)
    tools = {n for n, _ in inspect.getmembers(type(env), inspect.isfunction) if not n.startswith("_")}
    assert tools == {
        "Add_memory",
        "Update_memory",
        "Delete_memory",
        "Retrieve_memory",
        "Summary_context",
        "Filter_context",
        "act",
        "reset",
        "get_reward",
    }
    first = env.reset(task_id=task_id)
    assert first and env._info["messages"][-1]["content"] == first
    assert env.Add_memory(content=f"{task_id}: started").startswith("[Add_memory] added m_")
    reply = env.act(command=command)
    assert reply.startswith("The game says:\n") and env._info["game_step"] == 1
    rewards_so_far = env._reward_sum
    R = env.get_reward()
    episode = env.episode
    assert episode is not None and episode["truncation_reason"] == "rollout_stopped"
    assert pytest.approx(episode["R"]) == R and pytest.approx(env._reward_sum) == R
    assert env._reward_sum - rewards_so_far == pytest.approx(-1.0)  # P_rounds closes the stopped rollout
    assert env.get_reward() == R  # asking again changes nothing
    env._env.close()


def test_game_end_returns_the_games_last_reply_and_only_the_env_limits_raise() -> None:
    """The act that wins returns the game's reply and says the game is over; so does one that uses the game's last
    step (not a failure: the action was valid); too many memory calls between two actions raise, as a failed tool."""
    env = environment_factory("AgeMem-PDDL-v0", levels={"blocksworld": (2,)})()
    env.reset(task_id="blocksworld:2:0")
    plan = [env._env.unwrapped.pddl.action_text(a) for a in env._env.unwrapped.pddl.plan()]
    for command in plan[:-1]:
        assert env.act(command=command).startswith("The game says:\nYou ")
    last = env.act(command=plan[-1])
    assert last.startswith("The game says:\nYou ") and "The goal is satisfied." in last
    assert last.endswith("The game is over (it has ended); reply without calling tools.")
    assert env.episode is not None and env.episode["success"] and env.get_reward() == env.episode["R"]
    with pytest.raises(RuntimeError, match="conversation is over"):
        env.act(command="look around")

    limited = environment_factory("AgeMem-PDDL-v0", levels={"blocksworld": (2,)}, step_limit=1)()
    limited.reset(task_id="blocksworld:2:0")
    reply = limited.act(command="look around")
    assert reply.endswith("The game is over (its step limit was reached); reply without calling tools.")
    assert limited.episode is not None and limited.episode["truncation_reason"] == "game_truncated"

    chatty = environment_factory("AgeMem-PDDL-v0", levels={"blocksworld": (2,)})()
    chatty.reset(task_id="blocksworld:2:0")
    with pytest.raises(RuntimeError, match=r"cut off \(tool_round_limit\).*without acting in the game"):
        for _ in range(10):
            chatty.Retrieve_memory(query="anything")
    assert chatty.episode is not None and chatty.episode["truncation_reason"] == "tool_round_limit"


# ---- a real TRL GRPOTrainer update on text-game ids ----

requires_trl = pytest.mark.skipif(
    importlib.util.find_spec("trl") is None or importlib.util.find_spec("datasets") is None,
    reason="TRL is not installed: pip install 'agemem-gym[trl]'",
)
# (env id, its library or None, env kwargs, the tasks, the scripted policy that gives the actions)
UPDATE_GAMES = [
    ("AgeMem-PDDL-v0", None, {"levels": {"blocksworld": (3,)}}, ["blocksworld:3:1", "blocksworld:3:2"], "planner"),
    (
        "AgeMem-TextWorld-v0",
        "textworld",
        {"challenge": "tw-treasure_hunter", "level": 1, "n_games": 2},
        ["tw-treasure_hunter:1:0", "tw-treasure_hunter:1:1"],
        "walkthrough",
    ),
]


def game_calls(env_id: str, kwargs: dict[str, Any], task_id: str, policy: str) -> list[tuple[str, dict[str, Any]]]:
    """The scripted policy's game actions on ``task_id`` as ``act`` calls, with memory calls between them as a model
    might make them: a note first, then, before the last action, recall it and update it."""
    import gymnasium as gym

    from agemem_gym.protocol import parse_action

    env = gym.make(env_id, **kwargs)
    obs, info = env.reset(options={"task_id": task_id})
    player = env.unwrapped.SCRIPTED[policy](env.unwrapped, 0)
    player.reset(info)
    commands = []
    while True:
        action = parse_action(player.act(obs, info))
        assert action.kind == "answer" and action.answer, action  # these two policies only act
        commands.append(action.answer)
        obs, _, terminated, truncated, info = env.step(f"<answer>{action.answer}</answer>")
        if terminated or truncated:
            assert info["episode"]["success"], (task_id, info["episode"])
            break
    calls: list[tuple[str, dict[str, Any]]] = [("Add_memory", {"content": f"Task {task_id}: I started it."})]
    for i, command in enumerate(commands):
        if i == len(commands) - 1:  # before the last action (the only one, in a one-move game): recall, then update
            calls.append(("Retrieve_memory", {"query": f"task {task_id}", "top_k": 1}))
            calls.append(("Update_memory", {"memory_id": "m_0001", "content": f"Task {task_id}: one action left."}))
        calls.append(("act", {"command": command}))
    return calls


def stepped_episode(env_id: str, kwargs: dict[str, Any], task_id: str, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """The same calls stepped on a plain in-process env as protocol text: the step rewards and the episode summary."""
    import gymnasium as gym

    env = gym.make(env_id, **kwargs)
    env.reset(options={"task_id": task_id})
    rewards = []
    for name, arguments in calls:
        text = (
            f"<answer>{arguments['command']}</answer>"
            if name == "act"
            else f"<tool_call>{json.dumps([{'name': name, 'arguments': arguments}], ensure_ascii=False)}</tool_call>"
        )
        _, reward, terminated, truncated, info = env.step(text)
        rewards.append(float(reward))
        if terminated or truncated:
            return rewards, info["episode"]
    raise AssertionError("the calls did not end the episode")


@pytest.mark.slow  # ~60 s on 2 busy cores: four ~7,000-token sequences through the tiny model, forward and backward
@requires_trl
@pytest.mark.parametrize(
    ("env_id", "library", "kwargs", "tasks", "policy"), UPDATE_GAMES, ids=[g[0] for g in UPDATE_GAMES]
)
def test_real_trl_grpo_update_plays_whole_games_through_the_env(
    env_id: str,
    library: str | None,
    kwargs: dict[str, Any],
    tasks: list[str],
    policy: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One GRPOTrainer update over 2 games × 2 generations whose model writes a scripted policy's actions as act
    calls, with memory calls between them: TRL parses every call and runs it through the adapter (one env step each)
    until the game is won, and each rollout's reward is the R of the same calls on an in-process env, with success
    and progress from the episode summary and no tool failures."""
    if library is not None and importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    if library == "textworld":
        monkeypatch.setenv("AGEMEM_CACHE_DIR", str(request.getfixturevalue("textworld_cache")))
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from agemem_gym.adapters.trl import build_dataset, tool_calling_tokenizer
    from agemem_gym.trainers.models import tiny_model, tiny_tokenizer

    dataset = build_dataset(env_id, task_ids=tasks, env_kwargs=kwargs)
    calls = {t: game_calls(env_id, kwargs, t, policy) for t in tasks}
    expected = {t: stepped_episode(env_id, kwargs, t, calls[t]) for t in tasks}
    firsts = {row["prompt"][-1]["content"]: row["task_id"] for row in dataset}
    assert len(firsts) == len(tasks)  # each game's first message tells its rollouts apart
    tokenizer = tool_calling_tokenizer(tiny_tokenizer())
    generated: list[str] = []
    results: dict[tuple[str, int], str] = {}  # (task, call number) -> that call's tool result as the model saw it

    def script(prompt: str) -> str:
        """The next turn of the game this prompt belongs to: its next scripted call, then a closing message."""
        (first, task_id), *_ = [(f, t) for f, t in firsts.items() if f in prompt]
        done = prompt[prompt.index(first) :].count("<tool_response>")  # one tool result per call made so far
        if done:
            results[(task_id, done)] = prompt[prompt.rindex("<tool_response>") :]
        if done == len(calls[task_id]):
            return "Done."
        name, arguments = calls[task_id][done]
        return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"

    class ScriptedQwen2(Qwen2ForCausalLM):
        """A random tiny Qwen2 for TRL's forward and backward passes whose generate() writes scripted turns."""

        def generate(self, input_ids: Any = None, attention_mask: Any = None, **kwargs: Any) -> Any:
            out_ids = []
            for ids, mask in zip(input_ids, attention_mask):
                generated.append(text := script(tokenizer.decode(ids[mask.bool()])))
                out_ids.append([*tokenizer(text, add_special_tokens=False).input_ids, tokenizer.eos_token_id])
            out = torch.full((len(out_ids), max(map(len, out_ids))), tokenizer.pad_token_id, dtype=input_ids.dtype)
            for i, reply in enumerate(out_ids):
                out[i, : len(reply)] = torch.tensor(reply)
            return torch.cat([input_ids, out], dim=1)

    base = tiny_model(seed=0)
    # The tools' schemas and the game's instructions (~6,500 byte tokens) plus a whole game pass the tiny model's
    # 8192 positions, where TRL stops calling tools.
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
            max_completion_length=6144,  # a whole game: the calls and the game's replies
            max_tool_calling_iterations=32,
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
            environment_factory=environment_factory(env_id, **kwargs),
        )
        trainer.train()
    assert trainer.state.global_step == 1
    (log,) = [h for h in trainer.state.log_history if "rewards/AgeMemTRLGameEnv/mean" in h]
    envs = trainer._environment_pool[None]
    assert len(envs) == 4 and all(isinstance(e, AgeMemTRLGameEnv) for e in envs)

    def task_of(env: AgeMemTRLGameEnv) -> str:
        """The game an env played, by its first message (no context edit removes it in these rollouts)."""
        contents = [m["content"] for m in env._info["messages"]]
        (task_id,) = [t for f, t in firsts.items() if any(f in c for c in contents)]
        return task_id

    assert sorted(map(task_of, envs)) == sorted(tasks * 2)  # each game played by its 2 generations
    for env in envs:
        rewards, episode = expected[task_of(env)]
        # R, its terms, success, progress, tool counts: the in-process env's. Only game_seed differs: both envs reset
        # without a seed (the rows have none), so each draws its own; the task id fixes the game regardless.
        assert env.episode is not None
        assert {**env.episode, "game_seed": None} == {**episode, "game_seed": None}
        assert env._reward_sum == pytest.approx(sum(rewards)) and env.get_reward() == episode["R"]
        assert episode["success"] is True and episode["progress"] == 1.0 and episode["truncation_reason"] is None
        counts = episode["tool_counts"]
        assert counts["Add_memory"] == counts["Update_memory"] == counts["Retrieve_memory"] == 1
        assert not any(episode["error_counts"].values())
    assert log["rewards/AgeMemTRLGameEnv/mean"] == pytest.approx(sum(expected[t][1]["R"] for t in tasks) / 2)
    n_calls = sum(len(calls[t]) for t in tasks) * 2
    assert generated.count("Done.") == 4 and len(generated) == n_calls + 4  # every call, then one closing message
    assert log["tools/failure_frequency"] == 0.0 and log["tools/call_frequency"] == n_calls / 4  # per rollout
    for t in tasks:  # what the model saw: the new memory's id, then the winning act's reply and the game's end
        assert "[Add_memory] added m_0001" in results[(t, 1)]
        assert "The game says:" in results[(t, len(calls[t]))]
        assert "The game is over (it has ended); reply without calling tools." in results[(t, len(calls[t]))]

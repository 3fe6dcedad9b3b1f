"""Tests of the verifiers 0.4 adapter with verifiers' own env, rollout, interception and scoring, and its vf-eval CLI.

The model is a scripted OpenAI-compatible endpoint on loopback (tests/chat_fakes.py) that serves a scripted
policy's turns, looked up by the exact context the in-process env showed that policy: an episode through verifiers
gets the same turns only while verifiers sends the model the env's own (edited) context.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

verifiers = pytest.importorskip("verifiers", reason="verifiers is not installed: pip install 'agemem-gym[verifiers]'")
try:
    import verifiers.v1 as vf
except ImportError:
    pytest.skip(
        f"verifiers {getattr(verifiers, '__version__', '?')} has no verifiers.v1 API (it came with 0.4); "
        "pip install 'agemem-gym[verifiers]'",
        allow_module_level=True,
    )

import gymnasium as gym  # noqa: E402
from verifiers.v1.types import content_text  # noqa: E402

from agemem_gym.adapters.verifiers_v1 import (  # noqa: E402
    PLUGIN_ID,
    AgeMemEnv,
    AgeMemEnvConfig,
    AgeMemHarness,
    AgeMemTasksetConfig,
    env_config,
)

from .chat_fakes import OFF_SCRIPT, SummarisingOracle, chat_server, oracle_script, play  # noqa: E402

ENV_ID = "AgeMem-Synthetic-v0"
KW: dict[str, Any] = {"n_tasks": 4, "episode": {"stage1_distractors": 0, "stage2_paragraphs": 1}}
TASKS = ["syn-medium-s0-000000", "syn-medium-s0-000001"]


# verifiers finds plugins only as top-level modules; the plugin module lives in examples/ (not installed).
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(autouse=True)
def _plugin_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(EXAMPLES), os.environ.get("PYTHONPATH")) if p))


def is_prefix(a: list[Any], b: list[Any]) -> bool:
    return len(a) <= len(b) and b[: len(a)] == a


def run_groups(config: AgeMemEnvConfig, base_url: str, group_size: int) -> list[vf.Episode]:
    """Every task of the config's taskset, ``group_size`` episodes each, all in flight at once (as vf-eval runs
    them): the env's serving resources up once, one slot per episode."""
    env = vf.load_environment(config)
    ctx = vf.ModelContext(model="scripted", client=vf.EvalClientConfig(base_url=base_url, api_key_var="AGEMEM_NONE"))

    async def main() -> list[vf.Episode]:
        async with env.serving():
            slots = [slot for task in env.taskset for slot in env.slots(task, group_size)]
            return list(await asyncio.gather(*(env.run_slot(slot, ctx) for slot in slots)))

    return asyncio.run(main())


def test_real_verifiers_public_names_are_pinned() -> None:
    """The plugin module exports exactly one taskset, env and harness (verifiers' loader refuses more), and the
    adapter's ``__all__`` is pinned."""
    import agemem_verifiers

    from agemem_gym.adapters import verifiers_v1

    assert agemem_verifiers.__all__ == ["AgeMemEnv", "AgeMemHarness", "AgeMemTaskset"]
    assert set(verifiers_v1.__all__) == {
        "PLUGIN_ID",
        "AgeMemData",
        "AgeMemEnv",
        "AgeMemEnvConfig",
        "AgeMemHarness",
        "AgeMemHarnessConfig",
        "AgeMemTask",
        "AgeMemTaskset",
        "AgeMemTasksetConfig",
        "env_config",
        "vf_messages",
    }


def test_real_verifiers_plugin_resolves_by_id() -> None:
    """verifiers finds the taskset, its env and its harness by the plugin id, and loads the tasks with no prompt."""
    config = vf.resolve_env_config({"taskset": {"id": PLUGIN_ID, "num_tasks": 2, "env_kwargs": KW}})
    assert type(config) is AgeMemEnvConfig and isinstance(config.taskset, AgeMemTasksetConfig)
    env = vf.load_environment(config)
    assert isinstance(env, AgeMemEnv)
    assert isinstance(vf.load_harness(config.agent_harnesses()["agent"]), AgeMemHarness)
    tasks = list(env.taskset)
    assert [t.data.task_id for t in tasks] == TASKS
    assert all(t.data.prompt is None and t.data.env_kwargs == KW for t in tasks)
    first = gym.make(ENV_ID, **KW)
    first.reset(options={"task_id": TASKS[1]})
    assert tasks[1].data.answer == first.unwrapped.task.answer  # type: ignore[attr-defined]


def test_real_verifiers_groups_of_oracle_episodes_equal_the_in_process_env_and_see_the_edited_context() -> None:
    """Two tasks × two concurrent episodes through verifiers: each gets the in-process env's step rewards and R(τ),
    its tool calls happened, and every prompt the model got was the env's edited context (new branches where the
    env edited it)."""
    games = {t: play(ENV_ID, KW, t, SummarisingOracle) for t in TASKS}
    with chat_server(oracle_script(list(games.values()))) as server:
        episodes = run_groups(env_config(task_ids=TASKS, env_kwargs=KW), server.base_url, group_size=2)
    assert len(episodes) == 4 and all(e.ok and not e.errors for e in episodes)
    for episode in episodes:
        (trace,) = episode.traces
        game = games[trace.task.data.task_id]
        record = trace.info["agemem"]
        # Rewards: the env's, step by step, and R(τ) as the task's reward.
        assert record["rewards"] == game.rewards
        assert trace.rewards["agemem_reward"].score == game.episode["R"] == pytest.approx(sum(game.rewards))
        assert trace.reward == game.episode["R"]
        assert trace.metrics == {"task_score": game.episode["task_score"], "memory_f1": 1.0}
        assert game.episode["task_score"] == 1.0
        # Tool calls happened: every kind of memory tool ran, with no action error.
        counts = record["episode"]["tool_counts"]
        assert counts == game.episode["tool_counts"]
        for tool in ("Add_memory", "Update_memory", "Delete_memory", "Retrieve_memory"):
            assert counts[tool] >= 1, tool
        assert counts["Filter_context"] >= 1 and counts["Summary_context"] == 1
        assert all(s["action_error"] is None for s in record["steps"])
        # What the model saw: exactly the env's context at every step, which is not one growing conversation.
        prompts = server.prompts[trace.id]
        assert prompts == game.prompts and OFF_SCRIPT not in [m.content for m in trace.assistant_messages]
        assert [m.content for m in trace.assistant_messages] == game.actions
        edits = [i for i in range(1, len(prompts)) if not is_prefix(prompts[i - 1], prompts[i])]
        assert len(edits) >= 3  # the stage-2 reset, Filter_context, Summary_context
        assert len(prompts[edits[0]]) == 2  # stage 2 starts from the system prompt and one user message
        # verifiers' message graph: a branch per edited context, each ending on a turn the model was sent.
        assert trace.num_branches == len(edits) + 1 and trace.num_turns == len(prompts)
        leaf_prompts = [
            [{"role": m.role, "content": content_text(m.content)} for m in b.messages[:-1]] for b in trace.branches
        ]
        assert leaf_prompts == [prompts[i - 1] for i in [*edits, len(prompts)]]


def test_real_verifiers_turn_cap_ends_the_episode_through_the_env() -> None:
    """An agent capped at one turn by verifiers gets the env's truncated-episode R(τ): R so far + P_rounds +
    w_task·P_no-answer, with the closing reward among the step rewards."""
    config = vf.resolve_env_config(
        {"taskset": {"id": PLUGIN_ID, "task_ids": TASKS[:1], "env_kwargs": KW}, "agent": {"max_turns": 1}}
    )
    with chat_server(lambda messages: "<answer>Thanks!</answer>") as server:
        (episode,) = run_groups(config, server.base_url, group_size=1)
    (trace,) = episode.traces
    assert trace.stop_condition == "max_turns" and trace.num_turns == 1
    twin = gym.make(ENV_ID, **KW)
    twin.reset(options={"task_id": TASKS[0]})
    _, first, *_ = twin.step("<answer>Thanks!</answer>")
    _, closing, _, truncated, info = twin.unwrapped.truncate(reason="rollout_stopped")  # type: ignore[attr-defined]
    assert truncated and trace.info["agemem"]["rewards"] == [first, closing]
    assert trace.reward == info["episode"]["R"] == pytest.approx(first - 1.0 - 1 / 3)
    assert trace.info["agemem"]["episode"]["truncation_reason"] == "rollout_stopped"
    assert trace.metrics["task_score"] == -1.0
    assert len(server.all_prompts()) == 1


def test_real_verifiers_vf_eval_cli_runs_the_plugin(tmp_path: Path) -> None:
    """``vf-eval agemem-verifiers`` (verifiers' own CLI) runs whole episodes against a served model and writes
    traces whose reward is the in-process env's R(τ)."""
    if tuple(int(x) for x in verifiers.__version__.split(".")[:2]) < (0, 4):
        pytest.skip(f"vf-eval of verifiers {verifiers.__version__} is the classic CLI (the v1 one came with 0.4)")
    vf_eval = shutil.which("vf-eval", path=str(Path(sys.executable).parent)) or shutil.which("vf-eval")
    if vf_eval is None:
        pytest.skip("verifiers' vf-eval script is not on the PATH")
    game = play(ENV_ID, KW, TASKS[0], SummarisingOracle)
    with chat_server(oracle_script([game])) as server:
        argv = [vf_eval, PLUGIN_ID, "-n", "1", "-r", "2", "-m", "scripted", "--client.base-url", server.base_url]
        argv += ["--client.api-key-var", "AGEMEM_NONE", "--no-push", "--no-rich", "-o", str(tmp_path)]
        argv += ["--env.taskset.env-kwargs", json.dumps(KW)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    (traces_file,) = tmp_path.glob("*/traces.jsonl")
    episodes = [json.loads(line) for line in traces_file.read_text().splitlines()]
    assert len(episodes) == 2
    for episode in episodes:
        (trace,) = episode["traces"]
        assert trace["rewards"]["agemem_reward"]["score"] == game.episode["R"]
        assert trace["info"]["agemem"]["rewards"] == game.rewards
        assert trace["metrics"]["task_score"] == 1.0
    assert len(server.all_prompts()) == 2 * len(game.actions)

"""Tests of the verifiers 0.3 adapter with verifiers' own rollout loop and rubric, driven by a scripted offline client.

They run where verifiers 0.3 is installed (``pip install 'agemem-gym[verifiers03]'``); verifiers 0.4 is tested in
``test_adapters_verifiers_v1.py``."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

vf = pytest.importorskip("verifiers", reason="verifiers is not installed: pip install 'agemem-gym[verifiers03]'")
if not hasattr(vf, "MultiTurnEnv"):
    pytest.skip(
        f"verifiers {getattr(vf, '__version__', '?')} has no classic MultiTurnEnv API (0.4 removed it); "
        "the 0.3 adapter's tests need pip install 'agemem-gym[verifiers03]'",
        allow_module_level=True,
    )

import gymnasium as gym  # noqa: E402

from agemem_gym.adapters.verifiers import AgeMemVerifiersEnv, load_environment  # noqa: E402

KW: dict[str, Any] = {
    "n_tasks": 4,
    "episode": {"stage1_distractors": 0, "stage2_paragraphs": 1, "max_tool_rounds": 2},
}
Script = Callable[[list[dict[str, str]]], str]


class ScriptedClient(vf.Client):  # type: ignore[misc]
    """An offline vf.Client whose 'model' is a Python function of the prompt messages; it records every prompt."""

    def __init__(self, script: Script) -> None:
        super().__init__(None)
        self.script = script
        self.prompts: list[list[dict[str, str]]] = []

    def setup_client(self, config: Any) -> None:
        return None

    async def to_native_tool(self, tool: Any) -> Any:
        return tool

    async def to_native_prompt(self, messages: Any) -> tuple[Any, dict[str, Any]]:
        return [{"role": m.role, "content": m.content} for m in messages], {}

    async def get_native_response(self, prompt: Any, model: str, sampling_args: Any, tools: Any, **kw: Any) -> Any:
        self.prompts.append(prompt)
        return self.script(prompt)

    async def raise_from_native_response(self, response: Any) -> None:
        return None

    async def from_native_response(self, response: Any) -> Any:
        from verifiers.types import Response, ResponseMessage

        message = ResponseMessage(content=response, finish_reason="stop", is_truncated=False)
        return Response(id="r", created=int(time.time()), model="scripted", message=message)

    async def close(self) -> None:
        return None


def retrieve_then_answer(prompt: list[dict[str, str]]) -> str:
    """Stores each user message, filters stage-2 chatter, retrieves for the question, then answers."""
    last = prompt[-1]
    if last["role"] == "user" and "question for you" in last["content"]:
        return '<tool_call>{"name": "Retrieve_memory", "arguments": {"query": "question"}}</tool_call>'
    if last["role"] == "user" and not last["content"].startswith("["):  # a user message, not a tool result
        lines = last["content"].split("\n")
        call = {"name": "Add_memory", "arguments": {"content": lines[1] if len(lines) > 1 else lines[0]}}
        return f"<tool_call>{json.dumps(call)}</tool_call>"
    return "<answer>unknown</answer>"


def offline_reward(env_kwargs: dict[str, Any], task_id: str, script: Script) -> tuple[float, list[float]]:
    """The same script played on a plain Gymnasium env: R(τ) and the step rewards."""
    env = gym.make("AgeMem-Synthetic-v0", **env_kwargs)
    _, info = env.reset(options={"task_id": task_id})
    rewards = []
    while True:
        _, r, term, trunc, info = env.step(script(info["messages"]))
        rewards.append(float(r))
        if term or trunc:
            return float(info["episode"]["R"]), rewards


def run_group(env: AgeMemVerifiersEnv, client: ScriptedClient, k: int = 2) -> list[Any]:
    row = env.get_dataset()[0]
    return asyncio.run(env.run_group([dict(row) for _ in range(k)], client, "scripted", {}))


def test_real_verifiers_load_environment() -> None:
    """vf.load_environment imports the adapter module and returns a MultiTurnEnv with its dataset."""
    env = vf.load_environment("agemem_gym.adapters.verifiers", n_tasks=2, n_eval_tasks=1, env_kwargs=KW)
    assert isinstance(env, vf.MultiTurnEnv) and isinstance(env, AgeMemVerifiersEnv)
    assert len(env.get_dataset()) == 2 and len(env.get_eval_dataset()) == 1
    assert env.get_dataset()[0]["info"]["task_id"] != env.get_eval_dataset()[0]["info"]["task_id"]


def test_real_verifiers_group_rollout_scores_r_tau_and_sees_the_edited_context() -> None:
    """A group of two rollouts through verifiers' loop gets the env's R(τ); each turn's prompt is the env's context."""
    env = load_environment(n_tasks=1, env_kwargs=KW)
    client = ScriptedClient(retrieve_then_answer)
    outputs = run_group(env, client)
    task_id = env.get_dataset()[0]["info"]["task_id"]
    expected, step_rewards = offline_reward(KW, task_id, retrieve_then_answer)
    assert [o["reward"] for o in outputs] == pytest.approx([expected, expected])
    assert outputs[0]["metrics"]["task_score"] == outputs[1]["metrics"]["task_score"]
    assert len(client.prompts) == 2 * len(step_rewards)
    # Stage 2 starts from a reset context: that prompt is the system prompt and one user message, not the history.
    assert any(len(p) == 2 for p in client.prompts[1 : len(step_rewards)])
    assert not env._envs  # every rollout's env was closed


def test_real_verifiers_linear_mode_appends_and_matches_rewards() -> None:
    """With linear=True the conversation only grows, and R(τ) is unchanged for a script that ignores history."""
    env = load_environment(n_tasks=1, env_kwargs=KW, linear=True)
    client = ScriptedClient(retrieve_then_answer)
    outputs = run_group(env, client, k=1)
    expected, _ = offline_reward(KW, env.get_dataset()[0]["info"]["task_id"], retrieve_then_answer)
    assert outputs[0]["reward"] == pytest.approx(expected)
    lengths = [len(p) for p in client.prompts]
    assert lengths == [2 + 2 * i for i in range(len(lengths))]  # each turn appends its response and the reply


def test_real_verifiers_rollout_cut_by_max_turns_is_scored_as_truncated() -> None:
    """verifiers' max_turns stopping the rollout early gives R so far + P_rounds + w_task·P_no-answer."""
    env = load_environment(n_tasks=1, env_kwargs=KW, max_turns=1)
    outputs = run_group(env, ScriptedClient(lambda p: "<answer>thanks</answer>"), k=1)
    first = gym.make("AgeMem-Synthetic-v0", **KW)
    first.reset(options={"task_id": env.get_dataset()[0]["info"]["task_id"]})
    _, r, *_ = first.step("<answer>thanks</answer>")
    assert outputs[0]["reward"] == pytest.approx(r - 1.0 - 1 / 3)
    assert math.isfinite(outputs[0]["reward"])
    assert outputs[0]["metrics"]["task_score"] == -1.0  # the env's summary of the truncated episode: P_no-answer
    assert not env._envs  # cleanup ended the episode through the env and closed it

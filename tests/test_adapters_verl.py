"""Contract tests of the verl agent loop with a fake async LLM server (verl itself needs Ray and vLLM)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import gymnasium as gym
import pytest

from agemem_gym.adapters.verl import AgeMemAgentLoop, AgentLoopResult, verl_agent_loop_class
from agemem_gym.errors import ConfigError
from agemem_gym.trainers.models import tiny_tokenizer

KW: dict[str, Any] = {
    "n_tasks": 4,
    "episode": {"stage1_distractors": 0, "stage2_paragraphs": 1, "max_tool_rounds": 2},
}
TASK = "syn-medium-s0-000001"
# verl's AgentLoopOutput fields (verl/experimental/agent_loop/agent_loop.py, commit 0003ed89).
VERL_FIELDS = {
    "prompt_ids",
    "response_ids",
    "response_mask",
    "response_logprobs",
    "multi_modal_data",
    "reward_score",
    "num_turns",
    "metrics",
    "extra_fields",
}


@dataclass
class TokenOutput:
    """verl's TokenOutput shape: the generated ids and their log-probs."""

    token_ids: list[int]
    log_probs: list[float] | None


class FakeServer:
    """An async stand-in for verl's AsyncLLMServerManager: scripted text, recorded requests."""

    def __init__(self, tokenizer: Any, script: Callable[[int], str]) -> None:
        self.tokenizer, self.script = tokenizer, script
        self.calls: list[dict[str, Any]] = []

    async def generate(
        self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], image_data: Any = None
    ) -> TokenOutput:
        self.calls.append({"request_id": request_id, "prompt_ids": list(prompt_ids), "params": sampling_params})
        ids = self.tokenizer(self.script(len(self.calls) - 1), add_special_tokens=False).input_ids
        ids.append(self.tokenizer.eos_token_id)
        return TokenOutput(ids, [-0.5] * len(ids))


def script(turn: int) -> str:
    return (
        '<tool_call>{"name": "Retrieve_memory", "arguments": {"query": "founder"}}</tool_call>'
        if turn % 2 == 0
        else "<answer>unknown</answer>"
    )


def offline(actions: list[str]) -> tuple[float, list[float]]:
    env = gym.make("AgeMem-Synthetic-v0", **KW)
    env.reset(options={"task_id": TASK})
    rewards = []
    for a in actions:
        _, r, term, trunc, info = env.step(a)
        rewards.append(float(r))
        if term or trunc:
            return float(info["episode"]["R"]), rewards
    return float("nan"), rewards


def run(server: FakeServer, **kwargs: Any) -> AgentLoopResult:
    loop = AgeMemAgentLoop(None, server, server.tokenizer, env_kwargs=KW, **kwargs)
    return asyncio.run(loop.run({"temperature": 1.0}, extra_info={"task_id": TASK}, raw_prompt=[]))


def test_output_has_verls_fields_and_consistent_lengths() -> None:
    """The result carries every AgentLoopOutput field, with one mask value and one log-prob per response id."""
    server = FakeServer(tiny_tokenizer(), script)
    out = run(server)
    assert {f.name for f in fields(out)} == VERL_FIELDS
    assert len(out.response_ids) == len(out.response_mask) == len(out.response_logprobs or [])
    assert set(out.metrics) == {"generate_sequences", "tool_calls"}
    assert out.extra_fields["finished"] and out.num_turns > len(server.calls)


def test_token_in_token_out_and_masks() -> None:
    """Each request's prompt is prompt_ids + the response so far; mask-1 spans are exactly the generated tokens."""
    tok = tiny_tokenizer()
    server = FakeServer(tok, script)
    out = run(server)
    env = gym.make("AgeMem-Synthetic-v0", **KW)
    _, info = env.reset(options={"task_id": TASK})
    text = tok.apply_chat_template(info["messages"], tokenize=False, add_generation_prompt=True)
    assert tok.decode(out.prompt_ids) == text
    generated, pos = [], 0
    for i, call in enumerate(server.calls):
        assert call["prompt_ids"] == out.prompt_ids + out.response_ids[:pos]
        n = len(tok(script(i), add_special_tokens=False).input_ids) + 1
        assert out.response_mask[pos : pos + n] == [1] * n and out.response_logprobs[pos : pos + n] == [-0.5] * n
        generated.append(tok.decode(out.response_ids[pos : pos + n], skip_special_tokens=True))
        pos += n
        while pos < len(out.response_mask) and out.response_mask[pos] == 0:
            pos += 1
    assert pos == len(out.response_ids) and generated == [script(i) for i in range(len(server.calls))]
    assert len({c["request_id"] for c in server.calls}) == 1  # one sticky session per episode
    # The env's reply is rendered as the chat template's continuation: a tool turn, then the assistant header.
    first_obs = tok.decode(out.response_ids[len(tok(script(0)).input_ids) + 1 :][:200])
    assert first_obs.startswith("\n<|im_start|>tool\n[Retrieve_memory]")


def test_reward_score_is_r_tau_and_turn_scores_sum_to_it() -> None:
    """reward_score is the env's R(τ) for the same actions, and the per-turn scores sum to it."""
    server = FakeServer(tiny_tokenizer(), script)
    out = run(server)
    expected, rewards = offline([script(i) for i in range(len(server.calls))])
    assert out.reward_score == pytest.approx(expected)
    assert out.extra_fields["turn_scores"] == pytest.approx(rewards)
    assert math.fsum(out.extra_fields["turn_scores"]) == pytest.approx(out.reward_score)


def test_caps_end_the_episode_with_the_truncated_score() -> None:
    """A response-length or turn cap stops the loop and the env ends the episode as truncated: R so far + P_rounds
    + w_task·P_no-answer, carried by the last turn's score; lengths stay capped."""
    server = FakeServer(tiny_tokenizer(), script)
    out = run(server, response_length=150)
    assert len(out.response_ids) <= 150 and not out.extra_fields["finished"]
    first = offline([script(0)])[1][0]
    assert out.reward_score == pytest.approx(first - 1.0 - 1 / 3)
    assert out.extra_fields["episode"]["truncation_reason"] == "response_length"
    assert out.extra_fields["episode"]["R"] == out.reward_score
    assert math.fsum(out.extra_fields["turn_scores"]) == pytest.approx(out.reward_score)
    capped = run(FakeServer(tiny_tokenizer(), script), max_turns=1)
    assert not capped.extra_fields["finished"] and capped.extra_fields["episode"]["truncation_reason"] == "turn_cap"
    assert capped.reward_score == pytest.approx(first - 1.0 - 1 / 3)
    assert capped.extra_fields["turn_scores"] == pytest.approx([first - 1.0 - 1 / 3])
    with pytest.raises(ConfigError, match="must name the task"):
        asyncio.run(AgeMemAgentLoop(None, server, server.tokenizer).run({}))
    with pytest.raises(ConfigError, match="'max_turns'"):
        AgeMemAgentLoop(None, server, server.tokenizer, max_turns=0)


def test_verl_wrapper_needs_verl() -> None:
    """Without verl installed, asking for the verl subclass raises an ImportError that says how to get verl."""
    try:
        import verl  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs verl"):
            verl_agent_loop_class()
    else:  # pragma: no cover - verl is not installed in this project's environments
        assert verl_agent_loop_class().__name__ == "VerlAgeMemAgentLoop"

"""A tiny three-stage text env that follows the AgeMem env contract, and a scripted policy for it (trainer tests).

The trainer must depend only on the contract (DESIGN.md §6): ``info["messages"]`` / ``info["tools"]``, the episode
summary in ``info["episode"]`` on the last step with ``R`` equal to the sum of step rewards, K envs reset with one
``task_id`` sharing their start, and ``env.unwrapped.suite.task_ids``. This fake honours exactly that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import torch

FAKE_ENV_ID = "AgeMemFake-v0"
TRUNCATION_PENALTY = -1.0  # what a truncated episode pays on its last step (AgeMemEnv: P_rounds + w_task·P_no-answer)
WORDS = ("apple", "river", "stone", "cloud", "maple", "tiger", "piano", "lemon")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "Add_memory",
            "parameters": {"type": "object", "properties": {"content": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Retrieve_memory",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    },
]
SYSTEM = (
    "You manage your memory. Reply with <think>...</think> then <tool_call>[...]</tool_call> or <answer>...</answer>."
)


class _AnyText(gym.spaces.Space[str]):
    """Any ``str`` (Gymnasium's ``Text`` space rejects most punctuation)."""

    def __init__(self) -> None:
        super().__init__(shape=None, dtype=None)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return "<answer>x</answer>"


@dataclass(frozen=True)
class FakeSuite:
    task_ids: tuple[str, ...]


class FakeMemoryEnv(gym.Env[str, str]):
    """Stage 1 tells a secret word, stage 2 a distractor (context reset), stage 3 asks for the word.

    Rewards (their sum is R(τ), reported in ``info["episode"]["R"]``):
    - ``"secret"``: 0.1 per well-formed action, plus 1 at the end if the final answer holds the secret word;
    - ``"char"``: each turn pays the share of its action's characters equal to ``target``, summed over the turns
      of an episode, over 3: a dense signal that even a random byte-level model can climb.

    An episode that reaches 20 steps, or that ``truncate(reason)`` ends, also pays ``TRUNCATION_PENALTY``.
    """

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        *,
        num_tasks: int = 4,
        max_tool_rounds: int = 1,
        reward: Literal["secret", "char"] = "secret",
        target: str = "a",
    ) -> None:
        self.suite = FakeSuite(tuple(f"task-{i}" for i in range(num_tasks)))
        self.max_tool_rounds = max_tool_rounds
        self.reward_mode = reward
        self.target = target
        self.action_space = _AnyText()
        self.observation_space = _AnyText()
        self.resets: list[tuple[int | None, str]] = []  # (seed, task_id) of every reset, for tests
        self.truncations: list[str] = []  # the reason of every truncate() call, for tests

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        task_id = (options or {}).get("task_id") or self.suite.task_ids[
            int(self.np_random.integers(len(self.suite.task_ids)))
        ]
        self.resets.append((seed, task_id))
        digest = hashlib.sha256(task_id.encode()).digest()
        self.secret = WORDS[digest[0] % len(WORDS)]
        self.stage, self.rounds, self.steps, self.total = 1, 0, 0, 0.0
        self.tool_counts: dict[str, int] = {}
        self.memory: list[str] = []
        self.messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"By the way, the secret word is {self.secret}."},
        ]
        return self._obs(), self._info(None)

    def _obs(self) -> str:
        return "\n".join(f"[{m['role']}] {m['content']}" for m in self.messages)

    def _info(self, error: str | None) -> dict[str, Any]:
        return {
            "messages": [dict(m) for m in self.messages],
            "tools": TOOLS,
            "stage": self.stage,
            "action_error": error,
            "reward_components": {},
        }

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self.steps += 1
        answer = _between(action, "<answer>", "</answer>")
        calls = _between(action, "<tool_call>", "</tool_call>")
        error = None if (answer is not None or calls is not None) else "no_action"
        if self.reward_mode == "char":
            reward = sum(c == self.target for c in action) / max(1, len(action)) / 3.0
        else:
            reward = 0.1 if error is None else 0.0
        components = {"action": reward}  # the contract: the components sum to the step's reward
        self.messages.append({"role": "assistant", "content": action})
        if calls is not None and answer is None:
            self._run_tools(calls)
        terminated = False
        if answer is not None or self.rounds >= self.max_tool_rounds:
            if self.stage == 3:
                terminated = True
                if self.reward_mode == "secret":
                    components["task"] = float(answer is not None and self.secret in answer)
                    reward += components["task"]
            else:
                self._next_stage()
        else:
            self.rounds += 1
            if error is not None:
                self.messages.append({"role": "tool", "content": "error: no_action"})
        self.total += reward
        truncated = not terminated and self.steps >= 20
        info = self._info(error)
        info["reward_components"] = components
        if terminated or truncated:
            penalty = 0.0
            if truncated:  # as AgeMemEnv: P_rounds, and the no-answer score
                penalty, answer = TRUNCATION_PENALTY, None
                reward += penalty
                components["penalty"] = penalty
                self.total += penalty
            info["episode"] = self._summary(answer, penalty)
        return self._obs(), reward, terminated, truncated, info

    def truncate(self, reason: str = "turn_cap") -> tuple[str, float, bool, bool, dict[str, Any]]:
        """End the episode now, as its own step limit would (``TRUNCATION_PENALTY``), like ``AgeMemEnv.truncate``."""
        self.total += TRUNCATION_PENALTY
        self.truncations.append(reason)
        info = self._info(None)
        info["reward_components"] = {"penalty": TRUNCATION_PENALTY}
        info["episode"] = self._summary(None, TRUNCATION_PENALTY)
        info["truncation_reason"] = reason
        return self._obs(), TRUNCATION_PENALTY, False, True, info

    def _summary(self, answer: str | None, penalty: float) -> dict[str, Any]:
        score = float(answer is not None and self.secret in answer)
        stored = [m for m in self.memory if self.secret in m]
        precision = len(stored) / len(self.memory) if self.memory else 0.0
        recall = float(bool(stored))
        return {
            "R": self.total,
            "task_score": score,
            "R_context": 0.0,
            "R_memory": precision,
            "penalty": penalty,
            "memory_quality": {
                "precision": precision,
                "recall": recall,
                "f1": 2 * precision * recall / max(1e-9, precision + recall),
            },
            "tool_counts": dict(self.tool_counts),
            "context_tokens_peak": sum(len(m["content"]) for m in self.messages),
        }

    def _run_tools(self, calls: str) -> None:
        try:
            parsed = json.loads(calls)
        except json.JSONDecodeError:
            self.messages.append({"role": "tool", "content": "error: bad_json"})
            return
        results = []
        for call in parsed if isinstance(parsed, list) else [parsed]:
            name = str(call.get("name")) if isinstance(call, dict) else "?"
            self.tool_counts[name] = self.tool_counts.get(name, 0) + 1
            if name == "Add_memory":
                self.memory.append(str(call.get("arguments", {}).get("content", "")))
                results.append(f"added m_{len(self.memory)}")
            elif name == "Retrieve_memory":
                results.append(" | ".join(self.memory) or "nothing stored")
        self.messages.append({"role": "tool", "content": "; ".join(results) or "no results"})

    def _next_stage(self) -> None:
        self.stage += 1
        self.rounds = 0
        if self.stage == 2:  # STM is reset at the start of stage 2 (LTM persists)
            self.messages = [self.messages[0], {"role": "user", "content": "Unrelated: rivers flow to the sea."}]
        else:
            self.messages.append({"role": "user", "content": "Question: what is the secret word?"})


def _between(text: str, start: str, end: str) -> str | None:
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    return text[i + len(start) : j] if i >= 0 and j >= 0 else None


class ScriptedPolicy:
    """Stores the secret in stage 1, acknowledges stage 2, retrieves then answers in stage 3."""

    def reset(self, info: dict[str, Any]) -> None:
        self.retrieved = False

    def act(self, observation: str, info: dict[str, Any]) -> str:
        last = info["messages"][-1]
        if info["stage"] == 1 and last["role"] == "user":
            call = json.dumps([{"name": "Add_memory", "arguments": {"content": last["content"]}}])
            return f"<think>Worth keeping.</think><tool_call>{call}</tool_call>"
        if info["stage"] == 3 and not self.retrieved:
            self.retrieved = True
            return '<think>Look it up.</think><tool_call>[{"name": "Retrieve_memory", "arguments": {"query": "secret word"}}]</tool_call>'
        if info["stage"] == 3:
            word = last["content"].rsplit(" ", 1)[-1].rstrip(".")
            return f"<think>I know it.</think><answer>{word}</answer>"
        return "<think>Noted.</think><answer>Thanks!</answer>"


def register_fake_env() -> str:
    """Register :class:`FakeMemoryEnv` under ``AgeMemFake-v0`` (idempotent) and return the id."""
    if FAKE_ENV_ID not in gym.registry:
        gym.register(FAKE_ENV_ID, entry_point=FakeMemoryEnv, disable_env_checker=True)
    return FAKE_ENV_ID


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, then restore the previous count.

    The tiny model's matrices are far too small to gain from threads, and on a shared 2-core machine OpenMP's
    spinning threads can slow it down 10-30x while other jobs hold a core.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

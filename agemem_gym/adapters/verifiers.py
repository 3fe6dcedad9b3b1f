"""verifiers: the AgeMem env as a ``vf.MultiTurnEnv`` with a ``load_environment()`` entry point.

Written against verifiers 0.3.1, whose classic environment API (``vf.MultiTurnEnv``, ``vf.Rubric``, ``vf.stop``,
``vf.cleanup``, ``vf.load_environment``; the module ``verifiers/legacy/envs/multiturn_env.py``, docs:
https://docs.primeintellect.ai/verifiers/environments) is what this adapter implements. verifiers 0.4.0 removed
that API in favour of its ``verifiers.v1`` taskset/harness stack, so this adapter needs ``verifiers<0.4``
(``pip install 'agemem-gym[verifiers03]'``); for verifiers 0.4 use :mod:`agemem_gym.adapters.verifiers_v1`.

The contract, as verifiers 0.3.1 defines it:

- ``load_environment(**kwargs) -> vf.Environment``; ``vf.load_environment(env_id)`` imports the module named by
  ``env_id`` and calls its ``load_environment``: here ``vf.load_environment("agemem_gym.adapters.verifiers")``.
- A dataset row has ``prompt`` (messages), ``answer``, ``info`` (a dict; here ``task_id`` and ``material_seed``).
- ``MultiTurnEnv.rollout`` loops: ``get_prompt_messages(state)`` → model response (recorded as a trajectory step
  with its own prompt and completion) → until a stop condition holds. ``env_response(messages, state)`` returns
  the messages to append (the default, linear conversation); setting ``state["final_env_response"]`` ends the
  rollout. ``setup_state`` runs before the loop and ``@vf.cleanup`` methods after it.
- A ``vf.Rubric`` scores the finished state: reward functions take named arguments such as ``state``.

Mapping: the model's turn is the agent's text in the protocol (``<think>``, ``<tool_call>`` or ``<answer>``); the
rubric's reward is R(τ); each trajectory step's ``reward`` is the env's shaped step reward. verifiers lets an env
override ``get_prompt_messages`` for non-linear conversations, so by default (``linear=False``) every turn's prompt
is the env's own context, *after* its stage-2 reset and the agent's ``Summary_context`` / ``Filter_context``
edits: the model sees exactly what the env's agent sees (step-wise, as in the paper). ``linear=True`` keeps
verifiers' append-only conversation instead. A rollout that verifiers stops before the env ends the episode
(``max_turns``, or any other stop condition) is ended through the env (``truncate``, reason
``"rollout_stopped"``) when it is cleaned up or scored, whichever comes first: the env scores it as a truncated
episode (R so far + P_rounds + w_task · P_no-answer), and ``task_score`` and ``memory_f1`` are that episode's.

>>> env = load_environment(n_tasks=2, env_kwargs={"n_tasks": 2})
>>> row = env.get_dataset()[0]
>>> row["info"]["task_id"], [m["role"] for m in row["prompt"]]
('syn-medium-s0-000000', ['system', 'user'])
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.adapters._common import close_episode, since_last_agent_turn, starts
from agemem_gym.errors import ConfigError

try:
    import verifiers as vf

    _MultiTurnEnv: Any = vf.MultiTurnEnv
except (ImportError, AttributeError) as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "agemem_gym.adapters.verifiers needs verifiers' classic MultiTurnEnv API (verifiers 0.3.x; 0.4 removed it): "
        f"pip install 'agemem-gym[verifiers03]' ({err}); for verifiers 0.4 use agemem_gym.adapters.verifiers_v1"
    ) from err

__all__ = ["AgeMemVerifiersEnv", "build_dataset", "load_environment"]


def _content(message: Any) -> str:
    content = message.get("content") if isinstance(message, Mapping) else getattr(message, "content", None)
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") if isinstance(p, Mapping) else str(getattr(p, "text", "")) for p in content)
    return content or ""


def _vf_messages(messages: Sequence[Mapping[str, str]]) -> list[Any]:
    """The env's messages as verifiers message objects. The env's tool results are plain text, not answers to
    OpenAI-style tool calls (verifiers' ``ToolMessage`` needs a ``tool_call_id``), so they travel as user messages."""
    kinds = {"system": vf.SystemMessage, "user": vf.UserMessage, "assistant": vf.AssistantMessage}
    return [kinds.get(m["role"], vf.UserMessage)(content=m["content"]) for m in messages]


def build_dataset(
    env_id: str = "AgeMem-Synthetic-v0",
    task_ids: Sequence[str] | None = None,
    *,
    n_tasks: int | None = None,
    material_seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """A ``datasets.Dataset`` in verifiers' layout: ``prompt`` (the env's first context), ``answer`` (the gold
    answer, for reference) and ``info`` (``task_id``, ``material_seed``). No ``task`` column: verifiers 0.3.1 reads
    one as a serialized task payload and rejects plain strings."""
    from datasets import Dataset

    rows = [
        {
            "prompt": start.messages,
            "answer": start.answer,
            "info": {"task_id": start.task_id, "material_seed": start.material_seed},
        }
        for start in starts(
            env_id, task_ids=task_ids, n_tasks=n_tasks, material_seed=material_seed, env_kwargs=env_kwargs
        )
    ]
    return Dataset.from_list(rows)


class AgeMemVerifiersEnv(_MultiTurnEnv):  # type: ignore[misc]
    """AgeMem episodes as a verifiers ``MultiTurnEnv`` (one Gymnasium env per rollout).

    Args:
        env_id: The Gymnasium id.
        env_kwargs: For ``gym.make``.
        linear: ``False`` (default): each turn's prompt is the env's edited context; ``True``: verifiers' default
            append-only conversation, with :meth:`env_response` supplying the env's new messages.
        **kwargs: For ``vf.MultiTurnEnv`` (``dataset``, ``eval_dataset``, ``max_turns``, ...).
    """

    def __init__(
        self,
        env_id: str = "AgeMem-Synthetic-v0",
        env_kwargs: Mapping[str, Any] | None = None,
        *,
        linear: bool = False,
        **kwargs: Any,
    ) -> None:
        rubric = vf.Rubric(funcs=[self.agemem_reward], weights=[1.0])
        for metric in (self.task_score, self.memory_f1):
            rubric.add_metric(metric)
        super().__init__(rubric=rubric, **kwargs)
        self.agemem_env_id = env_id
        self.agemem_env_kwargs = dict(env_kwargs or {})
        self.linear = linear
        self._envs: dict[str, gym.Env[str, str]] = {}  # trajectory id -> its env (kept out of the state)

    # ---- rollout hooks ----
    async def setup_state(self, state: Any) -> Any:
        """Make and reset this rollout's env on the row's task."""
        info = state.get("info") or {}
        if isinstance(info, str):
            info = json.loads(info)
        if "task_id" not in info:
            raise ConfigError("the dataset row's 'info' must hold a 'task_id' (build rows with build_dataset)")
        env = gym.make(self.agemem_env_id, **self.agemem_env_kwargs)
        _, first = env.reset(options={"task_id": info["task_id"], "material_seed": int(info.get("material_seed", 0))})
        self._envs[state["trajectory_id"]] = env
        state["agemem"] = {"messages": first["messages"], "rewards": [], "episode": None, "feedback": []}
        return state

    def _advance(self, state: Any) -> list[Any]:
        """Step the env with the last completion; returns the messages the env added after the agent's."""
        env = self._envs[state["trajectory_id"]]
        step = state["trajectory"][-1]
        text = "".join(_content(m) for m in step["completion"] if getattr(m, "role", None) in ("assistant", None))
        _, reward, terminated, truncated, info = env.step(text)
        mine = state["agemem"]
        mine["rewards"].append(float(reward))
        step["reward"] = float(reward)  # the shaped per-step reward; the rubric's reward is R(τ)
        messages = info["messages"]
        new = _vf_messages(since_last_agent_turn(messages))
        mine["messages"] = _vf_messages(messages)
        mine["feedback"].append(new)
        if terminated or truncated:
            mine["episode"] = info["episode"]
            state["final_env_response"] = new or _vf_messages(
                [{"role": "user", "content": "The conversation is over."}]
            )
        return new

    async def env_response(self, messages: Any, state: Any, **kwargs: Any) -> list[Any]:
        """The env's new messages after the agent's turn (the linear, append-only mode)."""
        return self._advance(state)

    async def get_prompt_messages(self, state: Any) -> Any:
        """The next turn's prompt: the env's own context (non-linear), or verifiers' appended conversation."""
        if self.linear or not state["trajectory"]:
            return await super().get_prompt_messages(state)
        self._advance(state)
        return state["agemem"]["messages"]

    async def render_completion(self, state: Any) -> None:
        """The completion: each turn's response followed by the env's reply to it (non-linear mode)."""
        if self.linear:
            await super().render_completion(state)
            return
        completion: list[Any] = []
        for step, feedback in zip(state["trajectory"], state.get("agemem", {}).get("feedback", [])):
            completion += list(step["completion"]) + list(feedback)
        state["completion"] = completion

    def _episode(self, state: Any) -> dict[str, Any] | None:
        """The rollout's episode summary; a rollout that verifiers stopped before the env ended it is ended here,
        through the env, which scores it as a truncated episode. None only when the rollout has no env left."""
        mine = state.get("agemem")
        if mine is None:
            return None
        if mine.get("episode") is None:
            env = self._envs.get(state.get("trajectory_id"))
            if env is None:
                return None
            # _advance records the summary of every episode the env ends, so this one is still running; were it
            # not, close_episode steps nothing and gives the ended episode's R alone.
            closing = close_episode(env, "rollout_stopped")
            mine["episode"] = closing.episode if closing.episode is not None else {"R": closing.R}
        episode: dict[str, Any] | None = mine["episode"]
        return episode

    @vf.cleanup
    async def close_agemem_env(self, state: Any) -> None:
        """End an unfinished episode through the env (so that scoring after cleanup sees it), then close and forget
        this rollout's env."""
        self._episode(state)
        env = self._envs.pop(state.get("trajectory_id"), None)
        if env is not None:
            env.close()

    # ---- rubric ----
    async def agemem_reward(self, state: Any) -> float:
        """R(τ); a rollout stopped before the env ended it is ended by the env and scored as a truncated episode."""
        episode = self._episode(state)
        return float(episode["R"]) if episode is not None else float("nan")

    async def task_score(self, state: Any) -> float:
        """R_task of the final answer (P_no-answer when there was none)."""
        episode = self._episode(state)
        return float(episode.get("task_score", -1.0)) if episode else -1.0

    async def memory_f1(self, state: Any) -> float:
        """F1 of the long-term store against the gold supporting facts at the end of the episode."""
        episode = self._episode(state)
        return float(episode.get("memory_quality", {}).get("f1", 0.0)) if episode else 0.0


def load_environment(
    env_id: str = "AgeMem-Synthetic-v0",
    n_tasks: int | None = 100,
    n_eval_tasks: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    max_turns: int = 100,
    linear: bool = False,
    **kwargs: Any,
) -> AgeMemVerifiersEnv:
    """The verifiers entry point: the suite's first ``n_tasks`` tasks for training and the next ``n_eval_tasks``
    for evaluation, as an :class:`AgeMemVerifiersEnv`.

    >>> import verifiers as vf
    >>> vf.load_environment("agemem_gym.adapters.verifiers", n_tasks=1).max_turns
    100
    """
    probe = gym.make(env_id, **dict(env_kwargs or {}))
    ids = list(probe.unwrapped.suite.task_ids)  # type: ignore[attr-defined]
    probe.close()
    end = len(ids) if n_tasks is None else min(n_tasks, len(ids))
    dataset = build_dataset(env_id, ids[:end], env_kwargs=env_kwargs)
    eval_dataset = build_dataset(env_id, ids[end : end + n_eval_tasks], env_kwargs=env_kwargs) if n_eval_tasks else None
    return AgeMemVerifiersEnv(
        env_id,
        env_kwargs,
        linear=linear,
        dataset=dataset,
        eval_dataset=eval_dataset,
        max_turns=max_turns,
        **kwargs,
    )

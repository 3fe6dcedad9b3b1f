"""SkyRL-gym: the AgeMem env as a ``BaseTextEnv`` (written against skyrl-gym 0.4.0).

SkyRL's contract (``skyrl_gym/envs/base_text_env.py`` in skyrl-gym 0.4.0; docs:
https://skyrl.readthedocs.io/en/latest/tutorials/new_env.html):

- the env is built as ``skyrl_gym.make(env_class, env_config=..., extras=...)``: ``env_config`` is the
  ``environment.skyrl_gym.<env_class>`` section of the trainer config, ``extras`` the dataset row's fields other
  than the prompt (``reward_spec``, ``extra_info``, ...) plus ``max_turns``;
- ``init(prompt) -> (chat, metadata)`` gives the first model input (OpenAI-style messages);
- ``step(action: str) -> BaseTextEnvStepOutput`` with ``observations`` (messages the generator appends to the chat),
  ``reward`` (float; SkyRL assigns per-turn rewards to each turn's last token), ``done`` and ``metadata``;
- ``get_metrics()`` returns per-episode numbers that ``aggregate_metrics`` averages.

Mapping: the action is the agent's turn in the protocol's text form; the reward is the env's per-step shaped
reward (the turn rewards of an episode sum to R(τ)); ``init`` returns the env's own prompt. When ``max_turns`` ends
an episode the env has not ended, the env ends it (``truncate(reason="turn_cap")``) and that turn's reward also
carries the closing reward (P_rounds and w_task · P_no-answer), as the turn at which the env truncates an episode
itself does, so the turn rewards still sum to the env's R(τ). SkyRL's generator only
appends observations, so the env's short-term-memory edits (the stage-2 reset, ``Summary_context``,
``Filter_context``) are not reflected in what the model sees; every step's ``metadata["messages"]`` carries the
env's edited context for generators that rebuild the prompt each turn.

>>> env = AgeMemSkyRLEnv(env_config={"env_kwargs": {"n_tasks": 4}}, extras={"task_id": "syn-medium-s0-000001"})
>>> chat, meta = env.init([])
>>> [m["role"] for m in chat], meta["stage"]
(['system', 'user'], 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.adapters._common import since_last_agent_turn, starts
from agemem_gym.errors import ConfigError

try:
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"agemem_gym.adapters.skyrl needs skyrl-gym ({err}): pip install 'agemem-gym[skyrl]'") from err

__all__ = ["ENV_CLASS", "AgeMemSkyRLEnv", "register_skyrl", "skyrl_rows"]

ENV_CLASS = "agemem"


def _plain(value: Any) -> dict[str, Any]:
    """A plain dict from None, a mapping, or an OmegaConf DictConfig (what SkyRL passes as env_config)."""
    if value is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(value, DictConfig):
            return dict(OmegaConf.to_container(value, resolve=True))  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - omegaconf ships with skyrl-gym
        pass
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(f"expects a mapping or an OmegaConf DictConfig, got {type(value).__name__}")


class AgeMemSkyRLEnv(BaseTextEnv):  # type: ignore[misc]
    """An AgeMem episode as a SkyRL ``BaseTextEnv``.

    Args:
        env_config: ``env_id`` (default ``AgeMem-Synthetic-v0``), ``env_kwargs`` (for ``gym.make``) and an optional
            ``max_turns``.
        extras: The dataset row's extras: ``task_id`` (top level or in ``extra_info``), optional ``material_seed``
            and ``seed``; SkyRL's generator adds ``max_turns``.
    """

    def __init__(self, env_config: Any = None, extras: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        config = _plain(env_config)
        extras = dict(extras or {})
        info = _plain(extras.get("extra_info"))
        self.task_id = extras.get("task_id", info.get("task_id"))
        if self.task_id is None:
            raise ConfigError("extras must name the task: 'task_id', or 'extra_info': {'task_id': ...}")
        self.material_seed = int(extras.get("material_seed", info.get("material_seed", 0)))
        self.seed = extras.get("seed", info.get("seed"))
        self.max_turns = int(extras.get("max_turns") or config.get("max_turns") or 256)
        self.env = gym.make(config.get("env_id", "AgeMem-Synthetic-v0"), **_plain(config.get("env_kwargs")))
        self.episode: dict[str, Any] | None = None
        self.finished = False  # the env ended the episode itself (answered, or truncated at its own limits)

    def init(self, prompt: list[dict[str, str]]) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """Reset to the row's task; returns the env's first context (system prompt, first user message)."""
        _, info = self.env.reset(seed=self.seed, options={"task_id": self.task_id, "material_seed": self.material_seed})
        self.turns, self.episode, self.finished = 0, None, False
        return info["messages"], {"task_id": info["task_id"], "stage": info["stage"]}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        """One agent turn: the observations are the messages the env added after the agent's own."""
        self.turns += 1
        _, reward, terminated, truncated, info = self.env.step(action)
        reward = float(reward)
        components = dict(info["reward_components"])
        self.finished = bool(terminated or truncated)
        if not self.finished and self.turns >= self.max_turns:
            # SkyRL's turn cap: the env ends the episode (P_rounds and P_no-answer, Eq. 26 and 17), and this turn
            # carries the closing reward, as the turn at which the env truncates carries those penalties.
            base: Any = self.env.unwrapped
            _, closing, _, _, closed = base.truncate(reason="turn_cap")
            reward += float(closing)
            for k, v in closed["reward_components"].items():
                components[k] = components.get(k, 0.0) + float(v)
            info = {**info, "episode": closed["episode"], "truncation_reason": closed["truncation_reason"]}
        done = "episode" in info
        messages = info["messages"]
        metadata: dict[str, Any] = {
            "stage": info["stage"],
            "action_error": info["action_error"],
            "reward_components": components,
            "messages": messages,
        }
        if done:
            self.episode = metadata["episode"] = info["episode"]
        return BaseTextEnvStepOutput(
            observations=[] if done else since_last_agent_turn(messages),
            reward=reward,
            done=done,
            metadata=metadata,
        )

    def get_metrics(self) -> dict[str, Any]:
        """The episode's totals (R, task score, context and memory terms, memory-quality F1, turns); ``finished`` is
        1 when the env ended the episode itself, 0 when SkyRL's ``max_turns`` did (the env then scored it as
        truncated) or it has not ended."""
        if self.episode is None:
            return {"turns": self.turns, "finished": 0}
        ep = self.episode
        return {
            "R": ep["R"],
            "task_score": ep["task_score"],
            "R_context": ep["R_context"],
            "R_memory": ep["R_memory"],
            "memory_f1": ep["memory_quality"]["f1"],
            "turns": self.turns,
            "finished": int(self.finished),
        }

    def close(self) -> None:
        """Close the Gymnasium env."""
        self.env.close()


def register_skyrl(env_class: str = ENV_CLASS) -> None:
    """Register :class:`AgeMemSkyRLEnv` with ``skyrl_gym`` under ``env_class`` (idempotent)."""
    import skyrl_gym

    if env_class not in skyrl_gym.registry:
        skyrl_gym.register(id=env_class, entry_point="agemem_gym.adapters.skyrl:AgeMemSkyRLEnv")


def skyrl_rows(
    env_id: str = "AgeMem-Synthetic-v0",
    *,
    task_ids: Iterable[str],
    env_class: str = ENV_CLASS,
    material_seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Dataset rows in SkyRL's layout (``prompt``, ``env_class``, ``reward_spec``, ``extra_info``), one per task.

    Save them as Parquet for SkyRL's trainer (e.g. ``datasets.Dataset.from_list(rows).to_parquet(path)``).
    """
    return [
        {
            "data_source": env_id,
            "prompt": start.messages,
            "env_class": env_class,
            "reward_spec": {"method": "env", "ground_truth": start.answer},
            "extra_info": {"task_id": start.task_id, "material_seed": start.material_seed},
        }
        for start in starts(env_id, task_ids=task_ids, material_seed=material_seed, env_kwargs=env_kwargs)
    ]
